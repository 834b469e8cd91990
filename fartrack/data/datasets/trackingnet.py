"""TrackingNet: ``<root>/TRAIN_<s>/{anno/<video>.txt, frames/<video>/<n>.jpg}`` with 0-based ``n``.

Every ``anno/*.txt`` of each set is a sequence; ``visible = valid``. The LMDB variant has
``<root>/seq_list.json`` (a list of ``[set_id, video]``) and one environment ``TRAIN_<s>_lmdb`` per set with
the keys ``anno/<video>.txt`` and ``frames/<video>/<n>.jpg``.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from fartrack.data.datasets.base import SequenceInfo, TrackingDataset, valid_boxes
from fartrack.data.image_io import DatasetError, parse_boxes

__all__ = ["TrackingNet"]


class TrackingNet(TrackingDataset):
    """TrackingNet training sequences ``(set, video)``; ``stores[s]`` reads the files of set ``s``."""

    def __init__(self, stores: Dict[int, object], sequences: List[Tuple[int, str]], name: str = "TRACKINGNET"):
        super().__init__(None)
        self.name = name
        self.stores = stores
        self.sequences = list(sequences)
        if not self.sequences:
            raise DatasetError(f"{name}: no sequences found (expected TRAIN_<s>/anno/*.txt)")

    def __len__(self) -> int:
        return len(self.sequences)

    def sequence_name(self, seq_id: int) -> str:
        s, video = self.sequences[seq_id]
        return f"TRAIN_{s}/{video}"

    def _load_info(self, seq_id: int) -> SequenceInfo:
        s, video = self.sequences[seq_id]
        store = self.store_of(seq_id)
        key = f"anno/{video}.txt"
        bbox = parse_boxes(store.read_text(key), store.describe(key))
        valid = valid_boxes(bbox)
        return SequenceInfo(bbox=bbox, valid=valid, visible=valid.copy())

    def frame_key(self, seq_id: int, frame_id: int) -> str:
        return f"frames/{self.sequences[seq_id][1]}/{frame_id}.jpg"

    def store_of(self, seq_id: int):
        return self.stores[self.sequences[seq_id][0]]
