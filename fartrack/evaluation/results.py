"""Per-sequence tracking result files: ``<seq>.txt`` (x,y,w,h per frame) and ``<seq>_time.txt``.

Writing is atomic and ordered (boxes first, then times), so a result counts as complete only when both
files exist and the box file has one line per frame. Reading accepts comma, tab or whitespace separated
rows (the ecosystem writes all three) and reports the file and line of anything it cannot use.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from fartrack.utils.io import atomic_write_text

PathLike = Union[str, os.PathLike]

_SEPARATORS = re.compile(r"[,\t ;]+")
_MAX_LISTED = 8  # names a problem summary lists before '... and N more'


class ResultsError(ValueError):
    """A result file is missing, empty, malformed or shorter than its sequence; the message names the file and line."""


def boxes_path(results_dir: PathLike, seq_name: str) -> Path:
    """Path of the box file of ``seq_name`` in ``results_dir``."""
    return Path(results_dir) / f"{seq_name}.txt"


def times_path(results_dir: PathLike, seq_name: str) -> Path:
    """Path of the per-frame time file of ``seq_name`` in ``results_dir``."""
    return Path(results_dir) / f"{seq_name}_time.txt"


def format_boxes(boxes: np.ndarray) -> str:
    """Render (N,4) boxes as comma-separated ``x,y,w,h`` lines with 3 decimals."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    return "".join(f"{b[0]:.3f},{b[1]:.3f},{b[2]:.3f},{b[3]:.3f}\n" for b in boxes.tolist())


def format_times(times: np.ndarray) -> str:
    """Render per-frame times (seconds) one per line with 8 decimals, as the GOT-10k toolkit does."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    return "".join(f"{t:.8f}\n" for t in times.tolist())


def write_sequence_results(results_dir: PathLike, seq_name: str, boxes: np.ndarray, times: np.ndarray) -> None:
    """Write ``<seq>.txt`` then ``<seq>_time.txt`` atomically; ``boxes`` is (N,4) xywh, ``times`` (N,) seconds."""
    boxes = np.asarray(boxes, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{seq_name}: boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if len(times) != len(boxes):
        raise ValueError(f"{seq_name}: {len(boxes)} boxes but {len(times)} times")
    if not np.all(np.isfinite(boxes)):
        bad = int(np.argwhere(~np.isfinite(boxes).all(axis=1))[0, 0])
        raise ValueError(f"{seq_name}: box of frame {bad + 1} is not finite: {boxes[bad].tolist()}")
    # Boxes first, times last: an interrupted write never leaves a time file without its boxes.
    atomic_write_text(boxes_path(results_dir, seq_name), format_boxes(boxes))
    atomic_write_text(times_path(results_dir, seq_name), format_times(times))


def _count_data_lines(path: Path) -> int:
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        return sum(1 for line in handle if line.strip())


def result_complete(results_dir: PathLike, seq_name: str, num_frames: int) -> bool:
    """True when both files of ``seq_name`` exist and each has exactly ``num_frames`` non-empty lines."""
    bpath, tpath = boxes_path(results_dir, seq_name), times_path(results_dir, seq_name)
    if not (bpath.is_file() and tpath.is_file()):
        return False
    try:
        return _count_data_lines(bpath) == num_frames and _count_data_lines(tpath) == num_frames
    except OSError:
        return False


def _parse_rows(path: Path, columns: Optional[int]) -> List[List[float]]:
    """Parse numeric rows of ``path``; blank lines are skipped, every other line must parse."""
    if not path.is_file():
        raise ResultsError(f"{path}: result file not found")
    rows: List[List[float]] = []
    width: Optional[int] = columns
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            fields = [f for f in _SEPARATORS.split(text) if f]
            try:
                values = [float(f) for f in fields]
            except ValueError:
                raise ResultsError(f"{path}, line {lineno}: expected numbers, got {text[:80]!r}") from None
            if width is None:
                width = len(values)
            if len(values) != width:
                raise ResultsError(
                    f"{path}, line {lineno}: expected {width} values, got {len(values)} ({text[:80]!r})")
            bad = [v for v in values if not math.isfinite(v)]
            if bad:
                raise ResultsError(f"{path}, line {lineno}: value is not finite ({text[:80]!r})")
            rows.append(values)
    if not rows:
        raise ResultsError(f"{path}, line 1: result file is empty")
    return rows


def read_boxes(path: PathLike, expected_rows: Optional[int] = None, *, allow_longer: bool = False) -> np.ndarray:
    """Read an (N,4) float64 box file; comma, tab or whitespace separated, blank lines ignored.

    Raises :class:`ResultsError` naming the file and line for a missing or empty file, a line that is not
    four finite numbers, or fewer rows than ``expected_rows``. More rows than expected are an error too
    (the result belongs to another sequence or frame list) unless ``allow_longer``, which keeps the first
    ``expected_rows`` rows (what the LaSOT toolkit and pytracking do).
    """
    path = Path(path)
    rows = _parse_rows(path, 4)
    boxes = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    if expected_rows is not None and len(boxes) != expected_rows:
        if len(boxes) < expected_rows:
            raise ResultsError(
                f"{path}, line {len(boxes) + 1}: result ends after {len(boxes)} lines, "
                f"the sequence has {expected_rows} frames")
        if not allow_longer:
            raise ResultsError(
                f"{path}, line {expected_rows + 1}: result has {len(boxes)} lines, "
                f"the sequence has only {expected_rows} frames")
        boxes = boxes[:expected_rows]
    return boxes


def check_box_sizes(boxes: np.ndarray, path: PathLike, *, allow_zero: bool = True) -> None:
    """Raise :class:`ResultsError` naming ``path`` and the line of the first box with a negative (or, unless
    ``allow_zero``, zero) width or height."""
    boxes = np.asarray(boxes, dtype=np.float64)
    bad = (boxes[:, 2:] < 0).any(axis=1) if allow_zero else (boxes[:, 2:] <= 0).any(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        need = "non-negative" if allow_zero else "positive"
        raise ResultsError(f"{path}, line {row + 1}: width and height must be {need}, got "
                           f"{','.join(f'{v:g}' for v in boxes[row])}")


def read_times(path: PathLike) -> np.ndarray:
    """Read per-frame times in seconds; one or more columns (GOT-10k repetitions) -> (N,) or (N,K) float64."""
    rows = _parse_rows(Path(path), None)
    times = np.asarray(rows, dtype=np.float64)
    return times[:, 0] if times.shape[1] == 1 else times


def summarize_problems(missing: Sequence[str], total: int, errors: Sequence[str], *, lacking: str,
                       results_dir: PathLike) -> str:
    """One message for the problems of a results folder, ``""`` when there are none.

    ``missing`` names the sequences (of ``total``) that have no ``lacking`` in ``results_dir``; the first eight
    are listed. ``errors`` are messages about bad result files; the first is quoted and the others counted.
    """
    parts = []
    if missing:
        shown = ", ".join(missing[:_MAX_LISTED])
        if len(missing) > _MAX_LISTED:
            shown += f", ... and {len(missing) - _MAX_LISTED} more"
        parts.append(f"{len(missing)} of {total} sequences have no {lacking} in {results_dir} ({shown})")
    if errors:
        parts.append(errors[0] + (f" (and {len(errors) - 1} more bad result files)" if len(errors) > 1 else ""))
    return "; ".join(parts)
