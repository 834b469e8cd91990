"""Score result folders against a benchmark's ground truth: one report per tracker, a table, JSON.

A results folder holds ``<seq>.txt`` (and ``<seq>_time.txt``) for the sequences of one benchmark, as the
runner writes them. Every sequence of the benchmark must have a result with one line per frame; anything
missing, empty, short or malformed is reported together (file and line) in one :class:`AnalysisError`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence as Seq, Union

import numpy as np

from fartrack.evaluation import metrics
from fartrack.evaluation.results import (ResultsError, boxes_path, check_box_sizes, read_boxes, read_times,
                                         summarize_problems, times_path)
from fartrack.utils.io import atomic_write_text

PathLike = Union[str, os.PathLike]

PROTOCOLS = ("got10k", "pytracking", "lasot_toolkit", "trackingnet")
PROTOCOL_ALIASES = {"otb": "pytracking", "got10k_official": "got10k", "matlab": "lasot_toolkit"}

#: Protocol used when none is asked for (the one the paper's numbers come from).
DEFAULT_PROTOCOL: Dict[str, str] = {
    "got10k_val": "got10k", "synthetic": "got10k",
    "lasot": "pytracking", "lasot_extension_subset": "pytracking", "nfs": "pytracking",
    "uav": "pytracking", "otb": "pytracking", "vasttrack": "pytracking",
}
#: Benchmarks whose ground truth is withheld: they are scored by their evaluation servers.
SERVER_ONLY = {"got10k_test": "got10k", "trackingnet": "trackingnet"}
#: Benchmarks whose visibility flags the pytracking lineage uses (``target_visible``).
USES_VISIBILITY = frozenset({"lasot", "lasot_extension_subset", "vasttrack"})

SCORE_KEYS = {"got10k": ("AO", "SR50", "SR75"), "pytracking": ("AUC", "OP50", "OP75", "P", "NP"),
              "lasot_toolkit": ("AUC", "OP50", "OP75", "P", "NP"),
              "trackingnet": ("AUC", "P", "NP", "P_at_20px")}


class AnalysisError(ValueError):
    """Results cannot be scored (missing or bad files, no ground truth); one line naming what is at fault."""


@dataclass
class TrackerReport:
    """Scores of one results folder under one protocol."""

    name: str
    results_dir: Path
    dataset: str
    protocol: str
    scores: Dict[str, object]
    fps: Optional[float]
    num_sequences: int
    warnings: List[str] = field(default_factory=list)


def resolve_protocol(dataset: str, protocol: Optional[str]) -> str:
    """The protocol to use for ``dataset`` (``protocol`` may be an alias); errors for server-only benchmarks."""
    if dataset in SERVER_ONLY:
        raise AnalysisError(
            f"benchmark {dataset!r} has no public ground truth: pack the results with "
            f"'python tracking/pack_results.py {SERVER_ONLY[dataset]} --results_dir DIR --out ZIP' and submit them")
    if protocol is None:
        if dataset not in DEFAULT_PROTOCOL:
            raise AnalysisError(f"unknown benchmark {dataset!r}; choose one of {', '.join(DEFAULT_PROTOCOL)}")
        return DEFAULT_PROTOCOL[dataset]
    name = PROTOCOL_ALIASES.get(protocol, protocol)
    if name not in PROTOCOLS:
        raise AnalysisError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return name


def default_tracker_name(results_dir: PathLike, dataset: str) -> str:
    """A readable name for a results folder: ``<script>/<config>`` for the runner's ``.../<dataset>`` layout."""
    path = Path(results_dir).resolve()
    parts = path.parts
    if parts and parts[-1] == dataset and len(parts) >= 3:
        return f"{parts[-3]}/{parts[-2]}"
    return path.name


def load_results(results_dir: PathLike, sequences: Seq, *, allow_longer: bool = True):
    """Read the boxes (and times, when present) of every sequence from ``results_dir``.

    Returns ``(boxes, times, warnings)``: dicts by sequence name (``times`` holds ``None`` where a time file
    is missing) and notes about truncated files. All problems are gathered into one :class:`AnalysisError`.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise AnalysisError(f"results folder {results_dir} not found")
    boxes: Dict[str, np.ndarray] = {}
    times: Dict[str, Optional[np.ndarray]] = {}
    warnings: List[str] = []
    missing: List[str] = []
    errors: List[str] = []
    for seq in sequences:
        n = len(seq.ground_truth)
        path = boxes_path(results_dir, seq.name)
        if not path.is_file():
            missing.append(seq.name)
            continue
        try:
            rows = read_boxes(path, n, allow_longer=allow_longer)
            check_box_sizes(rows, path)
        except ResultsError as exc:
            errors.append(str(exc))
            continue
        if allow_longer:
            total = sum(1 for line in path.read_text(errors="replace").splitlines() if line.strip())
            if total > n:
                warnings.append(f"{path}: {total} lines for {n} frames, lines {n + 1}.. ignored")
        boxes[seq.name] = rows
        tpath = times_path(results_dir, seq.name)
        try:
            times[seq.name] = read_times(tpath) if tpath.is_file() else None
        except ResultsError as exc:  # times only feed the FPS column: note it, score the boxes
            warnings.append(f"{exc}; FPS not reported")
            times[seq.name] = None
    if missing or errors:
        raise AnalysisError(summarize_problems(missing, len(sequences), errors, lacking="result file",
                                               results_dir=results_dir))
    return boxes, times, warnings


def _absent(seq) -> Optional[np.ndarray]:
    """Per-frame absent flags (1 = target absent) for the LaSOT toolkit protocol, where the dataset has them.

    The MATLAB toolkit reads ``annos/absent/<seq>.txt``; the dataset itself ships ``full_occlusion.txt`` and
    ``out_of_view.txt``, and a frame counts as absent here when either flag is set (the readers'
    ``target_visible``; VastTrack: GT ``0,0,0,0``).
    """
    if seq.target_visible is None:
        return None
    return (~np.asarray(seq.target_visible, dtype=bool)).astype(np.int64)


def _fps(sequences: Seq, times: Dict[str, Optional[np.ndarray]], protocol: str) -> Optional[float]:
    """GOT-10k: mean per-frame FPS (toolkit); otherwise frames / total time (runner). None without time files."""
    if any(times.get(s.name) is None for s in sequences):
        return None
    arrays = [np.asarray(times[s.name], dtype=np.float64).reshape(-1) for s in sequences]
    if protocol == "got10k":
        value = metrics.got10k_speed(arrays)
        return None if value < 0 else value
    total = float(sum(a.sum() for a in arrays))
    return float(sum(a.size for a in arrays)) / total if total > 0 else None


def evaluate(sequences: Seq, boxes: Dict[str, np.ndarray], dataset: str, protocol: str,
             image_size: Optional[Callable] = None) -> Dict[str, object]:
    """Scores of ``boxes`` (by sequence name) on ``sequences`` under ``protocol``.

    ``image_size(seq) -> (w, h)`` is used by the GOT-10k protocol (default: the sequence's first frame).
    """
    if any(np.isnan(s.ground_truth).all(axis=1)[1:].all() and len(s.ground_truth) > 1 for s in sequences):
        raise AnalysisError(f"benchmark {dataset!r} has ground truth for the first frame only; it cannot be "
                            "scored locally")
    if protocol == "got10k":
        size_of = image_size or (lambda s: s.image_size())
        items = [{"name": s.name, "pred": boxes[s.name], "gt": s.ground_truth, "image_size": size_of(s),
                  "cover": s.meta.get("cover"), "absence": s.meta.get("absence")} for s in sequences]
        return metrics.got10k_official(items)
    if protocol == "pytracking":
        items = [{"name": s.name, "pred": boxes[s.name], "gt": s.ground_truth,
                  "target_visible": s.target_visible if dataset in USES_VISIBILITY else None} for s in sequences]
        return metrics.otb_pytracking(items, dataset)
    if protocol == "lasot_toolkit":
        items = [{"name": s.name, "pred": boxes[s.name], "gt": s.ground_truth, "absent": _absent(s)}
                 for s in sequences]
        return metrics.lasot_toolkit(items)
    if protocol == "trackingnet":
        return metrics.trackingnet_devkit([{"name": s.name, "pred": boxes[s.name], "gt": s.ground_truth}
                                           for s in sequences])
    raise AnalysisError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def analyse(results_dirs: Seq[PathLike], sequences: Seq, dataset: str, protocol: Optional[str] = None,
            names: Optional[Seq[str]] = None) -> List[TrackerReport]:
    """One :class:`TrackerReport` per results folder, all scored on the same ``sequences``."""
    proto = resolve_protocol(dataset, protocol)
    if names is not None and len(names) != len(results_dirs):
        raise AnalysisError(f"--names gives {len(names)} names for {len(results_dirs)} results folders")
    labels = list(names) if names is not None else [default_tracker_name(d, dataset) for d in results_dirs]
    seen: Dict[str, int] = {}
    for i, label in enumerate(labels):  # keep legend entries distinct
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} ({seen[label]})"
    sizes: Dict[str, tuple] = {}

    def cached_size(seq):
        if seq.name not in sizes:
            sizes[seq.name] = seq.image_size()
        return sizes[seq.name]

    reports = []
    for label, rdir in zip(labels, results_dirs):
        boxes, times, warnings = load_results(rdir, sequences)
        try:
            scores = evaluate(sequences, boxes, dataset, proto, image_size=cached_size)
        except ValueError as exc:
            if isinstance(exc, AnalysisError):
                raise
            raise AnalysisError(f"{rdir}: {exc}") from None
        reports.append(TrackerReport(label, Path(rdir), dataset, proto, scores, _fps(sequences, times, proto),
                                     len(sequences), warnings))
    return reports


def format_table(reports: Seq[TrackerReport]) -> str:
    """A plain-text table, one row per tracker, scores in percent (2 decimals)."""
    if not reports:
        return ""
    keys = SCORE_KEYS[reports[0].protocol]
    header = ["Tracker"] + list(keys) + ["FPS", "Seqs", "Frames"]
    rows = []
    for r in reports:
        row = [r.name] + [f"{100.0 * float(r.scores[k]):.2f}" for k in keys]
        row.append("-" if r.fps is None else f"{r.fps:.1f}")
        row += [str(r.num_sequences), str(r.scores["num_frames"])]
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    title = f"{reports[0].dataset} -- protocol {reports[0].protocol}"
    return "\n".join([title, line(header)] + [line(r) for r in rows])


def _plain(value):
    """JSON-ready copy: arrays to lists, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def reports_to_dict(reports: Seq[TrackerReport]) -> Dict[str, object]:
    """Everything the reports hold (scores as fractions, curves, per-sequence scores), ready for JSON."""
    return {"dataset": reports[0].dataset if reports else None,
            "protocol": reports[0].protocol if reports else None,
            "trackers": [{"name": r.name, "results_dir": str(r.results_dir), "fps": r.fps,
                          "num_sequences": r.num_sequences, "warnings": r.warnings,
                          "scores": _plain(r.scores)} for r in reports]}


def write_json(reports: Seq[TrackerReport], path: PathLike) -> Path:
    """Write :func:`reports_to_dict` to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(reports_to_dict(reports), indent=2, allow_nan=False) + "\n")
