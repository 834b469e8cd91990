"""Profile a FARTrack model: parameters, MACs (two labelled conventions), model latency and tracker FPS.

Model-only latency is the network work of one tracked frame: patch-embedding the search crop and the new
template, the encoder over the scheduled template tokens (pruned ones removed for sparse models), the head
and the keep-mask scores. Tracker FPS adds cropping, normalisation, decoding and the memory update, on a
generated sequence (image reading excluded). Times are medians after warm-up, on the threads reported.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Mapping, Optional

import numpy as np
import torch

from fartrack.data.synthetic import moving_box_sequence
from fartrack.models.complexity import count_macs, count_params, inference_token_count
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


def profile_tracker(
    cfg: Mapping[str, Any],
    *,
    layers: Optional[int] = None,
    checkpoint: Optional[str] = None,
    device: str = "cpu",
    threads: Optional[int] = None,
    mode: str = "auto",
    frames: int = 60,
    runs: int = 50,
    warmup: int = 10,
) -> dict[str, Any]:
    """Measure one configuration; returns a JSON-ready dict (see the module docstring for definitions)."""
    if threads is not None:
        torch.set_num_threads(int(threads))
    tracker = build_tracker(cfg, checkpoint, layers=layers, device=device, mode=mode)
    net, depth = tracker.net, tracker.depth
    retain = net.cfg.template_tokens - tracker.num_pruned
    report: dict[str, Any] = {
        "layers": depth,
        "model": net.net_type,
        "mode": tracker.mode,
        "device": str(tracker.device),
        "threads": torch.get_num_threads(),
        "weights": checkpoint or "random init",
        "torch": torch.__version__,
    }
    report.update(complexity_report(net, depth, retain))

    video, boxes = moving_box_sequence(num_frames=max(frames, warmup + 2))
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
            net.embed_templates(template)
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
        f"model {report['model']} | layers {report['layers']} | mode {report['mode']} | device {report['device']} | "
        f"threads {report['threads']} | weights {report['weights']}",
        f"params (thop rule): {report['params'] / 1e6:.3f} M",
        f"MACs ours at inference: {macs['ours_inference_thop'] / 1e9:.3f} G (thop rule), "
        f"{macs['ours_inference_full'] / 1e9:.3f} G (full, incl. attention matmuls + head), "
        f"{report['tokens']['ours_inference']} tokens",
        f"MACs reference dense computation (thop rule): {macs['reference_dense_thop'] / 1e9:.3f} G; "
        f"paper reconstruction (thop rule, 36 kept): {macs['paper_reconstruction_thop'] / 1e9:.3f} G",
        f"model latency: median {report['latency_ms']['median']:.2f} ms, p90 {report['latency_ms']['p90']:.2f} ms "
        f"({report['model_fps']:.1f} FPS)",
        f"tracker end to end: median {report['tracker_ms']['median']:.2f} ms/frame ({report['tracker_fps']:.1f} FPS) on "
        f"{report['sequence']['frames']} generated {report['sequence']['width']}x{report['sequence']['height']} frames",
    ]
    return "\n".join(lines)
