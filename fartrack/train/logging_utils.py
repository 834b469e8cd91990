"""Training logs on rank 0: text lines (stdout + a log file), a progress bar, optional TensorBoard and wandb.

Log file: ``<save_dir>/logs/<script>-<config>.log`` (appended, so a resumed run continues it). Lines read::

    [train: 3, 50 / 600] FPS: 212.4 (198.1), DataTime: 0.012 (0.010), StepTime: 0.150, Loss/total: 1.2345, ...

wandb runs offline unless the user configured an account (``WANDB_API_KEY``, a ``wandb login`` entry in
``~/.netrc``, or an explicit ``WANDB_MODE``). Every other rank gets a logger whose methods do nothing.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

__all__ = ["StatTracker", "TrainLogger", "WandbUnavailableError", "check_wandb_available", "format_stats", "wandb_mode"]


class StatTracker:
    """Running averages of named statistics (weighted by the number of samples of each update)."""

    def __init__(self) -> None:
        self._sums: Dict[str, float] = {}
        self._counts: Dict[str, float] = {}

    def update(self, stats: Mapping[str, float], n: float = 1.0) -> None:
        """Add one observation of each statistic, with weight ``n``."""
        for key, value in stats.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value) * n
            self._counts[key] = self._counts.get(key, 0.0) + n

    def averages(self) -> Dict[str, float]:
        """The current average of every statistic seen so far."""
        return {key: self._sums[key] / self._counts[key] for key in self._sums if self._counts[key] > 0}


def format_stats(stats: Mapping[str, float]) -> str:
    """``"k: v, ..."`` with 5 significant digits."""
    return ", ".join(f"{key}: {value:.5g}" for key, value in stats.items())


def wandb_mode(environ: Optional[Mapping[str, str]] = None) -> str:
    """``online`` when the user configured wandb (env key or ``~/.netrc``), ``WANDB_MODE`` if set, else ``offline``."""
    env = os.environ if environ is None else environ
    if env.get("WANDB_MODE"):
        return env["WANDB_MODE"]
    if env.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


class TrainLogger:
    """Rank-0 sink for text lines, scalars and progress bars; a no-op on other ranks (``enabled=False``)."""

    def __init__(
        self,
        *,
        enabled: bool,
        log_file: Optional[Path] = None,
        tensorboard_dir: Optional[Path] = None,
        wandb: Optional[Dict[str, Any]] = None,
        stream=None,
    ) -> None:
        self.enabled = enabled
        self.log_file = Path(log_file) if (enabled and log_file is not None) else None
        self._stream = stream if stream is not None else sys.stdout
        self._tb = None
        self._wandb = None
        self._handler: Optional[logging.Handler] = None
        if not enabled:
            return
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            # library warnings (e.g. skipped samples) also go to the log file
            self._handler = logging.FileHandler(self.log_file, encoding="utf-8")
            self._handler.setLevel(logging.WARNING)
            self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger("fartrack").addHandler(self._handler)
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(tensorboard_dir))
        if wandb is not None:
            self._wandb = _start_wandb(**wandb)

    def info(self, message: str) -> None:
        """Print ``message`` and append it (time-stamped) to the log file."""
        if not self.enabled:
            return
        print(message, file=self._stream, flush=True)
        if self.log_file is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            with open(self.log_file, "a", encoding="utf-8") as handle:
                for line in message.splitlines() or [""]:
                    handle.write(f"{stamp} {line}\n")

    def scalars(self, prefix: str, stats: Mapping[str, float], step: int) -> None:
        """Send ``stats`` to TensorBoard / wandb as ``<prefix>/<name>`` at ``step``."""
        if not self.enabled:
            return
        if self._tb is not None:
            for key, value in stats.items():
                self._tb.add_scalar(f"{prefix}/{key}", value, step)
        if self._wandb is not None:
            self._wandb.log({f"{prefix}/{key}": value for key, value in stats.items()}, step=step)

    def progress(self, iterable: Iterable, total: int, desc: str) -> Iterable:
        """``iterable`` wrapped in a tqdm bar on rank 0 when stderr is a terminal, else unchanged."""
        if not self.enabled or not sys.stderr.isatty():
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)

    def close(self) -> None:
        """Flush and close the log-file handler, TensorBoard and wandb."""
        if self._handler is not None:
            logging.getLogger("fartrack").removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


class WandbUnavailableError(RuntimeError):
    """``--use_wandb 1`` was requested but the ``wandb`` package is not installed."""


def check_wandb_available() -> None:
    """Raise :class:`WandbUnavailableError` when ``--use_wandb 1`` is requested but the package is missing."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise WandbUnavailableError("--use_wandb 1 needs the wandb package: pip install wandb (or pass --use_wandb 0)") from None


def _start_wandb(project: str, name: str, directory: Path, config: Mapping[str, Any]):
    import wandb

    directory.mkdir(parents=True, exist_ok=True)
    return wandb.init(project=project, name=name, dir=str(directory), config=dict(config), mode=wandb_mode(), resume="allow")
