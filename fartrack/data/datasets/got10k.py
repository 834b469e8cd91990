"""GOT-10k (train / val folders, their LMDB variant, and the synthetic data written in the same layout).

Layout: ``<root>/list.txt`` (one sequence folder per line) and per sequence ``groundtruth.txt`` (comma xywh
per frame), ``absence.label`` (1 = absent), ``cover.label`` (0..8 visible eighths), frames ``%08d.jpg``
from ``00000001``. ``visible = not absent and cover > 0 and w > 0 and h > 0``. A missing ``absence.label``
or ``cover.label`` counts as "present" / "uncovered" for every frame (the synthetic writer may omit them).
The split files hold 0-based indices into ``list.txt`` and are used verbatim (reference quirk).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from fartrack.data.datasets.base import SequenceInfo, TrackingDataset, valid_boxes
from fartrack.data.image_io import DatasetError, parse_boxes, parse_int_column

__all__ = ["Got10k"]


class Got10k(TrackingDataset):
    """GOT-10k sequences listed in ``list.txt`` (optionally restricted to split indices)."""

    def __init__(self, store, name: str = "GOT10K", indices: Optional[Sequence[int]] = None, split_source: str = ""):
        super().__init__(store)
        self.name = name
        if not store.exists("list.txt"):
            raise DatasetError(f"{name}: {store.describe('list.txt')} not found (is this a GOT-10k folder?)")
        all_names = [line.strip() for line in store.read_text("list.txt").splitlines() if line.strip()]
        if indices is None:
            self.sequences: List[str] = all_names
        else:
            bad = [int(i) for i in indices if not 0 <= int(i) < len(all_names)]
            if bad:
                raise DatasetError(
                    f"{name}: split {split_source} has indices out of range of {store.describe('list.txt')} "
                    f"({len(all_names)} sequences), e.g. {bad[:3]}"
                )
            self.sequences = [all_names[int(i)] for i in indices]
        if not self.sequences:
            raise DatasetError(f"{name}: no sequences in {store.describe('list.txt')}")

    def __len__(self) -> int:
        return len(self.sequences)

    def sequence_name(self, seq_id: int) -> str:
        return self.sequences[seq_id]

    def _load_info(self, seq_id: int) -> SequenceInfo:
        seq = self.sequences[seq_id]
        key = f"{seq}/groundtruth.txt"
        bbox = parse_boxes(self.store.read_text(key), self.store.describe(key))
        n = len(bbox)
        absent = np.zeros(n, dtype=bool)
        cover = np.ones(n, dtype=np.int64)
        if self.store.exists(f"{seq}/absence.label"):
            k = f"{seq}/absence.label"
            absent = parse_int_column(self.store.read_text(k), self.store.describe(k), n) == 1
        if self.store.exists(f"{seq}/cover.label"):
            k = f"{seq}/cover.label"
            cover = parse_int_column(self.store.read_text(k), self.store.describe(k), n)
        valid = valid_boxes(bbox)
        return SequenceInfo(bbox=bbox, valid=valid, visible=valid & ~absent & (cover > 0))

    def frame_key(self, seq_id: int, frame_id: int) -> str:
        return f"{self.sequences[seq_id]}/{frame_id + 1:08d}.jpg"
