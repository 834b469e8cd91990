"""Build a ready-to-run tracker from an experiment config and a checkpoint."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import torch

from fartrack.models.build import build_network, build_tracker_network, default_device
from fartrack.tracker.schedule import DEFAULT_TEMPLATE_CAP
from fartrack.tracker.tracker import FARTracker, TrackerParams, tracker_params_from

BACKENDS = ("torch", "onnxruntime", "auto")


def resolve_backend(backend: str, device: Optional[str | torch.device] = None, mode: str = "auto") -> str:
    """``auto`` -> ``onnxruntime`` for the fast network on the CPU when onnxruntime and onnx are installed
    (the fastest exact CPU path), else ``torch``; other values are returned unchanged after validation."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if mode not in ("auto", "fast") or default_device(None if device is None else str(device)).type != "cpu":
        return "torch"
    import importlib.util

    available = all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))
    return "onnxruntime" if available else "torch"


def build_tracker(
    cfg: Mapping[str, Any],
    checkpoint: Optional[str | os.PathLike] = None,
    *,
    layers: Optional[int] = None,
    device: Optional[str | torch.device] = None,
    mode: str = "auto",
    backend: str = "torch",
    onnx_model: Optional[str | os.PathLike] = None,
    template_cap: Optional[int] = DEFAULT_TEMPLATE_CAP,
) -> FARTracker:
    """A :class:`FARTracker` for ``cfg``, with weights from ``checkpoint`` (strict load).

    ``checkpoint=None`` gives random weights (for profiling and tests only). ``layers`` overrides
    ``MODEL.LAYERS`` (tiny 15, nano 10, pico 6); ``mode`` is ``auto`` (= ``fast``), ``fast`` (pruned tokens
    removed, fused attention; for sparse and dense checkpoints), ``masked`` / ``dense`` (the reference's
    computation, bitwise) or ``removed``.
    ``backend`` is ``torch`` (default) or ``onnxruntime``: the network runs in ONNX Runtime on the CPU, from
    ``onnx_model`` (a ``tracking/export_onnx.py`` output) or, when that is None, from the loaded network
    exported on the fly; ``auto`` picks ``onnxruntime`` on the CPU when it is installed (see
    :func:`resolve_backend`), else ``torch``. ``template_cap`` bounds the template memory (``None``: unbounded, as the reference).
    """
    backend = resolve_backend(backend, device, mode)
    if backend == "onnxruntime" and mode not in ("auto", "fast"):
        raise ValueError(f"the onnxruntime backend runs the fast network; mode {mode!r} needs backend='torch'")
    params = tracker_params_from(cfg, depth=layers, mode=mode, template_cap=template_cap)
    if backend == "onnxruntime":
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU; got device {device!r}")
        net = build_network(cfg).eval() if checkpoint is None else build_tracker_network(cfg, checkpoint, "cpu")
        fit_depth_to_network(params, net, layers)
        from fartrack.export.backend import OnnxRuntimeBackend

        depth = net.cfg.depth if params.depth is None else params.depth
        threads = torch.get_num_threads()
        if onnx_model is None:
            runtime = OnnxRuntimeBackend.from_network(net, params, depth, threads)
        else:
            runtime = OnnxRuntimeBackend(onnx_model, threads)
            runtime.check_matches(net, params, depth)
        return FARTracker(net, params, backend=runtime)
    device = default_device(device if device is None else str(device))
    if checkpoint is None:
        net = build_network(cfg).to(device).eval()
    else:
        net = build_tracker_network(cfg, checkpoint, device)
    fit_depth_to_network(params, net, layers)
    return FARTracker(net, params)


def fit_depth_to_network(params: TrackerParams, net: torch.nn.Module, layers: Optional[int]) -> None:
    """Without an explicit ``layers``, a shallower network (an extracted nano/pico variant) runs all its layers."""
    if layers is None and params.depth is not None and params.depth > net.cfg.depth:
        params.depth = net.cfg.depth
