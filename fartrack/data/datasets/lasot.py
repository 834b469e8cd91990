"""LaSOT: ``<root>/<class>/<class>-<k>/{groundtruth.txt, full_occlusion.txt, out_of_view.txt, img/%08d.jpg}``.

The training sequences are the names of the split file (``lasot_train_split.txt``); ``full_occlusion.txt``
and ``out_of_view.txt`` are one comma-separated line of 0/1 each; ``visible = not occluded and not out of
view and w > 0 and h > 0``. The LMDB variant uses the same keys.
"""

from __future__ import annotations

from typing import Sequence

from fartrack.data.datasets.base import SequenceInfo, TrackingDataset, valid_boxes
from fartrack.data.image_io import DatasetError, parse_boxes, parse_flag_row

__all__ = ["Lasot"]


class Lasot(TrackingDataset):
    """LaSOT sequences named ``class-k``."""

    def __init__(self, store, sequences: Sequence[str], name: str = "LASOT"):
        super().__init__(store)
        self.name = name
        self.sequences = list(sequences)
        if not self.sequences:
            raise DatasetError(f"{name}: the split lists no sequences")
        first = self._folder(0)
        if not store.exists(f"{first}/groundtruth.txt"):
            raise DatasetError(
                f"{name}: {store.describe(first + '/groundtruth.txt')} not found (is the root a LaSOT folder "
                f"with <class>/<class>-<k>/ sub-folders?)"
            )

    def _folder(self, seq_id: int) -> str:
        name = self.sequences[seq_id]
        cls = name.rsplit("-", 1)[0]
        return f"{cls}/{name}"

    def __len__(self) -> int:
        return len(self.sequences)

    def sequence_name(self, seq_id: int) -> str:
        return self.sequences[seq_id]

    def _load_info(self, seq_id: int) -> SequenceInfo:
        folder = self._folder(seq_id)
        key = f"{folder}/groundtruth.txt"
        bbox = parse_boxes(self.store.read_text(key), self.store.describe(key))
        flags = []
        for fname in ("full_occlusion.txt", "out_of_view.txt"):
            k = f"{folder}/{fname}"
            flags.append(parse_flag_row(self.store.read_text(k), self.store.describe(k), len(bbox)))
        valid = valid_boxes(bbox)
        return SequenceInfo(bbox=bbox, valid=valid, visible=valid & ~flags[0] & ~flags[1])

    def frame_key(self, seq_id: int, frame_id: int) -> str:
        return f"{self._folder(seq_id)}/img/{frame_id + 1:08d}.jpg"
