"""Baseline trackers to compare FARTrack with: the static first-frame box and OpenCV's classical trackers.

* ``static``: reports the first-frame (init) box on every frame; the score a tracker that never moves gets.
* ``opencv:csrt`` / ``opencv:kcf``: OpenCV's CSRT (discriminative correlation filter with channel and spatial
  reliability) and KCF (kernelized correlation filter), from the opencv-contrib build. When OpenCV reports a
  lost target (``update`` returns ``ok = False``) or an empty box, the tracker **keeps its last box**.

:func:`run_baseline` runs one over a benchmark through :func:`fartrack.evaluation.runner.run_benchmark`, so the
results have exactly the runner's format (``<seq>.txt`` + ``<seq>_time.txt``, written atomically, complete
results skipped unless ``force``) and the per-frame times cover the tracker call only, never the image reading.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

import cv2
import numpy as np

from fartrack.evaluation.runner import RunSettings, RunSummary, run_benchmark

__all__ = ["BASELINES", "OpenCVTracker", "StaticTracker", "make_baseline", "normalize_kind", "run_baseline"]

PathLike = Union[str, "os.PathLike[str]"]

#: Baseline names accepted by :func:`make_baseline` (``csrt`` / ``kcf`` are accepted as short forms).
BASELINES = ("static", "opencv:csrt", "opencv:kcf")
_OPENCV = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF"}


class StaticTracker:
    """Reports the init box on every frame (ignores the images)."""

    kind = "static"

    def __init__(self) -> None:
        self._box: Optional[List[float]] = None

    def initialize(self, image: np.ndarray, box: Sequence[float]) -> None:
        """Remember ``box`` (x, y, w, h)."""
        self._box = [float(v) for v in box]

    def track(self, image: np.ndarray) -> List[float]:
        """The init box."""
        if self._box is None:
            raise RuntimeError("StaticTracker.track called before initialize")
        return list(self._box)


class OpenCVTracker:
    """An OpenCV contrib tracker (``csrt`` or ``kcf``) behind the FARTrack tracker interface.

    Frames are RGB uint8 (as the runner reads them) and are converted to BGR for OpenCV. The init box is
    rounded to whole pixels and clipped to the image, as OpenCV requires. On a lost target (``ok = False``) or an
    empty box the last box is kept; :attr:`failures` counts those frames of the current sequence.
    """

    def __init__(self, algorithm: str) -> None:
        algorithm = algorithm.lower()
        if algorithm not in _OPENCV:
            raise ValueError(f"unknown OpenCV tracker {algorithm!r}; choose one of {', '.join(_OPENCV)}")
        self.kind = f"opencv:{algorithm}"
        self._factory = _opencv_factory(algorithm)
        self._tracker = None
        self._box: Optional[List[float]] = None
        self.failures = 0

    def initialize(self, image: np.ndarray, box: Sequence[float]) -> None:
        """Start a new sequence on ``image`` from ``box`` (x, y, w, h in pixels)."""
        height, width = image.shape[:2]
        rect = _pixel_rect(box, width, height)
        self._tracker = self._factory()
        self._tracker.init(_bgr(image), rect)
        self._box = [float(v) for v in box]
        self.failures = 0

    def track(self, image: np.ndarray) -> List[float]:
        """The box in ``image``; the previous box when OpenCV loses the target."""
        if self._tracker is None:
            raise RuntimeError(f"{self.kind}: track called before initialize")
        ok, rect = self._tracker.update(_bgr(image))
        if ok and len(rect) == 4 and rect[2] > 0 and rect[3] > 0 and all(math.isfinite(v) for v in rect):
            self._box = [float(v) for v in rect]
        else:
            self.failures += 1
        return list(self._box)


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def _pixel_rect(box: Sequence[float], width: int, height: int) -> tuple:
    """``box`` rounded to whole pixels and clipped to the image, as the int tuple OpenCV's ``init`` takes."""
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"init box must be 4 finite numbers with w, h > 0, got {list(box)}")
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ValueError(f"init box {list(box)} lies outside the {width}x{height} image")
    return (x0, y0, x1 - x0, y1 - y0)


def _opencv_factory(algorithm: str):
    cls = getattr(cv2, _OPENCV[algorithm], None)
    if cls is None or not hasattr(cls, "create"):
        raise ImportError(
            f"OpenCV {cv2.__version__} has no cv2.{_OPENCV[algorithm]}: the classical trackers come with the "
            "contrib build; install opencv-contrib-python-headless instead of opencv-python-headless (make setup "
            "does this)")
    return cls.create


def normalize_kind(kind: str) -> str:
    """``static``, ``opencv:csrt`` or ``opencv:kcf`` for a baseline name (``csrt`` / ``kcf`` accepted)."""
    text = str(kind).strip().lower()
    if text in _OPENCV:
        text = f"opencv:{text}"
    if text not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)} (or csrt, kcf)")
    return text


def make_baseline(kind: str):
    """A fresh baseline tracker (``initialize(image_rgb, box)`` / ``track(image_rgb) -> box``)."""
    kind = normalize_kind(kind)
    if kind == "static":
        return StaticTracker()
    return OpenCVTracker(kind.split(":", 1)[1])


def run_baseline(
    kind: str,
    dataset: str,
    root: Optional[PathLike],
    results_dir: PathLike,
    *,
    sequences: Optional[Sequence[str]] = None,
    force: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Run baseline ``kind`` over benchmark ``dataset`` at ``root`` (``None``: from the test settings).

    Writes ``<results_dir>/<seq>.txt`` / ``<seq>_time.txt`` and ``run_summary.json`` exactly as ``tracking/test.py``
    does; complete results are kept unless ``force``. Returns the run summary (failed sequences are listed
    there, not raised, as with the runner).
    """
    kind = normalize_kind(kind)
    tracker = make_baseline(kind)
    settings = RunSettings(cfg={}, checkpoint=None, device="cpu", backend="none")
    return run_benchmark(
        settings, dataset, Path(results_dir), root=root, sequences=sequences, threads=0, force=force,
        progress=progress, tracker=tracker,
        extra_summary={"tracker": kind, "backend": "opencv" if kind.startswith("opencv") else "none",
                       "opencv": cv2.__version__},
    )
