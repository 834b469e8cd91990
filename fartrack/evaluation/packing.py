"""Submission archives for the GOT-10k and TrackingNet evaluation servers, validated before writing.

* GOT-10k (test): ``<seq>/<seq>_001.txt`` (``x,y,w,h`` comma-separated, 3 decimals) and
  ``<seq>/<seq>_time.txt`` for every sequence of ``test/list.txt``, the sequence folders at the zip root.
* TrackingNet (TEST): a flat ``<seq>.txt`` per sequence of ``TEST/anno``, comma-separated.

Validation comes first and covers every sequence (all present, one box per frame, finite values, positive
width and height, time files for GOT-10k); nothing is written unless all pass. The raw results are only
read; the archive is written atomically and never inside the results folder.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Dict, List, Mapping, Union

from fartrack.evaluation.results import (ResultsError, boxes_path, check_box_sizes, format_boxes, format_times,
                                         read_boxes, read_times, summarize_problems, times_path)
from fartrack.utils.io import atomic_write_bytes

PathLike = Union[str, os.PathLike]

SERVERS = {"got10k": "got10k_test", "trackingnet": "trackingnet"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry time: the same results give byte-identical archives


class PackError(ValueError):
    """Results are not ready for submission, or the archive cannot be written; names the file and line."""


def validate_results(results_dir: PathLike, frame_counts: Mapping[str, int], *, need_times: bool) -> Dict[str, str]:
    """Check every sequence's result; return ``{seq: file contents to pack}`` (boxes, and ``seq + '_time'``
    times when ``need_times``). All problems are reported together in one :class:`PackError`."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise PackError(f"results folder {results_dir} not found")
    if not frame_counts:
        raise PackError("the benchmark lists no sequences")
    contents: Dict[str, str] = {}
    missing: List[str] = []
    errors: List[str] = []
    for seq, n in frame_counts.items():
        bpath, tpath = boxes_path(results_dir, seq), times_path(results_dir, seq)
        if not bpath.is_file():
            missing.append(seq)
            continue
        if need_times and not tpath.is_file():
            missing.append(f"{seq} (no {tpath.name})")
            continue
        try:
            boxes = read_boxes(bpath, n)
            check_box_sizes(boxes, bpath, allow_zero=False)
            contents[seq] = format_boxes(boxes)
            if need_times:
                times = read_times(tpath)
                if len(times) != n:
                    raise ResultsError(f"{tpath}, line {min(len(times), n) + 1}: {len(times)} time lines, "
                                       f"the sequence has {n} frames")
                contents[seq + "_time"] = format_times(times if times.ndim == 1 else times[:, 0])
        except ResultsError as exc:
            errors.append(str(exc))
    if missing or errors:
        raise PackError(summarize_problems(missing, len(frame_counts), errors, lacking="complete result",
                                           results_dir=results_dir))
    return contents


def _check_out(out: Path, results_dir: Path, overwrite: bool) -> None:
    out_abs, res_abs = out.resolve(), results_dir.resolve()
    if res_abs == out_abs.parent or res_abs in out_abs.parents:
        raise PackError(f"{out}: write the archive outside the results folder {results_dir}")
    if out.exists() and not overwrite:
        raise PackError(f"{out} already exists (pass --force to replace it)")
    if out.suffix.lower() != ".zip":
        raise PackError(f"{out}: the archive name must end in .zip")


def _zip_bytes(entries: Dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in entries.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


def pack_results(server: str, results_dir: PathLike, frame_counts: Mapping[str, int], out: PathLike, *,
                 overwrite: bool = False) -> Path:
    """Validate ``results_dir`` against ``frame_counts`` (``{seq: frames}``, benchmark order) and write the
    ``server``'s (``got10k`` or ``trackingnet``) archive to ``out``. Returns ``out``."""
    if server not in SERVERS:
        raise PackError(f"unknown server {server!r}; choose one of {', '.join(SERVERS)}")
    out, results_dir = Path(out), Path(results_dir)
    _check_out(out, results_dir, overwrite)
    got10k = server == "got10k"
    contents = validate_results(results_dir, frame_counts, need_times=got10k)
    entries: Dict[str, str] = {}
    for seq in frame_counts:
        if got10k:
            entries[f"{seq}/{seq}_001.txt"] = contents[seq]
            entries[f"{seq}/{seq}_time.txt"] = contents[seq + "_time"]
        else:
            entries[f"{seq}.txt"] = contents[seq]
    return atomic_write_bytes(out, _zip_bytes(entries))
