"""Training checkpoints: where they live, what they hold, and how a run resumes from one.

Layout (the reference's): ``<save_dir>/checkpoints/train/<script>/<config>/<NetClass>_ep%04d.pth.tar``.
Each file is written atomically (temporary file + rename, :func:`fartrack.models.checkpoint.save_checkpoint`)
and holds only tensors and plain python values, so it loads with ``torch.load(weights_only=True)``:

=============== ==================================================================================
key             content
=============== ==================================================================================
``epoch``       last finished epoch
``net_type``    ``FARTrack`` / ``FARTrackDistill`` / ``FARTrackSparse``
``net``         the model state dict under the reference key names (the reference loader reads it)
``optimizer``   AdamW state dict
``scheduler``   LR scheduler state dict
``scaler``      AMP GradScaler state dict (``{}`` without float16 AMP)
``rng``         python / numpy / torch (and CUDA) RNG states of rank 0 at save time
``config``      the resolved config as a plain nested dict
``train``       seed, world size, per-rank batch, accumulation steps, script and config name, stats
=============== ==================================================================================

Resume (``--resume auto|PATH``) restores net, optimizer, scheduler, scaler and the epoch; the trainer reseeds
every epoch from ``(seed, rank, epoch)``, so a resumed run replays the same random streams as an uninterrupted
one (the saved RNG states document rank 0's state; they are restored too).
"""

from __future__ import annotations

import collections
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from fartrack.models.checkpoint import CheckpointError, load_state_dict_checked, read_checkpoint, save_checkpoint

__all__ = [
    "ResumeError",
    "TrainingState",
    "checkpoint_path",
    "find_resume_checkpoint",
    "get_rng_state",
    "list_checkpoints",
    "load_training_checkpoint",
    "restore_training_state",
    "run_dir",
    "save_training_checkpoint",
    "set_rng_state",
    "should_save",
]

PathLike = Union[str, "os.PathLike[str]"]

TrainingState = Dict[str, Any]


class ResumeError(RuntimeError):
    """A resume request that cannot be honoured (no such file, wrong network class, unclear intent)."""


def run_dir(save_dir: PathLike, script: str, config_name: str) -> Path:
    """``<save_dir>/checkpoints/train/<script>/<config>``."""
    return Path(save_dir) / "checkpoints" / "train" / script / config_name


def checkpoint_path(folder: PathLike, net_type: str, epoch: int) -> Path:
    """``<folder>/<net_type>_ep%04d.pth.tar``."""
    return Path(folder) / f"{net_type}_ep{epoch:04d}.pth.tar"


def list_checkpoints(folder: PathLike, net_type: str) -> List[Tuple[int, Path]]:
    """``[(epoch, path), ...]`` of the ``<net_type>_ep*.pth.tar`` files in ``folder``, by increasing epoch."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(net_type)}_ep(\d+)\.pth\.tar$")
    found = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def should_save(epoch: int, cfg: Mapping[str, Any]) -> bool:
    """Whether ``epoch`` (1-based) gets a checkpoint: every ``SAVE_EVERY_EPOCH``-th, each of the last
    ``SAVE_LAST_EPOCHS`` and always the final one (reference: ``epoch % 5 == 0 or epoch > EPOCH - 5``)."""
    train = cfg["TRAIN"]
    last = int(train["EPOCH"])
    return epoch % int(train["SAVE_EVERY_EPOCH"]) == 0 or epoch > last - int(train["SAVE_LAST_EPOCHS"]) or epoch == last


def find_resume_checkpoint(folder: PathLike, net_type: str, resume: Optional[str]) -> Optional[Path]:
    """The checkpoint a run should start from, or ``None`` for a fresh start.

    ``resume`` is ``None`` (fresh start; refused when ``folder`` already holds checkpoints, so nothing is
    overwritten by accident), ``"auto"`` (the newest ``<net_type>_ep*.pth.tar`` in ``folder``, or a fresh
    start when there is none) or a path to a checkpoint file.
    """
    existing = list_checkpoints(folder, net_type)
    if resume is None:
        if existing:
            epoch, path = existing[-1]
            raise ResumeError(
                f"{folder} already holds {len(existing)} checkpoint(s) up to epoch {epoch} ({path.name}); pass "
                "--resume auto to continue that run, or choose another --save_dir / --config"
            )
        return None
    if resume == "auto":
        return existing[-1][1] if existing else None
    path = Path(resume).expanduser()
    if not path.is_file():
        raise ResumeError(f"--resume {resume}: no such checkpoint file")
    return path


def get_rng_state() -> Dict[str, Any]:
    """The python, numpy, torch and CUDA RNG states as plain values and tensors."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: Dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned (missing parts are left alone)."""
    if "python" in state:
        version, values, gauss = state["python"]
        random.setstate((version, tuple(values), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value: Any) -> Any:
    """Scheduler / scaler states with ``Counter`` and other dict subclasses turned into plain dicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def save_training_checkpoint(
    path: PathLike,
    net: nn.Module,
    *,
    net_type: str,
    epoch: int,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    config: Mapping[str, Any],
    train_info: Mapping[str, Any],
) -> Path:
    """Atomically write a resumable checkpoint (keys in the module docstring); return its path."""
    extra = {
        "optimizer": optimizer.state_dict(),
        "scheduler": _plain(scheduler.state_dict()) if scheduler is not None else {},
        "scaler": _plain(scaler.state_dict()) if scaler is not None and scaler.is_enabled() else {},
        "rng": get_rng_state(),
        "config": _plain(dict(config)),
        "train": _plain(dict(train_info)),
    }
    return save_checkpoint(path, net, net_type=net_type, epoch=int(epoch), extra=extra)


def load_training_checkpoint(path: PathLike, net_type: str) -> TrainingState:
    """Read a checkpoint written by :func:`save_training_checkpoint` (CPU tensors) and check its class."""
    state = read_checkpoint(path)
    found = state.get("net_type")
    if found is not None and found != net_type:
        raise ResumeError(f"{path}: checkpoint of a {found} network, but this config trains {net_type}")
    if not isinstance(state.get("epoch"), int) or "net" not in state:
        raise CheckpointError(path, "not a training checkpoint (needs 'epoch' and 'net')")
    return state


def restore_training_state(
    state: Mapping[str, Any],
    net: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    scheduler: Any,
    scaler: Any,
    source: str,
) -> int:
    """Load net (strict key check), optimizer, scheduler, scaler and RNG states; return the finished epoch.

    A checkpoint without optimizer state (e.g. a reference or converted file) restores the weights and epoch
    only; the caller logs that.
    """
    load_state_dict_checked(net, state["net"], source=source)
    if optimizer is not None and state.get("optimizer"):
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise ResumeError(f"{source}: optimizer state does not fit this network ({exc})") from None
    if scheduler is not None and state.get("scheduler"):
        sched_state = dict(state["scheduler"])
        if isinstance(getattr(scheduler, "milestones", None), collections.Counter) and "milestones" in sched_state:
            sched_state["milestones"] = collections.Counter(sched_state["milestones"])
        scheduler.load_state_dict(sched_state)
    if scaler is not None and scaler.is_enabled() and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if state.get("rng"):
        set_rng_state(state["rng"])
    return int(state["epoch"])
