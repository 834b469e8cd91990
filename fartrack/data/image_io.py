"""Reading frames and annotation files of training datasets, with errors that name the file and line.

Frames are decoded with OpenCV from their bytes (so files and LMDB values share one path) and returned as
``H x W x 3`` uint8 RGB arrays. Annotation parsers accept the text of a file and the name to report.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Union

import cv2
import numpy as np

__all__ = [
    "DatasetError",
    "FrameReadError",
    "decode_image",
    "parse_boxes",
    "parse_flag_row",
    "parse_int_column",
    "read_bytes",
    "read_image",
]

PathLike = Union[str, "os.PathLike[str]"]

_SPLIT = re.compile(r"[,\s]+")


class DatasetError(RuntimeError):
    """A dataset file is missing or malformed; the message names the file (and line) and what was expected."""


class FrameReadError(DatasetError):
    """One frame could not be read or decoded (the sample using it is skipped and reported)."""


def read_bytes(path: PathLike, what: str = "file") -> bytes:
    """The bytes of ``path``; raises :class:`DatasetError` naming the path when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise DatasetError(f"{what} not found: {os.fspath(path)}") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {what} {os.fspath(path)}: {exc.strerror or exc}") from exc


def decode_image(data: bytes, source: str) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to an ``H x W x 3`` uint8 RGB array.

    Raises:
        FrameReadError: the bytes are empty or not a decodable image; the message names ``source``.
    """
    if not data:
        raise FrameReadError(f"image {source} is empty (0 bytes)")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise FrameReadError(f"image {source} is corrupt or not an image ({len(data)} bytes could not be decoded)")
    return np.ascontiguousarray(image[:, :, ::-1])


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 RGB; :class:`FrameReadError` names the file on failure."""
    try:
        data = read_bytes(path, "image")
    except DatasetError as exc:
        raise FrameReadError(str(exc)) from exc
    return decode_image(data, os.fspath(path))


def _lines(text: str) -> List[str]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def parse_boxes(text: str, source: str, expected_rows: Optional[int] = None) -> np.ndarray:
    """Parse one ``x, y, w, h`` box per line (comma, tab or space separated) into a float32 ``(N, 4)`` array.

    Trailing empty lines are ignored; ``nan`` is accepted (such a box is invalid). Raises
    :class:`DatasetError` naming ``source`` and the 1-based line of the first bad line, or when the number of
    rows differs from ``expected_rows``.
    """
    rows = []
    for number, line in enumerate(_lines(text), start=1):
        parts = [p for p in _SPLIT.split(line.strip()) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise DatasetError(
                f"{source}: line {number}: expected 4 numbers x,y,w,h, got {line.strip()[:80]!r}"
            )
        rows.append(values)
    if not rows:
        raise DatasetError(f"{source}: no boxes (the file is empty)")
    boxes = np.asarray(rows, dtype=np.float32)
    if expected_rows is not None and len(boxes) != expected_rows:
        raise DatasetError(f"{source}: {len(boxes)} boxes, expected {expected_rows} (one per frame)")
    return boxes


def parse_int_column(text: str, source: str, expected_rows: Optional[int] = None) -> np.ndarray:
    """Parse one integer per line (``absence.label``, ``cover.label``) into an int64 array.

    Raises :class:`DatasetError` naming ``source`` and the line of the first non-integer, or a row count that
    differs from ``expected_rows``.
    """
    values = []
    for number, line in enumerate(_lines(text), start=1):
        try:
            values.append(int(float(line.strip())))
        except ValueError:
            raise DatasetError(f"{source}: line {number}: expected one integer, got {line.strip()[:80]!r}") from None
    out = np.asarray(values, dtype=np.int64)
    if expected_rows is not None and len(out) != expected_rows:
        raise DatasetError(f"{source}: {len(out)} values, expected {expected_rows} (one per frame)")
    return out


def parse_flag_row(text: str, source: str, expected_len: Optional[int] = None) -> np.ndarray:
    """Parse one line of comma-separated 0/1 flags (LaSOT ``full_occlusion.txt``) into a bool array."""
    lines = [line for line in _lines(text) if line.strip()]
    if len(lines) != 1:
        raise DatasetError(f"{source}: expected one line of comma-separated 0/1 flags, got {len(lines)} lines")
    try:
        flags = np.asarray([int(p) for p in _SPLIT.split(lines[0].strip()) if p], dtype=np.int64)
    except ValueError:
        raise DatasetError(f"{source}: line 1: expected comma-separated 0/1 flags, got {lines[0][:80]!r}") from None
    if expected_len is not None and len(flags) != expected_len:
        raise DatasetError(f"{source}: {len(flags)} flags, expected {expected_len} (one per frame)")
    return flags.astype(bool)
