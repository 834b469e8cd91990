"""Optimiser and learning-rate schedule of a resolved config (``TRAIN.*``), as in the reference recipe.

Parameter groups (reference §10.1; weight decay on every parameter):

==== ================================================================================= =============================
group members                                                                           learning rate
==== ================================================================================= =============================
0    names without ``backbone`` (``identity``)                                          ``TRAIN.LR``
1    ``backbone.*`` except the names of group 2: patch embed, pos-embeds, blocks, norm  ``LR * BACKBONE_MULTIPLIER``
2    ``backbone.*`` containing ``output_bias``, ``embeddings`` or ``extension``         ``TRAIN.LR``
==== ================================================================================= =============================

The schedule is stepped once per epoch: ``step`` (StepLR every ``LR_DROP_EPOCH`` epochs), ``Mstep``
(MultiStepLR at ``SCHEDULER.MILESTONES``), both with gamma ``SCHEDULER.DECAY_RATE``, or ``cosine`` (cosine
annealing from the group LR to 0 over ``TRAIN.EPOCH`` epochs).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

import torch
from torch import nn

__all__ = ["GROUP_NAMES", "build_optimizer", "build_scheduler", "group_of", "param_groups"]

#: Names of the three parameter groups, in optimiser order.
GROUP_NAMES = ("head", "backbone", "backbone_full_lr")

_FULL_LR_WORDS = ("output_bias", "embeddings", "extension")


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def group_of(name: str) -> int:
    """Index (0, 1 or 2) of the parameter group that the parameter called ``name`` belongs to."""
    if "backbone" not in name:
        return 0
    return 2 if any(word in name for word in _FULL_LR_WORDS) else 1


def param_groups(net: nn.Module, cfg: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The three AdamW parameter groups of ``net`` (trainable parameters only), each with its ``lr``.

    Every group is present, possibly empty, so optimizer states have the same layout in every stage.
    """
    train = cfg["TRAIN"]
    lr = float(train["LR"])
    lrs = (lr, lr * float(train["BACKBONE_MULTIPLIER"]), lr)
    members: List[List[nn.Parameter]] = [[], [], []]
    for name, param in _unwrap(net).named_parameters():
        if param.requires_grad:
            members[group_of(name)].append(param)
    return [{"params": params, "lr": group_lr, "name": name} for params, group_lr, name in zip(members, lrs, GROUP_NAMES)]


def build_optimizer(net: nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups` (betas 0.9/0.999, eps 1e-8, ``TRAIN.WEIGHT_DECAY`` on every group)."""
    train = cfg["TRAIN"]
    if train["OPTIMIZER"] != "ADAMW":
        raise ValueError(f"TRAIN.OPTIMIZER: only ADAMW is supported, got {train['OPTIMIZER']!r}")
    groups = param_groups(net, cfg)
    if not any(group["params"] for group in groups):
        raise ValueError("the network has no trainable parameters")
    return torch.optim.AdamW(groups, lr=float(train["LR"]), weight_decay=float(train["WEIGHT_DECAY"]))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any]) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch LR schedule named by ``TRAIN.SCHEDULER.TYPE``."""
    train = cfg["TRAIN"]
    sched = train["SCHEDULER"]
    kind, gamma = sched["TYPE"], float(sched["DECAY_RATE"])
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(train["LR_DROP_EPOCH"]), gamma=gamma)
    if kind == "Mstep":
        milestones = [int(m) for m in sched["MILESTONES"]]
        if not milestones:
            raise ValueError("TRAIN.SCHEDULER.MILESTONES must be set when TRAIN.SCHEDULER.TYPE is Mstep")
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(train["EPOCH"]), eta_min=0.0)
    raise ValueError(f"TRAIN.SCHEDULER.TYPE: unknown schedule {kind!r} (expected step, Mstep or cosine)")
