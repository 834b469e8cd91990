"""A generic dataset for your own videos: one folder per sequence with images and ``groundtruth.txt``.

Layout (root = settings key ``custom_dir``; YAML name ``CUSTOM``)::

    <custom_dir>/<sequence>/groundtruth.txt   one box "x,y,w,h" per frame (comma, tab or space separated)
    <custom_dir>/<sequence>/absence.txt       optional: one 0/1 per frame, 1 = target absent
    <custom_dir>/<sequence>/[img/]*.jpg|png    the frames; sorted by file name, one per groundtruth line

Every sub-folder holding a ``groundtruth.txt`` is a sequence. ``visible = present and w > 0 and h > 0``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import numpy as np

from fartrack.data.datasets.base import FileStore, SequenceInfo, TrackingDataset, valid_boxes
from fartrack.data.image_io import DatasetError, parse_boxes, parse_int_column

__all__ = ["CustomFolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class CustomFolder(TrackingDataset):
    """Sequences found under one root folder (see the module docstring for the layout)."""

    def __init__(self, root, name: str = "CUSTOM"):
        super().__init__(FileStore(root))
        self.name = name
        root = Path(root)
        self.sequences: List[str] = sorted(
            p.name for p in root.iterdir() if p.is_dir() and (p / "groundtruth.txt").is_file()
        )
        if not self.sequences:
            raise DatasetError(f"{name}: no sequence folders with a groundtruth.txt under {os.fspath(root)}")
        self._frames: dict = {}

    def __len__(self) -> int:
        return len(self.sequences)

    def sequence_name(self, seq_id: int) -> str:
        return self.sequences[seq_id]

    def _frame_files(self, seq_id: int) -> List[str]:
        files = self._frames.get(seq_id)
        if files is None:
            seq = self.sequences[seq_id]
            folder = self.store.root / seq
            sub = "img/" if (folder / "img").is_dir() else ""
            files = sorted(
                sub + f.name for f in (folder / sub).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS
            )
            self._frames[seq_id] = files
        return files

    def _load_info(self, seq_id: int) -> SequenceInfo:
        seq = self.sequences[seq_id]
        key = f"{seq}/groundtruth.txt"
        bbox = parse_boxes(self.store.read_text(key), self.store.describe(key))
        frames = self._frame_files(seq_id)
        if len(frames) != len(bbox):
            raise DatasetError(
                f"{self.store.describe(key)}: {len(bbox)} boxes but {len(frames)} images in "
                f"{self.store.describe(seq)} (expected one box per image)"
            )
        absent = np.zeros(len(bbox), dtype=bool)
        if self.store.exists(f"{seq}/absence.txt"):
            k = f"{seq}/absence.txt"
            absent = parse_int_column(self.store.read_text(k), self.store.describe(k), len(bbox)) == 1
        valid = valid_boxes(bbox)
        return SequenceInfo(bbox=bbox, valid=valid, visible=valid & ~absent)

    def frame_key(self, seq_id: int, frame_id: int) -> str:
        return f"{self.sequences[seq_id]}/{self._frame_files(seq_id)[frame_id]}"
