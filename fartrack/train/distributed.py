"""Process-group set-up and the few collectives the trainer needs (one process, N CPU ranks or N GPUs).

The launcher contract is torchrun's: ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR`` /
``MASTER_PORT``) come from the environment. Without them the run is a single process and every helper here
degrades to a no-op. The backend is NCCL when the run uses CUDA devices, gloo otherwise.
"""

from __future__ import annotations

import datetime
import os
import random
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_reduce_gradients",
    "average_stats",
    "barrier",
    "broadcast_object",
    "env_is_distributed",
    "init_distributed",
    "seed_everything",
    "teardown",
]

#: Environment variables a torchrun worker always has.
_ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run: global rank, local rank, world size, device and backend."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one rank is active."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the only rank that logs and writes files)."""
        return self.rank == 0


def env_is_distributed(environ: Optional[Dict[str, str]] = None) -> bool:
    """Whether this process was started by torchrun (or another env:// launcher)."""
    env = os.environ if environ is None else environ
    return all(key in env for key in _ENV_KEYS)


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def init_distributed(device: Optional[str] = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by the environment (if any) and pick this rank's device.

    ``device`` is ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available). Under torchrun with CUDA each rank
    uses ``cuda:<LOCAL_RANK>`` and NCCL; on the CPU the backend is gloo.
    """
    want_cuda = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} requested but CUDA is not available")
    if not env_is_distributed():
        if want_cuda:
            dev = torch.device(device if device and ":" in str(device) else "cuda")
        else:
            dev = torch.device("cpu")
        return DistInfo(device=dev)
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if want_cuda:
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                "lower --nproc_per_node"
            )
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if world > 1 and not dist.is_initialized():
        kwargs: Dict[str, Any] = {"timeout": datetime.timedelta(seconds=timeout_s)}
        if backend == "nccl":
            kwargs["device_id"] = dev
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world, **kwargs)
    return DistInfo(rank=rank, local_rank=local, world_size=world, device=dev, backend=backend if world > 1 else None)


def teardown() -> None:
    """Leave the process group (safe to call when none is active).

    All ranks meet at a barrier first, so no rank tears its group down while a peer still talks to it.
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if _active():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank (pickled; for small control data and resume states)."""
    if not _active():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def average_stats(stats: Dict[str, float]) -> Dict[str, float]:
    """Mean of each statistic over the ranks that report it (keys may differ between ranks)."""
    if not _active():
        return dict(stats)
    gathered: List[Optional[Dict[str, float]]] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, {k: float(v) for k, v in stats.items()})
    sums: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    for part in gathered:
        for key, value in (part or {}).items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}


def all_reduce_gradients(params: Sequence[torch.nn.Parameter], bucket_bytes: int = 32 << 20) -> None:
    """Average ``.grad`` over the ranks in a few flat all-reduce calls (what DDP's reducer computes).

    A parameter without a gradient on some ranks gets zeros there; one without a gradient on every rank keeps
    ``grad = None`` (so the optimiser skips it, as in a single process).
    """
    if not _active():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    world = dist.get_world_size()
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    live = [p for p, flag in zip(params, has.tolist()) if flag > 0]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for bucket in _buckets(live, bucket_bytes):
        flat = torch.cat([p.grad.reshape(-1) for p in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world)
        offset = 0
        for p in bucket:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


def _buckets(params: Iterable[torch.nn.Parameter], bucket_bytes: int) -> List[List[torch.nn.Parameter]]:
    out: List[List[torch.nn.Parameter]] = []
    current: List[torch.nn.Parameter] = []
    size = 0
    for p in params:
        nbytes = p.grad.numel() * p.grad.element_size()
        same_dtype = not current or current[0].grad.dtype == p.grad.dtype
        if current and (size + nbytes > bucket_bytes or not same_dtype):
            out.append(current)
            current, size = [], 0
        current.append(p)
        size += nbytes
    if current:
        out.append(current)
    return out


def _mix(*values: int) -> int:
    """A 32-bit seed derived from several integers (stable across runs and platforms)."""
    seq = np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values])
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def seed_everything(seed: int, rank: int = 0, epoch: Optional[int] = None) -> int:
    """Seed python ``random``, numpy and torch (all devices) for this rank (and epoch); return the seed used.

    Without ``epoch`` the seed is ``seed + rank`` (the reference rule). With ``epoch`` it is a fixed mix of
    ``(seed, rank, epoch)``, so an epoch's random stream (drop-path, ...) is the same whether the run was
    resumed or not.
    """
    value = (seed + rank) if epoch is None else _mix(seed, rank, epoch)
    random.seed(value)
    np.random.seed(value % (2**32))
    torch.manual_seed(value)
    return value
