"""What the demo shows at the end: one score table (text, Markdown, JSON) and an annotated video.

The table has one row per tracker: AO, SR0.5, SR0.75 (GOT-10k protocol, in percent) and FPS = frames / tracker
seconds over all sequences (the runner's definition: the per-frame times of ``<seq>_time.txt``, which cover the
tracker call and never the image reading).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from fartrack.evaluation.analysis import TrackerReport, reports_to_dict
from fartrack.evaluation.datasets import Sequence as BenchSequence
from fartrack.evaluation.results import read_boxes, read_times, times_path
from fartrack.evaluation.video import AnnotatedVideoWriter, read_image
from fartrack.utils.io import atomic_write_text

__all__ = ["format_markdown", "format_text", "median_sequence", "pooled_fps", "table_rows",
           "write_demo_video", "write_results_json"]

PathLike = Union[str, "os.PathLike[str]"]

#: BGR colours of the boxes in the demo video: ground truth first, then the trackers in table order.
GT_COLOR = (255, 255, 255)
TRACK_COLORS = [(0, 220, 0), (0, 140, 255), (255, 120, 0), (200, 0, 200)]


def pooled_fps(results_dir: PathLike, sequences: Sequence[BenchSequence]) -> Optional[float]:
    """Frames / tracker seconds over all ``sequences`` from their time files (None if any is missing)."""
    frames, seconds = 0, 0.0
    for seq in sequences:
        path = times_path(results_dir, seq.name)
        if not path.is_file():
            return None
        times = np.asarray(read_times(path), dtype=np.float64).reshape(len(seq.frames), -1)[:, 0]
        frames += times.size
        seconds += float(times.sum())
    return frames / seconds if seconds > 0 else None


def table_rows(reports: Sequence[TrackerReport], sequences: Sequence[BenchSequence]) -> List[Dict[str, object]]:
    """``{"tracker", "AO", "SR0.5", "SR0.75", "FPS", "results_dir"}`` per report (scores as fractions, FPS or None)."""
    return [{"tracker": rep.name, "AO": float(rep.scores["AO"]), "SR0.5": float(rep.scores["SR50"]),
             "SR0.75": float(rep.scores["SR75"]), "FPS": pooled_fps(rep.results_dir, sequences),
             "results_dir": str(rep.results_dir)} for rep in reports]


def _cells(row: Mapping) -> List[str]:
    fps = row["FPS"]
    return [row["tracker"]] + [f"{100.0 * row[k]:.1f}" for k in ("AO", "SR0.5", "SR0.75")] + [
        "-" if fps is None else f"{fps:.0f}" if fps >= 100 else f"{fps:.1f}"]


_HEADER = ["tracker", "AO", "SR0.5", "SR0.75", "FPS"]


def format_text(rows: Sequence[Mapping]) -> str:
    """A plain-text table (scores in percent)."""
    cells = [_HEADER] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEADER))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in cells)


def format_markdown(rows: Sequence[Mapping], caption: str) -> str:
    """A Markdown table with a caption line (scores in percent)."""
    lines = [caption, "", "| " + " | ".join(_HEADER) + " |", "|---|" + "---:|" * (len(_HEADER) - 1)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_results_json(path: PathLike, rows: Sequence[Mapping], reports: Sequence[TrackerReport],
                       extra: Optional[Mapping] = None) -> Path:
    """``{"trackers": rows, "analysis": <full reports with curves and per-sequence scores>, **extra}``."""
    def plain(value):
        return None if isinstance(value, float) and not math.isfinite(value) else value

    payload = {**(extra or {}), "trackers": [{k: plain(v) for k, v in r.items()} for r in rows],
               "analysis": reports_to_dict(reports)}
    return atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=False) + "\n")


def median_sequence(report: TrackerReport) -> str:
    """The sequence whose AO is the median of ``report`` (a typical one, neither best nor worst)."""
    per = {k: v["AO"] for k, v in report.scores["per_sequence"].items() if math.isfinite(float(v["AO"]))}
    if not per:
        return next(iter(report.scores["per_sequence"]))
    ordered = sorted(per, key=lambda k: (per[k], k))
    return ordered[(len(ordered) - 1) // 2]


def write_demo_video(seq: BenchSequence, tracks: Sequence[Tuple[str, PathLike]], out: PathLike,
                     fps: float = 15.0, min_width: int = 480) -> Path:
    """An mp4 of ``seq`` with the ground truth (white) and each ``(name, results_dir)`` track drawn, plus a legend.

    Small frames are enlarged (nearest neighbour) to at least ``min_width`` pixels wide so the boxes stay visible.
    """
    n = len(seq.frames)
    boxes = [(name, read_boxes(Path(d) / f"{seq.name}.txt", n)) for name, d in tracks]
    first = read_image(seq.frames[0])
    height, width = first.shape[:2]
    scale = max(1, int(math.ceil(min_width / width)))
    size = (width * scale, height * scale)
    thickness = max(1, round(min(size) / 240))
    with AnnotatedVideoWriter(out, fps, size) as writer:
        for i, frame_path in enumerate(seq.frames):
            image = first if i == 0 else read_image(frame_path)
            frame = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), size, interpolation=cv2.INTER_NEAREST)
            entries = [("ground truth", seq.ground_truth[i], GT_COLOR)]
            entries += [(name, b[i], TRACK_COLORS[k % len(TRACK_COLORS)]) for k, (name, b) in enumerate(boxes)]
            for label, box, color in entries:
                if np.all(np.isfinite(box)):
                    x, y, w, h = (float(v) * scale for v in box)
                    cv2.rectangle(frame, (round(x), round(y)), (round(x + w), round(y + h)), color, thickness)
            _legend(frame, [(f"{seq.name}  #{i + 1}/{n}", (255, 255, 255))] + [(e[0], e[2]) for e in entries])
            writer.write(frame)
    return Path(out)


def _legend(frame: np.ndarray, lines: Sequence[Tuple[str, Tuple[int, int, int]]]) -> None:
    """Coloured text lines on a dark band in the top-left corner."""
    scale = max(0.4, frame.shape[0] / 800)
    step = int(22 * scale) + 4
    font = cv2.FONT_HERSHEY_SIMPLEX
    width = max(cv2.getTextSize(text, font, scale, 1)[0][0] for text, _ in lines) + 10
    band = frame[: step * len(lines) + 6, :width]
    band[:] = (band * 0.35).astype(frame.dtype)
    for k, (text, color) in enumerate(lines):
        cv2.putText(frame, text, (5, step * (k + 1)), font, scale, color, 1, cv2.LINE_AA)
