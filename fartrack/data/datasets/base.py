"""The common dataset interface (pytracking style) and the file-system store datasets read through.

A dataset lists sequences; each sequence has per-frame boxes (``xywh`` pixels, float32), a ``valid`` flag
(positive width and height) and a ``visible`` flag (valid and not absent / occluded, per dataset rules).
Datasets read their files through a *store*: :class:`FileStore` (a folder) or
:class:`~fartrack.data.datasets.lmdb_backend.LmdbStore` (an LMDB environment), addressed by the same
relative keys, so each dataset class serves both its folder and its LMDB variant.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

from fartrack.data.image_io import DatasetError, FrameReadError, decode_image, read_bytes

__all__ = ["FileStore", "SequenceInfo", "Store", "TrackingDataset"]

PathLike = Union[str, "os.PathLike[str]"]


class Store:
    """What every store offers on top of its own ``describe`` and ``read_bytes``: text and decoded images."""

    def describe(self, key: str) -> str:
        """Where ``key`` lives (for messages)."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        """Bytes of ``key``; :class:`DatasetError` names it when missing."""
        raise NotImplementedError

    def read_text(self, key: str) -> str:
        """UTF-8 text of ``key`` (a leading BOM is dropped); :class:`DatasetError` when it is not UTF-8."""
        data = self.read_bytes(key)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{self.describe(key)} is not UTF-8 text: {exc}") from exc

    def read_image(self, key: str) -> np.ndarray:
        """``H x W x 3`` uint8 RGB image of ``key``; :class:`FrameReadError` names it when missing or
        undecodable."""
        try:
            data = self.read_bytes(key)
        except DatasetError as exc:
            raise FrameReadError(str(exc)) from exc
        return decode_image(data, self.describe(key))


class FileStore(Store):
    """Files under a root folder, addressed by ``/``-separated keys relative to it."""

    def __init__(self, root: PathLike):
        self.root = Path(root)

    def describe(self, key: str) -> str:
        """The path of ``key`` (for messages)."""
        return os.fspath(self.root / key)

    def exists(self, key: str) -> bool:
        """Whether ``key`` names an existing file."""
        return (self.root / key).is_file()

    def read_bytes(self, key: str) -> bytes:
        """Bytes of ``key``; :class:`DatasetError` names the file when missing."""
        return read_bytes(self.root / key)


@dataclass
class SequenceInfo:
    """Annotations of one sequence: ``bbox`` (N, 4) float32 xywh, ``valid`` and ``visible`` (N,) bool."""

    bbox: np.ndarray
    valid: np.ndarray
    visible: np.ndarray

    def __len__(self) -> int:
        return len(self.bbox)


def valid_boxes(bbox: np.ndarray) -> np.ndarray:
    """``w > 0 and h > 0`` per box (NaN boxes are invalid)."""
    return (bbox[:, 2] > 0) & (bbox[:, 3] > 0)


class TrackingDataset:
    """Base class of the training datasets.

    Subclasses set ``name`` and ``is_video`` and implement :meth:`__len__`, :meth:`sequence_name`,
    :meth:`_load_info` and :meth:`frame_key`; the store given to the constructor reads the files.
    Sequence annotations are read on first use and cached.
    """

    name: str = "dataset"
    is_video: bool = True

    def __init__(self, store):
        self.store = store
        self._info_cache: Dict[int, SequenceInfo] = {}

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def sequence_name(self, seq_id: int) -> str:  # pragma: no cover - abstract
        """Human-readable name of sequence ``seq_id``."""
        raise NotImplementedError

    def _load_info(self, seq_id: int) -> SequenceInfo:  # pragma: no cover - abstract
        raise NotImplementedError

    def frame_key(self, seq_id: int, frame_id: int) -> str:  # pragma: no cover - abstract
        """Store key of frame ``frame_id`` (0-based) of sequence ``seq_id``."""
        raise NotImplementedError

    def sequence_info(self, seq_id: int) -> SequenceInfo:
        """Annotations of sequence ``seq_id`` (cached)."""
        info = self._info_cache.get(seq_id)
        if info is None:
            info = self._load_info(seq_id)
            self._info_cache[seq_id] = info
        return info

    def store_of(self, seq_id: int):
        """The store holding the files of sequence ``seq_id``."""
        return self.store

    def frame_source(self, seq_id: int, frame_id: int) -> str:
        """Where frame ``frame_id`` of sequence ``seq_id`` is read from (for messages)."""
        return self.store_of(seq_id).describe(self.frame_key(seq_id, frame_id))

    def get_frames(self, seq_id: int, frame_ids: Sequence[int]) -> List[np.ndarray]:
        """The frames (``H x W x 3`` uint8 RGB) ``frame_ids`` of sequence ``seq_id``; a frame requested twice is
        read once. :class:`FrameReadError` names the file that failed."""
        store = self.store_of(seq_id)
        cache: Dict[int, np.ndarray] = {}
        out = []
        for f in frame_ids:
            f = int(f)
            if f not in cache:
                cache[f] = store.read_image(self.frame_key(seq_id, f))
            out.append(cache[f])
        return out

    def get_boxes(self, seq_id: int, frame_ids: Sequence[int]) -> np.ndarray:
        """float32 ``(len(frame_ids), 4)`` xywh boxes of those frames."""
        return self.sequence_info(seq_id).bbox[np.asarray(frame_ids, dtype=np.int64)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} sequences)"


def require_dir(path: PathLike, dataset: str, setting: str) -> Path:
    """``path`` as a Path; :class:`DatasetError` naming the dataset and the settings key when it is missing."""
    p = Path(path)
    if not p.is_dir():
        raise DatasetError(
            f"{dataset}: dataset root {os.fspath(p)} does not exist (settings key {setting!r} in "
            f"lib/train/admin/local.py)"
        )
    return p
