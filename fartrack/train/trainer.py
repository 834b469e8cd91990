"""The one trainer: the same loop for 1 CPU process, N CPU processes (gloo), N GPUs (nccl) and many machines.

What a run does (``run_training``):

1. join the process group of the environment (torchrun) or run alone; seed python/numpy/torch;
2. decide where to start (``--resume``) and check ``MODEL.PRETRAIN_*`` on rank 0 before any work, broadcasting
   the decision (or the error) so every rank stops with the same message;
3. build the network, load the previous stage (rank 0; DDP broadcasts rank 0's weights), the optimiser, the
   schedule, the AMP scaler, the stage (:func:`fartrack.train.stages.build_stage`) and the loader;
4. per epoch: reseed from ``(seed, rank, epoch)`` once the loader's iterator exists (creating it may draw worker
   seeds from the global RNG), so a resumed epoch replays the same drop-path stream; consume ``stage.losses(net, batch)`` items calling backward on
   each (under DDP ``no_sync``), average the gradients over the ranks once after the batch's last item (at the
   end of each ``TRAIN.ACCUM_STEPS`` window), unscale / clip / step, step the schedule per epoch, validate
   (frame-level stages), save on rank 0;
5. check that every rank ends with identical parameters.

Gradients are averaged in one bucketed all-reduce after the last item instead of by DDP's reducer during the
last backward: the stage runs the forward before it yields an item, so the trainer cannot know in time which
forward will be the last one; the result is what DDP computes, and unused parameters need no
``find_unused_parameters``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

import torch
import yaml
from torch import nn

from fartrack.config import config_to_dict
from fartrack.models.build import build_network
from fartrack.train.checkpointing import (
    checkpoint_path,
    find_resume_checkpoint,
    load_training_checkpoint,
    restore_training_state,
    run_dir,
    save_training_checkpoint,
    should_save,
)
from fartrack.train.distributed import (
    DistInfo,
    all_reduce_gradients,
    average_stats,
    broadcast_object,
    init_distributed,
    seed_everything,
    teardown,
)
from fartrack.train.logging_utils import StatTracker, TrainLogger, check_wandb_available, format_stats
from fartrack.train.optim import build_optimizer, build_scheduler
from fartrack.utils.io import atomic_write_text

__all__ = ["StartError", "TrainOptions", "TrainResult", "Trainer", "run_training", "unwrap"]

LoaderFn = Callable[..., Any]


class StartError(RuntimeError):
    """Raised on ranks other than 0 when rank 0 failed to set the run up (the message is rank 0's)."""


@dataclass
class TrainOptions:
    """Run-level options (the command line), separate from the experiment config."""

    script: str
    config_name: str
    save_dir: Path
    resume: Optional[str] = None
    seed: Optional[int] = None
    use_wandb: bool = False
    device: Optional[str] = None
    max_iters_per_epoch: Optional[int] = None  # benchmarks only: stop each epoch early


@dataclass
class TrainResult:
    """What a finished run reports."""

    last_epoch: int
    optimizer_steps: int
    checkpoints: List[Path] = field(default_factory=list)
    epoch_stats: Dict[int, Dict[str, float]] = field(default_factory=dict)
    param_checksum: str = ""


def unwrap(net: nn.Module) -> nn.Module:
    """The plain network inside a DDP wrapper."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def param_checksum(net: nn.Module) -> str:
    """SHA-1 of all parameter bytes in state-dict order (identical ranks give identical digests)."""
    digest = hashlib.sha1()
    for name, param in unwrap(net).named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Mapping):
        for key in ("search_images", "template_images"):
            value = batch.get(key)
            if isinstance(value, torch.Tensor):
                return int(value.shape[0])
        return 1
    if isinstance(batch, (list, tuple)):
        return len(batch)
    return 1


def _set_epoch(loader: Any, epoch: int) -> None:
    for holder in (getattr(loader, "dataset", None), getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if holder is not None and hasattr(holder, "set_epoch"):
            holder.set_epoch(epoch)


def _amp_dtype(cfg: Mapping[str, Any], device: torch.device) -> Optional[torch.dtype]:
    train = cfg["TRAIN"]
    if not train["AMP"]:
        return None
    choice = train["AMP_DTYPE"]
    if choice == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    if choice == "float16" and device.type != "cuda":
        raise ValueError("TRAIN.AMP_DTYPE float16 needs a CUDA device; use bfloat16 (or auto) on the CPU")
    return torch.float16 if choice == "float16" else torch.bfloat16


def _no_buffer_sync() -> Dict[str, bool]:
    """DDP keyword that turns off the per-forward buffer broadcast (our buffers are constants)."""
    import inspect

    params = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}


class Trainer:
    """One training run (see the module docstring). ``stage`` / ``loader_fn`` may be injected for tests."""

    def __init__(
        self,
        cfg: Mapping[str, Any],
        options: TrainOptions,
        settings: Any,
        dist_info: DistInfo,
        *,
        stage: Any = None,
        loader_fn: Optional[LoaderFn] = None,
        stream=None,
    ) -> None:
        self.cfg = cfg
        self.opts = options
        self.settings = settings
        self.info = dist_info
        self.device = dist_info.device
        self.seed = int(cfg["TRAIN"]["SEED"] if options.seed is None else options.seed)
        self.save_dir = Path(options.save_dir).expanduser().resolve()
        self.run_dir = run_dir(self.save_dir, options.script, options.config_name)
        if options.use_wandb:
            check_wandb_available()
        seed_everything(self.seed, dist_info.rank)

        net = build_network(cfg)
        self.net_type = net.net_type
        start = self._decide_start()  # rank 0 decides; every rank gets the decision or the error
        resume_state = None
        if start["resume"] is not None:
            resume_state = self._read_resume_state(Path(start["resume"]))
        elif self.info.is_main:
            from fartrack.models.pretrained import load_pretrained

            self.pretrain_report = load_pretrained(net, cfg, self.save_dir, settings=settings)
        self.net = net.to(self.device)
        self.optimizer = build_optimizer(self.net, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.amp_dtype = _amp_dtype(cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.start_epoch = 0
        self.steps_before = 0  # optimiser steps of the run this one resumes
        if resume_state is not None:
            self.steps_before = int((resume_state.get("train") or {}).get("optimizer_steps", 0))
            self.start_epoch = restore_training_state(
                resume_state, self.net, self.optimizer, self.scheduler, self.scaler, source=str(start["resume"])
            )
            self._check_resumed_config(resume_state.get("config"))
        if self.info.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=device_ids, find_unused_parameters=False, **_no_buffer_sync()
            )

        if stage is None:
            from fartrack.train.stages import build_stage

            stage = build_stage(cfg)
        self.stage = stage
        if loader_fn is None:
            from fartrack.data.loader import build_train_loader

            loader_fn = build_train_loader
        self.loader_fn = loader_fn
        self.loader = self._loader("train", self.start_epoch + 1)
        self.val_loader = self._loader("val", self.start_epoch + 1) if self._validation_planned() else None

        self.logger = self._make_logger(stream)
        self.optimizer_steps = 0
        self.result = TrainResult(last_epoch=self.start_epoch, optimizer_steps=0)
        self._warned_last = False

    # ------------------------------------------------------------------ set-up helpers
    def _decide_start(self) -> Dict[str, Any]:
        """Rank 0 picks the checkpoint to resume (or checks MODEL.PRETRAIN_*); every rank gets the outcome."""
        decision: Dict[str, Any] = {"resume": None, "error": None}
        caught: Optional[BaseException] = None
        if self.info.is_main:
            try:
                path = find_resume_checkpoint(self.run_dir, self.net_type, self.opts.resume)
                decision["resume"] = None if path is None else str(path)
                if path is None:
                    from fartrack.models.pretrained import check_pretrained_paths

                    check_pretrained_paths(self.cfg, self.save_dir, self.settings)
            except Exception as exc:  # noqa: BLE001 - forwarded to every rank, re-raised below
                caught, decision["error"] = exc, str(exc)
        decision = broadcast_object(decision)
        if caught is not None:
            raise caught
        if decision["error"] is not None:
            raise StartError(f"rank 0 could not start: {decision['error']}")
        return decision

    def _read_resume_state(self, path: Path) -> Dict[str, Any]:
        """Rank 0 reads the checkpoint and broadcasts it (other nodes need no copy of the file)."""
        state, error, caught = None, None, None
        if self.info.is_main:
            try:
                state = load_training_checkpoint(path, self.net_type)
            except Exception as exc:  # noqa: BLE001 - forwarded to every rank
                caught, error = exc, str(exc)
        state, error = broadcast_object((state, error))
        if caught is not None:
            raise caught
        if error is not None:
            raise StartError(f"rank 0 could not resume: {error}")
        return state

    def _check_resumed_config(self, saved: Optional[Mapping[str, Any]]) -> None:
        self._config_changes: List[str] = []
        if not saved:
            return
        now = config_to_dict(self.cfg)

        def walk(a: Any, b: Any, prefix: str) -> None:
            if isinstance(a, Mapping) and isinstance(b, Mapping):
                for key in sorted(set(a) | set(b)):
                    walk(a.get(key), b.get(key), f"{prefix}{key}.")
            elif a != b:
                self._config_changes.append(f"{prefix[:-1]}: {b!r} -> {a!r}")

        walk(now, saved, "")

    def _loader(self, split: str, epoch: int) -> Any:
        kwargs = dict(
            split=split, stage=self.stage.data_mode, rank=self.info.rank, world_size=self.info.world_size,
            seed=self.seed, epoch=epoch,
        )
        return self.loader_fn(self.cfg, self.settings, **kwargs)

    def _validation_planned(self) -> bool:
        if self.stage.data_mode != "frame" or not list(self.cfg["DATA"]["VAL"]["DATASETS_NAME"]):
            return False
        interval = int(self.cfg["TRAIN"]["VAL_EPOCH_INTERVAL"])
        return any(e % interval == 0 for e in range(self.start_epoch + 1, int(self.cfg["TRAIN"]["EPOCH"]) + 1))

    def _make_logger(self, stream) -> TrainLogger:
        opts = self.opts
        tag = f"{opts.script}-{opts.config_name}"
        tb_dir = self.save_dir / "tensorboard" / "train" / opts.script / opts.config_name
        wandb = None
        if opts.use_wandb:
            wandb = {"project": "fartrack", "name": tag, "directory": self.save_dir / "wandb", "config": config_to_dict(self.cfg)}
        logger = TrainLogger(
            enabled=self.info.is_main,
            log_file=self.save_dir / "logs" / f"{tag}.log",
            tensorboard_dir=tb_dir if self.cfg["TRAIN"]["TENSORBOARD"] else None,
            wandb=wandb,
            stream=stream,
        )
        if self.info.is_main:
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(config_to_dict(self.cfg), sort_keys=False))
            where = "cuda" if self.device.type == "cuda" else "cpu"
            logger.info(
                f"training {opts.script}/{opts.config_name}: {self.net_type}, {self.info.world_size} process(es) on "
                f"{where} ({self.info.backend or 'no process group'}), batch {self._batch_per_rank()} per process, "
                f"{len(self.loader)} iterations per epoch, seed {self.seed}, checkpoints in {self.run_dir}"
            )
            if self.start_epoch:
                logger.info(f"resumed from epoch {self.start_epoch}")
                for change in getattr(self, "_config_changes", []):
                    logger.info(f"warning: config differs from the checkpoint's: {change}")
            elif getattr(self, "pretrain_report", None):
                logger.info(f"initial weights: {self.pretrain_report}")
        return logger

    def _batch_per_rank(self) -> int:
        return int(getattr(self.loader, "batch_size", None) or self.cfg["TRAIN"]["BATCH_SIZE"])

    # ------------------------------------------------------------------ loop
    def fit(self) -> TrainResult:
        """Train from ``start_epoch + 1`` to ``TRAIN.EPOCH``; return the :class:`TrainResult`."""
        try:
            return self._fit()
        finally:
            self.logger.close()

    def _fit(self) -> TrainResult:
        last = int(self.cfg["TRAIN"]["EPOCH"])
        for epoch in range(self.start_epoch + 1, last + 1):
            _set_epoch(self.loader, epoch)
            stats = self.train_epoch(epoch)
            if self.val_loader is not None and epoch % int(self.cfg["TRAIN"]["VAL_EPOCH_INTERVAL"]) == 0:
                stats.update({f"val/{k}": v for k, v in self.validate(epoch).items()})
            self.scheduler.step()
            self.result.epoch_stats[epoch] = stats
            self.result.last_epoch = epoch
            if self.info.is_main and should_save(epoch, self.cfg):
                path = self.save(epoch, stats)
                self.result.checkpoints.append(path)
                self.logger.info(f"saved {path}")
        self.result.optimizer_steps = self.optimizer_steps
        self.result.param_checksum = self._check_ranks_agree()
        return self.result

    def _learning_rates(self) -> Dict[str, float]:
        return {f"LearningRate/group{k}": float(g["lr"]) for k, g in enumerate(self.optimizer.param_groups)}

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        """One pass over the training loader; returns the rank-averaged epoch statistics."""
        self.net.train()
        tracker = StatTracker()
        accum = int(self.cfg["TRAIN"]["ACCUM_STEPS"])
        interval = int(self.cfg["TRAIN"]["PRINT_INTERVAL"])
        total = len(self.loader)
        if self.opts.max_iters_per_epoch:
            total = min(total, int(self.opts.max_iters_per_epoch))
        self.optimizer.zero_grad(set_to_none=True)
        data_time = step_time = 0.0
        samples = 0
        batches = iter(self.loader)  # may draw from the global RNG (worker seeds), so reseed after it:
        seed_everything(self.seed, self.info.rank, epoch)  # the epoch's random stream, resumed or not
        epoch_start = tick = time.perf_counter()
        for i, batch in enumerate(self.logger.progress(batches, total, f"epoch {epoch}"), start=1):
            if i > total:
                break
            got = time.perf_counter()
            data_time += got - tick
            stats = self._backward_batch(batch, 1.0 / accum, epoch, i)
            if i % accum == 0 or i == total:
                stats.update(self._optimizer_step())
            n = _batch_size(batch)
            samples += n
            tracker.update(stats, n)
            tick = time.perf_counter()
            step_time += tick - got
            if i % interval == 0 or i == total:
                avg = average_stats(tracker.averages())
                elapsed = tick - epoch_start
                self.logger.info(
                    f"[train: {epoch}, {i} / {total}] FPS: {samples * self.info.world_size / max(elapsed, 1e-9):.1f}, "
                    f"DataTime: {data_time / i:.4f}, StepTime: {step_time / i:.4f}, "
                    + format_stats({**avg, **self._learning_rates()})
                )
        epoch_stats = average_stats(tracker.averages())
        elapsed = time.perf_counter() - epoch_start
        timing = {
            "Time/epoch_s": elapsed,
            "Time/data_s_per_iter": data_time / max(total, 1),
            "Time/step_s_per_iter": step_time / max(total, 1),
            "Samples_per_s": samples * self.info.world_size / max(elapsed, 1e-9),
        }
        epoch_stats.update(timing)
        epoch_stats.update(self._learning_rates())
        self.logger.scalars("train", epoch_stats, epoch)
        self.logger.info(
            f"epoch {epoch} done in {elapsed:.1f} s: {format_stats(timing)}"
        )
        return epoch_stats

    def train_step(self, batch: Any, epoch: int = 0, iteration: int = 0) -> Dict[str, float]:
        """Backward on every loss item of ``batch``, then one optimiser step (no accumulation); the stats."""
        self.net.train()
        stats = self._backward_batch(batch, 1.0, epoch, iteration)
        stats.update(self._optimizer_step())
        return stats

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _no_sync(self):
        return self.net.no_sync() if isinstance(self.net, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()

    def _items(self, batch: Any) -> Iterator[Any]:
        """The stage's loss items, each produced (forward included) under autocast and DDP ``no_sync``."""
        generator = self.stage.losses(self.net, batch, device=self.device)
        while True:
            with self._autocast(), self._no_sync():
                item = next(generator, None)
            if item is None:
                return
            yield item

    def _backward_batch(self, batch: Any, scale: float, epoch: int, iteration: int) -> Dict[str, float]:
        sums: Dict[str, float] = {}
        counts: Dict[str, int] = {}
        count = 0
        last_seen = False
        for item in self._items(batch):
            if not torch.isfinite(item.loss.detach()).all():
                where = ""
                if isinstance(batch, Mapping) and batch.get("seq_name") is not None:
                    where = f" (sequences {list(batch['seq_name'])[:8]})"
                raise FloatingPointError(
                    f"non-finite loss at epoch {epoch}, iteration {iteration}{where}: {format_stats(item.stats)}"
                )
            self.scaler.scale(item.loss * scale).backward()
            for key, value in item.stats.items():  # mean over the items that report the statistic
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
            count += 1
            last_seen = bool(item.last)
        if count and not last_seen and not self._warned_last:
            self._warned_last = True
            self.logger.info("warning: the stage's final loss item of a batch is not marked last=True")
        return {key: value / counts[key] for key, value in sums.items()}

    def _optimizer_step(self) -> Dict[str, float]:
        params = [p for p in unwrap(self.net).parameters() if p.requires_grad]
        if self.info.distributed:
            all_reduce_gradients(params)
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        clip = float(self.cfg["TRAIN"]["GRAD_CLIP_NORM"])
        with_grad = [p for p in params if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(with_grad, clip if clip > 0 else math.inf) if with_grad else torch.zeros(())
        norm = float(norm)
        if not math.isfinite(norm) and not self.scaler.is_enabled():
            raise FloatingPointError(f"non-finite gradient norm ({norm}) at optimiser step {self.optimizer_steps + 1}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer_steps += 1
        return {"grad_norm": norm}

    @torch.no_grad()
    def validate(self, epoch: int) -> Dict[str, float]:
        """Forward-only pass over the validation loader; returns the rank-averaged statistics."""
        self.net.eval()
        _set_epoch(self.val_loader, epoch)
        tracker = StatTracker()
        for batch in self.val_loader:
            with self._autocast():
                for item in self.stage.losses(self.net, batch, device=self.device):
                    tracker.update(item.stats, _batch_size(batch))
        stats = average_stats(tracker.averages())
        self.logger.info(f"[val: {epoch}] " + format_stats(stats))
        self.logger.scalars("val", stats, epoch)
        self.net.train()
        return stats

    def save(self, epoch: int, stats: Mapping[str, float]) -> Path:
        """Write ``<run_dir>/<NetClass>_ep%04d.pth.tar`` (rank 0)."""
        info = {
            "script": self.opts.script,
            "config_name": self.opts.config_name,
            "seed": self.seed,
            "world_size": self.info.world_size,
            "batch_per_process": self._batch_per_rank(),
            "accum_steps": int(self.cfg["TRAIN"]["ACCUM_STEPS"]),
            "optimizer_steps": self.steps_before + self.optimizer_steps,
            "stats": {k: float(v) for k, v in stats.items()},
        }
        path = checkpoint_path(self.run_dir, self.net_type, epoch)
        return save_training_checkpoint(
            path, unwrap(self.net), net_type=self.net_type, epoch=epoch, optimizer=self.optimizer,
            scheduler=self.scheduler, scaler=self.scaler, config=config_to_dict(self.cfg), train_info=info,
        )

    def _check_ranks_agree(self) -> str:
        digest = param_checksum(self.net)
        print(
            f"[rank {self.info.rank}/{self.info.world_size}] finished epoch {self.result.last_epoch}: "
            f"{self.optimizer_steps} optimiser steps, parameter checksum {digest}",
            file=sys.stderr,
            flush=True,
        )
        if self.info.distributed:
            import torch.distributed as dist

            digests: List[Optional[str]] = [None] * self.info.world_size
            dist.all_gather_object(digests, digest)
            if len(set(digests)) != 1:
                raise RuntimeError(f"ranks ended with different parameters (checksums {digests})")
        return digest


def run_training(
    cfg: Mapping[str, Any],
    options: TrainOptions,
    settings: Any,
    *,
    stage: Any = None,
    loader_fn: Optional[LoaderFn] = None,
    stream=None,
) -> TrainResult:
    """Join the environment's process group (if any), train, leave the group; return the result."""
    info = init_distributed(options.device)
    result = Trainer(cfg, options, settings, info, stage=stage, loader_fn=loader_fn, stream=stream).fit()
    teardown()
    return result
