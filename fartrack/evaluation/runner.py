"""Run a tracker over a benchmark: one result file pair per sequence, resumable, in parallel worker processes.

Per sequence the tracker is initialised on frame 0 with GT row 0 and then tracks every later frame; no GT
is passed to ``track``. Per-frame times cover the tracker call (preprocessing, network, template update)
and never the image reading; frame 0's time is the initialisation. Results are written atomically through
:func:`fartrack.evaluation.results.write_sequence_results`, so an interrupted run leaves either a complete
result or none, and a re-run (without ``force``) finishes exactly the missing sequences.

Workers are ``spawn`` processes, each building its tracker once; a failing sequence records its error and
the others continue. With several CUDA devices worker ``k`` uses device ``k % num_devices``.
"""

from __future__ import annotations

import difflib
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence as SequenceT, Union

import numpy as np

from fartrack.evaluation.datasets import (
    DatasetError,
    Sequence,
    benchmark_root,
    list_sequences,
    load_sequence,
)
from fartrack.evaluation.results import result_complete, write_sequence_results
from fartrack.evaluation.video import read_image
from fartrack.utils.io import atomic_write_text

__all__ = [
    "RunSettings",
    "RunSummary",
    "SequenceOutcome",
    "build_run_tracker",
    "config_label",
    "default_checkpoint",
    "default_results_dir",
    "net_class_name",
    "run_benchmark",
    "select_sequences",
    "track_sequence",
]

PathLike = Union[str, "os.PathLike[str]"]

SUMMARY_FILE = "run_summary.json"


@dataclass
class RunSettings:
    """Everything a worker needs to build its tracker (plain values only: it is pickled to spawn workers)."""

    cfg: Dict[str, Any]
    checkpoint: Optional[str]
    layers: Optional[int] = None
    device: Optional[str] = None
    backend: str = "auto"
    torch_threads: Optional[int] = None


@dataclass
class SequenceOutcome:
    """What happened to one sequence: ``done``, ``skipped`` (complete result existed) or ``failed``."""

    name: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    error: Optional[str] = None
    details: Optional[str] = None  # traceback of an unexpected error (kept in run_summary.json)


@dataclass
class RunSummary:
    """Outcome of a benchmark run."""

    dataset: str
    results_dir: str
    outcomes: List[SequenceOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Number of sequences with this status."""
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> List[SequenceOutcome]:
        """The failed sequences."""
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def fps(self) -> float:
        """Frames tracked / tracker seconds, pooled over the sequences run now (``nan`` if none)."""
        done = [o for o in self.outcomes if o.status == "done"]
        seconds = sum(o.seconds for o in done)
        return sum(o.frames for o in done) / seconds if seconds > 0 else float("nan")

    def text(self) -> str:
        """Multi-line human summary (counts, mean FPS, one line per failure)."""
        fps = self.fps
        speed = (f"mean FPS {fps:.1f} ({1000 / fps:.1f} ms per frame; tracker time, image reading excluded)"
                 if np.isfinite(fps) else "no frames tracked in this run")
        lines = [
            f"{self.dataset}: {self.count('done')} done, {self.count('skipped')} skipped (complete results "
            f"exist), {self.count('failed')} failed of {len(self.outcomes)} sequences; {speed}; "
            f"results in {self.results_dir}"
        ]
        lines += [f"  FAILED {o.name}: {o.error}" for o in self.failed]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ defaults
def net_class_name(cfg: Any) -> str:
    """The network class name used in checkpoint file names (``FARTrack``, ``FARTrackDistill``, ``FARTrackSparse``)."""
    from fartrack.models.build import net_config_from
    from fartrack.models.encoder import FARTrackNet

    # The naming rule lives on FARTrackNet.net_type; evaluate it on the config without building weights.
    return FARTrackNet.net_type.fget(SimpleNamespace(cfg=net_config_from(cfg)))


def default_checkpoint(cfg: Any, script: str, config: str, settings: Any) -> Path:
    """``<save_dir>/checkpoints/train/<script>/<config>/<NetClass>_ep%04d.pth.tar`` with ``TEST.EPOCH``."""
    name = f"{net_class_name(cfg)}_ep{int(cfg['TEST']['EPOCH']):04d}.pth.tar"
    return Path(settings.save_dir) / "checkpoints" / "train" / script / config_label(config) / name


def default_results_dir(settings: Any, script: str, config: str, dataset: str, layers: Optional[int] = None) -> Path:
    """``<results_path>/<script>/<config>[_layersL]/<dataset>/``."""
    run = config_label(config) + (f"_layers{int(layers)}" if layers is not None else "")
    return Path(settings.results_path) / script / run / dataset


def config_label(config: PathLike) -> str:
    """The config name (a YAML path is named by its file stem)."""
    text = os.fspath(config)
    return Path(text).stem if text.endswith((".yaml", ".yml")) else text


def select_sequences(names: List[str], wanted: Optional[SequenceT[str]], dataset: str) -> List[str]:
    """``names`` restricted to ``wanted`` (each a sequence name, or an index into ``names``)."""
    if not wanted:
        return list(names)
    known = set(names)
    selected = []
    for item in wanted:
        if item in known:
            selected.append(item)
        elif str(item).lstrip("-").isdigit() and -len(names) <= int(item) < len(names):
            selected.append(names[int(item)])
        else:
            close = difflib.get_close_matches(str(item), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DatasetError(f"benchmark {dataset!r} has no sequence {item!r}{hint}; give a name or an index "
                               f"0..{len(names) - 1}")
    return list(dict.fromkeys(selected))


# ------------------------------------------------------------------------------------------------ one sequence
def track_sequence(tracker: Any, seq: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Track ``seq`` from its GT row 0: returns boxes (N, 4) (row 0 = the init box) and times (N,) seconds."""
    n = len(seq.frames)
    init = np.asarray(seq.ground_truth[0], dtype=np.float64)
    if not np.all(np.isfinite(init)):
        raise DatasetError(f"{seq.name}: the first ground-truth row (init box) is not finite: {init.tolist()}")
    boxes = np.empty((n, 4), dtype=np.float64)
    times = np.empty(n, dtype=np.float64)
    image = read_image(seq.frames[0])
    start = time.perf_counter()
    tracker.initialize(image, init.tolist())
    times[0] = time.perf_counter() - start
    boxes[0] = init
    for i in range(1, n):
        image = read_image(seq.frames[i])
        start = time.perf_counter()
        box = tracker.track(image)
        times[i] = time.perf_counter() - start
        boxes[i] = box
    return boxes, times


def _run_one(tracker: Any, dataset: str, root: str, name: str, results_dir: str, force: bool) -> SequenceOutcome:
    try:
        seq = load_sequence(dataset, name, root)
        if not force and result_complete(results_dir, name, len(seq.frames)):
            return SequenceOutcome(name, "skipped", len(seq.frames))
        if tracker is None:
            tracker = _worker_tracker()
        boxes, times = track_sequence(tracker, seq)
        write_sequence_results(results_dir, name, boxes, times)
        return SequenceOutcome(name, "done", len(boxes), float(times.sum()))
    except Exception as exc:  # noqa: BLE001 -- recorded per sequence; the run continues and exits non-zero
        expected = type(exc).__module__.startswith("fartrack") or isinstance(exc, OSError)
        details = None if expected else "".join(traceback.format_exception(exc))
        return SequenceOutcome(name, "failed", error=_describe(exc), details=details)


def _describe(exc: BaseException) -> str:
    """One line: our own errors (they name the file) and OS errors as is; others with where they were raised."""
    text = f"{type(exc).__name__}: {exc}"
    if type(exc).__module__.startswith("fartrack") or isinstance(exc, OSError):
        return text
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return text + (f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else "")


# ------------------------------------------------------------------------------------------------ workers
_WORKER: Dict[str, Any] = {}


def build_run_tracker(settings: RunSettings, device: Optional[str] = None) -> Any:
    """Build the tracker described by ``settings`` (on ``device`` if given) and set the torch thread count."""
    import torch
    from easydict import EasyDict

    from fartrack.tracker.build import build_tracker

    if settings.torch_threads:
        torch.set_num_threads(int(settings.torch_threads))
    return build_tracker(EasyDict(settings.cfg), settings.checkpoint, layers=settings.layers,
                         device=device or settings.device, backend=settings.backend)


def _worker_init(settings: RunSettings, counter: Any) -> None:
    import cv2

    cv2.setNumThreads(1)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    device = settings.device
    if device and device.startswith("cuda") and ":" not in device:
        import torch

        count = torch.cuda.device_count()
        if count > 1:
            device = f"cuda:{index % count}"
    _WORKER.update(settings=settings, device=device, tracker=None, index=index)


def _worker_tracker() -> Any:
    if _WORKER.get("tracker") is None:
        _WORKER["tracker"] = build_run_tracker(_WORKER["settings"], _WORKER["device"])
    return _WORKER["tracker"]


def _worker_task(args: tuple) -> SequenceOutcome:
    dataset, root, name, results_dir, force = args
    return _run_one(None, dataset, root, name, results_dir, force)


# ------------------------------------------------------------------------------------------------ benchmark
def run_benchmark(
    settings: RunSettings,
    dataset: str,
    results_dir: PathLike,
    *,
    root: Optional[PathLike] = None,
    sequences: Optional[SequenceT[str]] = None,
    threads: int = 0,
    force: bool = False,
    progress: bool = True,
    tracker: Any = None,
    extra_summary: Optional[Dict[str, Any]] = None,
) -> RunSummary:
    """Run the tracker over ``dataset`` and write ``<results_dir>/<seq>.txt`` and ``<seq>_time.txt``.

    ``threads`` = 0 runs in this process (with ``tracker`` if given, else one built here); N > 0 starts N
    spawn workers. Complete results are skipped unless ``force``. The summary (also written to
    ``<results_dir>/run_summary.json``) lists every sequence's outcome; errors never stop the run.
    Dataset-level problems (missing root, unreadable sequence list, unknown ``sequences``) raise
    :class:`DatasetError` before anything runs.
    """
    root = Path(root) if root is not None else benchmark_root(dataset)
    names = select_sequences(list_sequences(dataset, root), sequences, dataset)
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(dataset, str(results_dir))
    tasks = [(dataset, str(root), name, str(results_dir), force) for name in names]
    bar = _progress(len(tasks), dataset, progress)
    try:
        if threads <= 0:
            if tracker is None:
                tracker = build_run_tracker(settings)
            for task in tasks:
                summary.outcomes.append(_run_one(tracker, *task))
                _advance(bar, summary)
        else:
            ctx = mp.get_context("spawn")
            counter = ctx.Value("i", 0)
            with ctx.Pool(min(threads, len(tasks)) or 1, initializer=_worker_init,
                          initargs=(settings, counter)) as pool:
                for outcome in pool.imap_unordered(_worker_task, tasks):
                    summary.outcomes.append(outcome)
                    _advance(bar, summary)
    finally:
        if bar is not None:
            bar.close()
        order = {name: i for i, name in enumerate(names)}
        summary.outcomes.sort(key=lambda o: order.get(o.name, len(order)))
        _write_summary(results_dir, summary, settings, extra_summary)
    return summary


def _progress(total: int, dataset: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=dataset, unit="seq", dynamic_ncols=True)


def _advance(bar: Any, summary: RunSummary) -> None:
    if bar is not None:
        bar.set_postfix(done=summary.count("done"), skipped=summary.count("skipped"), failed=summary.count("failed"),
                        refresh=False)
        bar.update(1)


def _write_summary(results_dir: Path, summary: RunSummary, settings: RunSettings,
                   extra: Optional[Dict[str, Any]]) -> None:
    import json

    fps = summary.fps
    report = {
        "dataset": summary.dataset,
        "results_dir": summary.results_dir,
        "checkpoint": settings.checkpoint,
        "layers": settings.layers,
        "device": settings.device,
        "backend": settings.backend,
        "done": summary.count("done"),
        "skipped": summary.count("skipped"),
        "failed": summary.count("failed"),
        "fps": fps if np.isfinite(fps) else None,
        "sequences": [asdict(o) for o in summary.outcomes],
        **(extra or {}),
    }
    try:
        atomic_write_text(results_dir / SUMMARY_FILE, json.dumps(report, indent=1) + "\n")
    except OSError:
        pass  # the summary is a convenience; the result files and the printed summary are what count
