"""VastTrack: ``<root>/<Class>/<Class>-<k>/{Groundtruth.txt, imgs/%05d.jpg}`` (frames from 00001).

Sequences come from ``vasttrack_train_split.txt`` in the split folder when present, otherwise from the
folder listing. The class is the text before the last ``-`` (class names contain spaces and hyphens).
``visible = valid``. There is no LMDB variant.
"""

from __future__ import annotations

from typing import Sequence

from fartrack.data.datasets.base import SequenceInfo, TrackingDataset, valid_boxes
from fartrack.data.image_io import DatasetError, parse_boxes

__all__ = ["VastTrack"]


class VastTrack(TrackingDataset):
    """VastTrack training sequences named ``Class-k``."""

    def __init__(self, store, sequences: Sequence[str], name: str = "VastTrack"):
        super().__init__(store)
        self.name = name
        self.sequences = list(sequences)
        if not self.sequences:
            raise DatasetError(f"{name}: no sequences found under {store.describe('')}")

    def _folder(self, seq_id: int) -> str:
        name = self.sequences[seq_id]
        return f"{name.rsplit('-', 1)[0]}/{name}"

    def __len__(self) -> int:
        return len(self.sequences)

    def sequence_name(self, seq_id: int) -> str:
        return self.sequences[seq_id]

    def _load_info(self, seq_id: int) -> SequenceInfo:
        key = f"{self._folder(seq_id)}/Groundtruth.txt"
        bbox = parse_boxes(self.store.read_text(key), self.store.describe(key))
        valid = valid_boxes(bbox)
        return SequenceInfo(bbox=bbox, valid=valid, visible=valid.copy())

    def frame_key(self, seq_id: int, frame_id: int) -> str:
        return f"{self._folder(seq_id)}/imgs/{frame_id + 1:05d}.jpg"
