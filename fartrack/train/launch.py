"""What ``tracking/train.py`` runs: a training process, or torchrun around N of them.

* ``--mode single`` (or any mode inside a torchrun worker, detected from ``RANK`` / ``WORLD_SIZE`` /
  ``LOCAL_RANK``): this process trains (:func:`run_worker`).
* ``--mode multiple``: ``python -m torch.distributed.run --standalone --nproc_per_node N tracking/train.py ...``
  (one machine, a free rendezvous port chosen by torchrun).
* ``--mode multi_node``: ``... --nnodes K --node_rank R --master_addr A --master_port P`` on every machine.

The launcher forwards SIGINT / SIGTERM to torchrun, returns its exit status (a failing rank fails the whole
run: torchrun stops the other ranks) and prints each failed rank's one-line cause last, read from small
error files the workers leave in a temporary folder (``FARTRACK_ERROR_DIR``).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import List, Optional, Sequence

from fartrack.train.distributed import env_is_distributed

__all__ = ["ERROR_DIR_ENV", "main", "run_torchrun", "run_worker", "torchrun_command"]

#: Environment variable naming the folder where failing workers write ``rank<R>.txt``.
ERROR_DIR_ENV = "FARTRACK_ERROR_DIR"

PROG = "train.py"

# Errors whose message says everything: printed without a traceback.
_CLEAN_ERRORS = (
    "ConfigError",
    "ConfigFileNotFoundError",
    "LocalSettingsError",
    "LocalSettingsNotFoundError",
    "MissingSettingError",
    "CheckpointError",
    "ResumeError",
    "StartError",
    "WandbUnavailableError",
    "SampleError",
    "DatasetError",
    "FrameReadError",
    "FileNotFoundError",
    "NotADirectoryError",
    "PermissionError",
    "FloatingPointError",
)


def config_name_of(config: str) -> str:
    """The run-folder name of ``--config``: the name itself, or the file stem for a YAML path."""
    text = os.fspath(config)
    if text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text:
        return Path(text).stem
    return text


def torchrun_command(args: argparse.Namespace, argv: Sequence[str], script: str) -> List[str]:
    """The torchrun command line that starts ``script argv`` on this machine for ``args.mode``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc_per_node)]
    if args.mode == "multiple":
        cmd += ["--standalone", "--nnodes", "1"]
    elif args.mode == "multi_node":
        cmd += [
            "--nnodes", str(args.nnodes), "--node_rank", str(args.node_rank),
            "--master_addr", str(args.master_addr), "--master_port", str(args.master_port),
        ]
    else:
        raise ValueError(f"torchrun is only used for --mode multiple / multi_node, not {args.mode!r}")
    return cmd + [script, *argv]


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _report_failures(error_dir: Path, status: int) -> None:
    records = []
    for path in error_dir.glob("rank*.txt"):
        try:
            records.append((path.stat().st_mtime, path.stem, path.read_text(encoding="utf-8").strip()))
        except OSError:
            continue
    records.sort()
    for _, rank, message in records[1:]:
        print(f"{PROG}: {rank} also failed: {message.splitlines()[0] if message else '?'}", file=sys.stderr)
    if records:
        _, rank, message = records[0]
        print(f"{PROG}: error: {message} (first failure; torchrun exit status {status})", file=sys.stderr)
    else:
        print(f"{PROG}: error: torchrun exited with status {status} (see the output above)", file=sys.stderr)


def run_torchrun(cmd: Sequence[str]) -> int:
    """Run ``cmd`` (torchrun), forwarding SIGINT/SIGTERM; return its status, reporting failed ranks last."""
    error_dir = Path(tempfile.mkdtemp(prefix="fartrack-train-errors-"))
    env = dict(os.environ, **{ERROR_DIR_ENV: str(error_dir)})
    try:
        child = subprocess.Popen(list(cmd), env=env)
        previous = {}

        def forward(signum, _frame):
            if child.poll() is None:
                child.send_signal(signum)

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, forward)
        try:
            status = _status(child.wait())
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if status != 0:
            _report_failures(error_dir, status)
        return status
    finally:
        shutil.rmtree(error_dir, ignore_errors=True)


def _record_error(message: str) -> None:
    folder = os.environ.get(ERROR_DIR_ENV)
    if not folder:
        return
    from fartrack.utils.io import atomic_write_text

    rank = os.environ.get("RANK", "0")
    try:
        atomic_write_text(Path(folder) / f"rank{rank}.txt", message + "\n")
    except OSError:
        pass


def run_worker(args: argparse.Namespace) -> int:
    """Train in this process (alone, or as one torchrun rank); return the exit status.

    Failures print ``train.py: error: <cause>`` as the last line on stderr (with a traceback first for
    unexpected errors) and return 1; Ctrl-C returns 130.
    """
    try:
        from fartrack.config import load_config, load_train_settings, parse_overrides
        from fartrack.train.trainer import TrainOptions, run_training

        overrides = parse_overrides(args.set or [])
        if args.seed is not None:
            overrides["TRAIN.SEED"] = args.seed
        cfg = load_config(args.script, args.config, overrides=overrides or None)
        settings = load_train_settings(args.settings_root)
        options = TrainOptions(
            script=args.script,
            config_name=config_name_of(args.config),
            save_dir=Path(args.save_dir),
            resume=args.resume,
            seed=args.seed,
            use_wandb=bool(args.use_wandb),
            device=args.device,
        )
        run_training(cfg, options, settings)
        return 0
    except KeyboardInterrupt:
        message, status = "interrupted", 130
    except Exception as exc:  # noqa: BLE001 - every failure must end the run with a non-zero status
        clean = type(exc).__name__ in _CLEAN_ERRORS
        message, status = (str(exc) if clean else f"{type(exc).__name__}: {exc}"), 1
        if not clean:
            traceback.print_exc()
        elif "\nOriginal Traceback" in message:  # raised in a data-loader worker: the cause is the last line
            print(message, file=sys.stderr)
            message = message.strip().splitlines()[-1]
    # The exception (and the frames holding the trainer) is gone now: collecting it stops the data-loader
    # workers, so their last log lines come before the cause, which stays the last line.
    gc.collect()
    if env_is_distributed():
        message = f"rank {os.environ.get('RANK')}: {message}"
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    _record_error(message)
    return status


def _precheck(args: argparse.Namespace) -> Optional[str]:
    """Config and settings errors, found before torchrun starts any process (``None`` when fine)."""
    try:
        from fartrack.config import load_config, load_train_settings, parse_overrides

        load_config(args.script, args.config, overrides=parse_overrides(args.set or []) or None)
        load_train_settings(args.settings_root)
    except Exception as exc:  # noqa: BLE001 - reported as the one-line cause
        return str(exc)
    return None


def main(args: argparse.Namespace, argv: Sequence[str], script: str) -> int:
    """Entry point of ``tracking/train.py`` after argument parsing."""
    if args.mode == "single" or env_is_distributed():
        return run_worker(args)
    problem = _precheck(args)
    if problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 1
    return run_torchrun(torchrun_command(args, argv, script))
