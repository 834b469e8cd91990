"""Training-loss curves read back from a trainer log: parse, check that the loss went down, plot.

The trainer appends lines such as ``2026-01-01 12:00:00 [train: 3, 50 / 600] FPS: ..., Loss/total: 1.2345, ...``
to ``<save_dir>/logs/<script>-<config>.log`` (:mod:`fartrack.train.logging_utils`); each value is the running
mean of the epoch so far. A resumed run appends to the same file after a ``resumed from epoch E`` line: lines of
epochs after ``E`` written before the interruption are dropped. A fresh run in the same file starts a new curve.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple, Union

from fartrack.utils.io import atomic_write_bytes

__all__ = ["LossCheck", "LossCurve", "check_loss_decrease", "plot_loss_curve", "read_loss_log"]

PathLike = Union[str, "os.PathLike[str]"]

_TRAIN_LINE = re.compile(r"\[train: (\d+), (\d+) / (\d+)\]")
_HEADER = re.compile(r"\btraining \S+: ")
_RESUMED = re.compile(r"\bresumed from epoch (\d+)\b")


@dataclass
class LossCurve:
    """Logged values of one statistic in training order: ``(epoch, iteration, iterations per epoch, value)``."""

    key: str
    points: List[Tuple[int, int, int, float]]

    @property
    def values(self) -> List[float]:
        """The logged values."""
        return [p[3] for p in self.points]

    @property
    def steps(self) -> List[float]:
        """Position of each value in epochs (``epoch - 1 + iteration / iterations per epoch``)."""
        return [e - 1 + i / max(n, 1) for e, i, n, _ in self.points]


@dataclass
class LossCheck:
    """Mean of the first and of the last 20 % of the logged values; ``decreased`` when last < first."""

    first: float
    last: float
    count: int
    window: int

    @property
    def decreased(self) -> bool:
        """Whether the loss went down (False when there are fewer than 2 values)."""
        return self.count >= 2 and self.last < self.first


def read_loss_log(path: PathLike, key: str = "Loss/total") -> LossCurve:
    """Parse the ``[train: ...]`` lines of a trainer log into a :class:`LossCurve` of ``key``.

    Raises ``FileNotFoundError`` for a missing log and ``ValueError`` naming the file when no line holds ``key``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log {path} not found")
    value_re = re.compile(rf"{re.escape(key)}: ([-+0-9.eEinfINFaN]+)")
    points: Dict[Tuple[int, int], Tuple[int, float]] = {}
    fresh_start = False
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if _HEADER.search(line):
                fresh_start = True
                continue
            resumed = _RESUMED.search(line)
            if resumed:
                fresh_start = False
                last = int(resumed.group(1))
                points = {k: v for k, v in points.items() if k[0] <= last}
                continue
            match = _TRAIN_LINE.search(line)
            value = value_re.search(line) if match else None
            if value is None:
                continue
            if fresh_start:
                points, fresh_start = {}, False
            try:
                number = float(value.group(1))
            except ValueError:
                continue
            epoch, iteration, total = (int(g) for g in match.groups())
            points[(epoch, iteration)] = (total, number)
    if not points:
        raise ValueError(f"{path}: no '[train: ...]' line with {key} (has the stage logged any iteration yet?)")
    ordered = [(e, i, points[(e, i)][0], points[(e, i)][1]) for e, i in sorted(points)]
    return LossCurve(key, ordered)


def check_loss_decrease(values: List[float], fraction: float = 0.2) -> LossCheck:
    """Compare the mean of the first and of the last ``fraction`` of ``values`` (at least one value each)."""
    finite = [v for v in values if math.isfinite(v)]
    count = len(finite)
    if count == 0:
        return LossCheck(float("nan"), float("nan"), 0, 0)
    window = max(1, int(round(fraction * count)))
    first = sum(finite[:window]) / window
    last = sum(finite[-window:]) / window
    return LossCheck(first, last, count, window)


def plot_loss_curve(curve: LossCurve, out_png: PathLike, title: str) -> Path:
    """Draw ``curve`` (loss against epochs, first/last 20 % means marked) into ``out_png`` atomically."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check = check_loss_decrease(curve.values)
    steps, values = curve.steps, curve.values
    with rc_context({"text.usetex": False, "font.size": 9}):
        fig = Figure(figsize=(6.0, 3.8), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(steps, values, "-o", markersize=2.5, linewidth=1.4, label=curve.key)
        if check.count >= 2:
            w = check.window
            ax.plot([steps[0], steps[w - 1]], [check.first] * 2, "r--", linewidth=1.2,
                    label=f"first {w} mean {check.first:.4g}")
            ax.plot([steps[-w], steps[-1]], [check.last] * 2, "g--", linewidth=1.2,
                    label=f"last {w} mean {check.last:.4g}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{curve.key} (running mean within the epoch)")
        ax.set_title(title)
        ax.grid(True, alpha=0.4)
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    return atomic_write_bytes(out_png, buffer.getvalue())
