"""The training data loader: datasets from the config, the sampler of the stage, distributed index split.

A training sample is a pure function of ``(seed, epoch, index)`` (see :mod:`fartrack.data.sampler`), so the
loader needs no shuffling: indices are visited in order, and with ``world_size`` W > 1 rank r gets the
indices r, r + W, r + 2W, ... (the split of ``DistributedSampler(shuffle=False)``). A 2-rank run with
per-rank batch B therefore sees exactly the samples of a 1-rank run with batch 2B.

Epochs: call ``loader.dataset.set_epoch(e)`` or ``loader.sampler.set_epoch(e)`` (either sets both) before
iterating. The sampler yields ``(epoch, index)`` pairs, so worker processes need no epoch state: they are
started once per loader (``spawn``, persistent), which also avoids the fork-after-threads deadlocks of
OpenCV's thread pool.

Length: with ``DATA.TRAIN.SAMPLE_SCOPE = "global"`` an epoch has ``SAMPLE_PER_EPOCH // (B * W)`` batches
per rank; with ``"per_rank"`` (the stage-3 reference behaviour) each rank gets ``SAMPLE_PER_EPOCH // B``.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from fartrack.data.datasets.registry import build_datasets
from fartrack.data.processing import FrameProcessing
from fartrack.data.sampler import ClipSampleDataset, FrameSampleDataset, SampleError

__all__ = ["EpochIndexSampler", "SampleError", "build_sample_dataset", "build_train_loader", "collate_clips", "collate_frames"]


def collate_frames(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack frame-level samples into the batch of the loader contract (batch dimension first)."""
    return {
        "template_images": torch.stack([it["template_images"] for it in items]),
        "template_anno": torch.stack([it["template_anno"] for it in items]),
        "search_images": torch.stack([it["search_images"] for it in items]),
        "search_anno": torch.stack([it["search_anno"] for it in items]),
        "valid": torch.tensor([bool(it["valid"]) for it in items], dtype=torch.bool),
        "dataset": [it["dataset"] for it in items],
        "seq_name": [it["seq_name"] for it in items],
    }


def collate_clips(items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Clips are returned as a list of per-clip dicts (nothing stacked: frame sizes differ)."""
    return list(items)


class EpochIndexSampler(Sampler):
    """Yields ``(epoch, index)`` for the indices ``rank, rank + world_size, ...`` below ``len(dataset)``.

    The epoch is the dataset's (``dataset.epoch``) when iteration starts; :meth:`set_epoch` sets it.
    """

    def __init__(self, dataset, rank: int = 0, world_size: int = 1):
        self.dataset, self.rank, self.world_size = dataset, int(rank), int(world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the next iteration (sets the dataset's epoch too)."""
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset) // self.world_size

    def __iter__(self):
        epoch = int(self.dataset.epoch)
        for index in range(self.rank, len(self) * self.world_size, self.world_size):
            yield (epoch, index)


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    cv2.setNumThreads(1)


def build_sample_dataset(cfg: Any, settings: Any, *, split: str = "train", stage: str = "frame", seed: int = 0,
                         epoch: int = 0, length: Optional[int] = None):
    """The torch dataset of ``split`` (``DATA.TRAIN`` or ``DATA.VAL``) for ``stage`` (``frame`` or ``clip``).

    ``length`` defaults to ``SAMPLE_PER_EPOCH`` of the split.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if stage not in ("frame", "clip"):
        raise ValueError(f"stage must be 'frame' or 'clip', got {stage!r}")
    part = cfg.DATA.TRAIN if split == "train" else cfg.DATA.VAL
    names, ratios = list(part.DATASETS_NAME), list(part.DATASETS_RATIO)
    key = f"DATA.{split.upper()}"
    if len(names) != len(ratios):
        raise ValueError(
            f"{key}.DATASETS_NAME has {len(names)} entries but {key}.DATASETS_RATIO has {len(ratios)}"
        )
    if not names:
        raise ValueError(f"{key}.DATASETS_NAME is empty")
    datasets = build_datasets(names, cfg, settings)
    length = int(part.SAMPLE_PER_EPOCH) if length is None else int(length)
    retry = int(cfg.DATA.SAMPLE_RETRY_LIMIT)
    if stage == "clip":
        if split != "train":
            raise ValueError("clip (stage-3) loaders exist only for split 'train'")
        return ClipSampleDataset(
            datasets, ratios, length, num_templates=int(cfg.DATA.TEMPLATE.NUMBER),
            num_search=int(cfg.DATA.SEARCH.NUMBER), max_gap=int(cfg.DATA.MAX_GAP), seed=seed, epoch=epoch,
            retry_limit=retry, interval_prob=float(cfg.DATA.INTERVAL_PROB), max_interval=int(cfg.DATA.MAX_INTERVAL),
        )
    if int(cfg.DATA.SEARCH.NUMBER) != 1:
        raise ValueError(f"frame-level training uses one search frame; DATA.SEARCH.NUMBER is {cfg.DATA.SEARCH.NUMBER}")
    processing = FrameProcessing.from_config(cfg, mode="train" if split == "train" else "val")
    return FrameSampleDataset(
        datasets, ratios, length, processing, num_templates=int(cfg.DATA.TEMPLATE.NUMBER),
        max_gap=int(cfg.DATA.MAX_SAMPLE_INTERVAL), seed=seed, epoch=epoch, retry_limit=retry,
    )


def build_train_loader(
    cfg: Any,
    settings: Any,
    *,
    split: str = "train",
    stage: str = "frame",
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    epoch: int = 0,
    batch_size: Optional[int] = None,
    num_workers: Optional[int] = None,
) -> DataLoader:
    """The loader of the training contract (see the module docstring).

    Args:
        cfg: resolved config (``DATA.*``, ``TRAIN.BATCH_SIZE``, ``TRAIN.NUM_WORKER``).
        settings: :func:`fartrack.config.load_train_settings` result (dataset roots).
        split: ``train`` or ``val``; stage: ``frame`` (stages 1-2) or ``clip`` (stage 3).
        rank, world_size: this process and the number of processes; seed: base seed (the same on every
            rank); epoch: initial epoch; batch_size / num_workers: per-rank overrides of the config.

    Raises:
        DatasetError: a dataset root, split file or annotation file is missing or malformed (named).
        ValueError: inconsistent config values (named), or an epoch shorter than one global batch.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    batch = int(cfg.TRAIN.BATCH_SIZE if batch_size is None else batch_size)
    workers = int(cfg.TRAIN.NUM_WORKER if num_workers is None else num_workers)
    part = cfg.DATA.TRAIN if split == "train" else cfg.DATA.VAL
    samples = int(part.SAMPLE_PER_EPOCH)
    per_rank = split == "train" and str(cfg.DATA.TRAIN.SAMPLE_SCOPE) == "per_rank"
    batches = samples // batch if per_rank else samples // (batch * world_size)
    if batches < 1:
        raise ValueError(
            f"DATA.{split.upper()}.SAMPLE_PER_EPOCH = {samples} is smaller than one "
            f"{'per-rank' if per_rank else 'global'} batch ({batch} x {1 if per_rank else world_size} processes)"
        )
    dataset = build_sample_dataset(cfg, settings, split=split, stage=stage, seed=seed, epoch=epoch,
                                   length=batches * batch * world_size)
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=EpochIndexSampler(dataset, rank, world_size),
        num_workers=workers,
        collate_fn=collate_clips if stage == "clip" else collate_frames,
        drop_last=True,
        pin_memory=torch.cuda.is_available() and stage == "frame",
        worker_init_fn=_worker_init if workers > 0 else None,
        multiprocessing_context="spawn" if workers > 0 else None,
        persistent_workers=workers > 0,
    )
