"""Build a ready-to-run tracker from an experiment config and a checkpoint."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import torch

from fartrack.models.build import build_network, build_tracker_network, default_device
from fartrack.tracker.tracker import FARTracker, tracker_params_from


def build_tracker(
    cfg: Mapping[str, Any],
    checkpoint: Optional[str | os.PathLike] = None,
    *,
    layers: Optional[int] = None,
    device: Optional[str | torch.device] = None,
    mode: str = "auto",
) -> FARTracker:
    """A :class:`FARTracker` for ``cfg``, with weights from ``checkpoint`` (strict load).

    ``checkpoint=None`` gives random weights (for profiling and tests only). ``layers`` overrides
    ``MODEL.LAYERS`` (tiny 15, nano 10, pico 6); ``mode`` is ``auto`` (token removal for sparse models),
    ``masked`` (the reference's computation) or ``dense``.
    """
    device = default_device(device if device is None else str(device))
    if checkpoint is None:
        net = build_network(cfg).to(device).eval()
    else:
        net = build_tracker_network(cfg, checkpoint, device)
    return FARTracker(net, tracker_params_from(cfg, depth=layers, mode=mode))
