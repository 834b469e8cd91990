"""Profile a FARTrack model: parameters, MACs (two labelled conventions), model latency and tracker FPS.

Model-only latency is the network work of one tracked frame: patch-embedding the search crop and the new
template, the encoder over the scheduled template tokens (pruned ones removed for sparse models), the head
and the keep-mask scores. Tracker FPS adds cropping, normalisation, decoding and the memory update, on a
generated sequence (image reading excluded). Times are medians after warm-up, on the threads reported.

``macs_executed`` counts the multiply-accumulates the chosen path really executes per steady-state frame
(attention matmuls and head included; the fast path's last layer computes only the command tokens), and
the roofline is ``2 x macs_executed / (fp32 GEMM FLOP/s measured on a large matmul, same threads)``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Mapping, Optional

import numpy as np
import torch

from fartrack.data.synthetic import moving_box_sequence
from fartrack.models.complexity import count_macs, count_params, inference_token_count
from fartrack.models.sparsify import plan_probe
from fartrack.tracker.build import build_tracker
from fartrack.tracker.crop import crop_around_box, normalize_crop


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def complexity_report(net, depth: int, retain_tokens: int) -> dict[str, Any]:
    """Params and MACs of ``net`` at ``depth`` layers, each count labelled with its convention."""
    cfg = net.cfg
    t = cfg.num_templates
    all_templates = {cfg.template_size: t, cfg.search_size: 1}
    one_template = {cfg.template_size: 1, cfg.search_size: 1}
    dense_tokens = inference_token_count(net)
    ours_tokens = inference_token_count(net, retain_tokens) if cfg.sparse else dense_tokens
    paper_tokens = inference_token_count(net, 36)
    reference = count_macs(net, dense_tokens, all_templates, depth)
    ours = count_macs(net, ours_tokens, one_template, depth)
    paper = count_macs(net, paper_tokens, one_template, depth)
    return {
        "params": count_params(net, depth),
        "params_rule": "thop: patch embedding + executed layers + final norm (embedding tables not counted)",
        "macs": {
            "reference_dense_thop": reference.thop,
            "ours_inference_thop": ours.thop,
            "ours_inference_full": ours.full,
            "paper_reconstruction_thop": paper.thop,
        },
        "tokens": {"reference_dense": dense_tokens, "ours_inference": ours_tokens, "paper_reconstruction": paper_tokens},
        "macs_rule": (
            "thop: Linear/Conv weights + LayerNorm (4 x C per token), no attention matmuls, no head; "
            "full: thop + attention matmuls (2 N^2 C per layer) + tied head. reference_dense: all "
            f"{t} templates and the search embedded every frame, {dense_tokens} tokens, masks ignored (what the "
            f"released code computes); ours_inference: pruned tokens removed ({ours_tokens} tokens), one new "
            "template + the search embedded per frame (older templates cached); paper_reconstruction: "
            f"{paper_tokens} tokens (36 kept per older template), one template + search embedded."
        ),
    }


def executed_macs(net, depth: int, mode: str, retain_tokens: int, probe_rows: int = 1) -> int:
    """MACs one steady-state frame executes on the tracker path ``mode`` (see the module docstring).

    ``masked``/``dense``: every token of every template (masks do not save compute); ``removed``: pruned
    tokens dropped; ``fast``: dropped, and the last layer computes keys/values for all tokens but queries,
    attention, projection and MLP for the 4 command tokens (+ the probe rows' attention) only. One new
    template and the search crop are patch-embedded per frame on every path (older templates are cached).
    """
    cfg = net.cfg
    dense_tokens = inference_token_count(net)
    tokens = dense_tokens if mode in ("masked", "dense") or not cfg.sparse else inference_token_count(net, retain_tokens)
    count = count_macs(net, tokens, {cfg.template_size: 1, cfg.search_size: 1}, depth)
    if mode != "fast":
        return int(count.full)
    c, hidden = cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio)
    full_layer = (count.layers_thop + count.attention_matmuls) // depth
    rows = 4
    last_layer = (
        tokens * 2 * c * c  # keys and values of every token
        + (rows + probe_rows) * c * c  # queries of the command and probe rows
        + (2 * rows + probe_rows) * tokens * c  # their attention (probe rows: scores only)
        + rows * (c * c + 2 * c * hidden + 2 * 4 * c)  # projection, MLP, norms of the command rows
        + tokens * 4 * c  # first norm of every token
    )
    return int(count.patch_embed + full_layer * (depth - 1) + last_layer + count.head)


def gemm_gflops(threads: Optional[int] = None, size: int = 2048, repeats: int = 6) -> float:
    """fp32 GEMM throughput in GFLOP/s on a ``size`` x ``size`` matmul (best of ``repeats``)."""
    if threads is not None:
        torch.set_num_threads(int(threads))
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    with torch.inference_mode():
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def profile_tracker(
    cfg: Mapping[str, Any],
    *,
    layers: Optional[int] = None,
    checkpoint: Optional[str] = None,
    device: str = "cpu",
    threads: Optional[int] = None,
    mode: str = "auto",
    backend: str = "torch",
    frames: int = 60,
    runs: int = 50,
    warmup: int = 10,
    height: int = 360,
    width: int = 640,
    tracker=None,
    video=None,
) -> dict[str, Any]:
    """Measure one configuration; returns a JSON-ready dict (see the module docstring for definitions).

    ``tracker`` / ``video`` reuse an already built tracker or generated (frames, boxes) sequence.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    if tracker is None:
        tracker = build_tracker(cfg, checkpoint, layers=layers, device=device, mode=mode, backend=backend)
    net, depth = tracker.net, tracker.depth
    retain = net.cfg.template_tokens - tracker.num_pruned
    probe_rows = 0
    if net.cfg.sparse and tracker.mode != "dense":
        probe_rows = int(plan_probe(tracker.params.sparsify, 0, net.cfg.search_grid, slice(0, 1), 0).rows.numel())
    report: dict[str, Any] = {
        "layers": depth,
        "model": net.net_type,
        "mode": tracker.mode,
        "backend": "torch" if tracker.backend is None else "onnxruntime",
        "macs_executed": executed_macs(net, depth, tracker.mode, retain, probe_rows),
        "device": str(tracker.device),
        "threads": torch.get_num_threads(),
        "weights": checkpoint or "random init",
        "torch": torch.__version__,
    }
    report.update(complexity_report(net, depth, retain))

    if video is None:
        video = moving_box_sequence(num_frames=max(frames, warmup + 2), height=height, width=width, seed=0)
    video, boxes = video
    tracker.initialize(video[0], boxes[0])
    frame_times = []
    for index, frame in enumerate(video[1:]):
        start = time.perf_counter()
        tracker.track(frame)
        _synchronize(tracker.device)
        if index >= warmup:
            frame_times.append(time.perf_counter() - start)

    params = tracker.params
    crop, resize_factor = crop_around_box(video[-1], tracker.state, params.search_factor, params.search_size)
    search = normalize_crop(crop, params.mean, params.std, tracker.device)
    template = normalize_crop(crop[: params.template_size, : params.template_size], params.mean, params.std, tracker.device)
    slots = tracker.schedule.slots(tracker.num_stored)
    newest = tracker.memory[slots[-1]]
    model_times = []
    with torch.inference_mode():
        for index in range(warmup + runs):
            saved_keep, saved_index = newest.keep, newest.kept_index
            newest.keep = newest.kept_index = None  # the newest template is scored every frame
            start = time.perf_counter()
            tracker.embed_template(template)
            tracker.run_network(slots, search, resize_factor)
            _synchronize(tracker.device)
            elapsed = time.perf_counter() - start
            newest.keep, newest.kept_index = saved_keep, saved_index
            if index >= warmup:
                model_times.append(elapsed)
    model_ms = [t * 1000 for t in model_times]
    frame_ms = [t * 1000 for t in frame_times]
    report["latency_ms"] = {"median": statistics.median(model_ms), "p90": _percentile(model_ms, 90), "runs": runs}
    report["tracker_ms"] = {"median": statistics.median(frame_ms), "p90": _percentile(frame_ms, 90), "frames": len(frame_ms)}
    report["model_fps"] = 1000.0 / report["latency_ms"]["median"]
    report["tracker_fps"] = 1000.0 / report["tracker_ms"]["median"]
    report["sequence"] = {"frames": int(len(video)), "height": int(video.shape[1]), "width": int(video.shape[2])}
    return report


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def format_report(report: Mapping[str, Any]) -> str:
    """Human-readable summary of :func:`profile_tracker`'s output."""
    macs = report["macs"]
    lines = [
        f"model {report['model']} | layers {report['layers']} | mode {report['mode']} | backend {report['backend']} | "
        f"device {report['device']} | "
        f"threads {report['threads']} | weights {report['weights']}",
        f"params (thop rule): {report['params'] / 1e6:.3f} M",
        f"MACs ours at inference: {macs['ours_inference_thop'] / 1e9:.3f} G (thop rule), "
        f"{macs['ours_inference_full'] / 1e9:.3f} G (full, incl. attention matmuls + head), "
        f"{report['tokens']['ours_inference']} tokens",
        f"MACs reference dense computation (thop rule): {macs['reference_dense_thop'] / 1e9:.3f} G; "
        f"paper reconstruction (thop rule, 36 kept): {macs['paper_reconstruction_thop'] / 1e9:.3f} G",
        f"MACs executed per frame on this path: {report['macs_executed'] / 1e9:.3f} G (full rule)",
        f"model latency: median {report['latency_ms']['median']:.2f} ms, p90 {report['latency_ms']['p90']:.2f} ms "
        f"({report['model_fps']:.1f} FPS)",
        f"tracker end to end: median {report['tracker_ms']['median']:.2f} ms/frame ({report['tracker_fps']:.1f} FPS) on "
        f"{report['sequence']['frames']} generated {report['sequence']['width']}x{report['sequence']['height']} frames",
    ]
    return "\n".join(lines)
