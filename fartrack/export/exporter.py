"""Export a FARTrack network to ONNX: the per-frame network and the template embedder, static input shapes.

Per-frame graph (``model.onnx``), for sparse models::

    slot_tokens   (1, T*tz, C) float32  cached template embeddings in slot order (patch embedding + pos_embed_z0,
                                         no slot identity), as returned by the template graph
    slot_keep     (T*tz,) bool           keep-mask of the template tokens (the newest slot is always kept)
    search        (1, 3, S, S) float32   normalised search crop
    [trajectory_ids (1, PRENUM*4) int64  only for the trajectory-token variant]
    -> logits (1, 4, V) float32, scores (1, tz) float32 (importance of the newest slot's tokens)

Pruned template tokens are gathered out inside the graph (``NonZero`` + ``Gather``), so compute drops as in
the PyTorch ``fast`` path while every graph input and output keeps a static shape. By default the graph is
written directly for ONNX Runtime (:mod:`fartrack.export.graph`, fused CPU operators); ``portable=True``
traces :class:`FrameNetwork` (the PyTorch definition of the same computation) into standard operators.
Dense models have no ``slot_keep`` input and no ``scores`` output. Template graph (``model.template.onnx``): ``template``
(1, 3, Z, Z) float32 -> ``tokens`` (1, tz, C). The tracker settings (crop factors and sizes, mean/std,
decode rule, schedule, pruning count, depth) are written to both files' metadata (``fartrack.*`` keys).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from fartrack.export.graph import OPSET, build_frame_graph
from fartrack.export.standalone import template_path_for
from fartrack.models.encoder import FARTrackNet
from fartrack.models.sparsify import SparsifyConfig, plan_probe, template_scores
from fartrack.tracker.tracker import TrackerParams
from fartrack.utils.io import atomic_write_bytes


class FrameNetwork(nn.Module):
    """The per-frame network with static input shapes (see the module docstring for the signature)."""

    def __init__(self, net: FARTrackNet, depth: int, sparsify: SparsifyConfig) -> None:
        super().__init__()
        cfg = net.cfg
        self.net, self.depth, self.sparse = net, int(depth), bool(cfg.sparse)
        self.tz, self.slots, self.prenum = cfg.template_tokens, cfg.num_templates, cfg.prenum
        with torch.no_grad():
            identity = net.identity[:, : self.slots].detach().repeat_interleave(self.tz, dim=1).clone()
            commands = net.command_tokens(1).detach().clone()
        self.register_buffer("slot_identity", identity, persistent=False)
        self.register_buffer("commands", commands, persistent=False)
        self.register_buffer("newest_keep", torch.ones(self.tz, dtype=torch.bool), persistent=False)
        # Everything after the template tokens has a fixed length, so probe rows and the newest template's
        # columns are fixed offsets from the end of the sequence.
        tail = cfg.search_tokens + cfg.prenum * 4 + 4
        self.plan = plan_probe(sparsify, -tail, cfg.search_grid, slice(-tail - self.tz, -tail), -4) if self.sparse else None
        if self.plan is not None:
            self.register_buffer("probe_rows", self.plan.rows.clone(), persistent=False)

    def forward(self, slot_tokens: Tensor, *args: Tensor) -> tuple[Tensor, ...]:
        net = self.net
        args = list(args)
        keep = args.pop(0) if self.sparse else None
        search = args.pop(0)
        templates = slot_tokens + self.slot_identity
        if keep is not None:
            keep = torch.cat([keep[: -self.tz], self.newest_keep])
            templates = templates[:, torch.nonzero(keep).flatten()]
        parts = [templates, net.embed_search(search)]
        if self.prenum > 0:
            parts.append(net.trajectory_tokens(args.pop(0)))
        parts.append(self.commands)
        tokens = torch.cat(parts, dim=1)
        logits, attention = net.encode_inference(tokens, self.depth, self.probe_rows if self.sparse else None)
        if not self.sparse:
            return (logits,)
        return logits, template_scores(attention, self.plan)


class TemplateEmbedder(nn.Module):
    """Template crop (1, 3, Z, Z) -> embedded tokens (1, tz, C) (patch embedding + positional embedding)."""

    def __init__(self, net: FARTrackNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, template: Tensor) -> Tensor:
        return self.net.embed_templates(template)


def frame_inputs(net: FARTrackNet) -> dict[str, Tensor]:
    """Example inputs of the per-frame graph, by name (zeros, all template tokens kept)."""
    cfg = net.cfg
    inputs = {"slot_tokens": torch.zeros(1, cfg.num_templates * cfg.template_tokens, cfg.embed_dim)}
    if cfg.sparse:
        inputs["slot_keep"] = torch.ones(cfg.num_templates * cfg.template_tokens, dtype=torch.bool)
    inputs["search"] = torch.zeros(1, 3, cfg.search_size, cfg.search_size)
    if cfg.prenum > 0:
        inputs["trajectory_ids"] = torch.zeros(1, cfg.prenum * 4, dtype=torch.long)
    return inputs


def metadata(net: FARTrackNet, params: TrackerParams, depth: int) -> dict[str, str]:
    """The tracker settings a runtime needs, as ONNX metadata (``fartrack.*`` keys, JSON values)."""
    cfg = net.cfg
    values: dict[str, Any] = {
        "depth": depth,
        "sparse": cfg.sparse,
        "num_templates": cfg.num_templates,
        "template_tokens": cfg.template_tokens,
        "embed_dim": cfg.embed_dim,
        "template_size": params.template_size,
        "search_size": params.search_size,
        "template_factor": params.template_factor,
        "search_factor": params.search_factor,
        "mean": list(params.mean),
        "std": list(params.std),
        "decode": params.decode,
        "bins": cfg.bins,
        "range": cfg.range,
        "schedule": params.schedule,
        "warmup": params.warmup,
        "num_pruned": params.sparsify.num_pruned(cfg.template_tokens) if cfg.sparse else 0,
        "prenum": cfg.prenum,
        "clip_margin": params.clip_margin,
    }
    return {f"fartrack.{key}": json.dumps(value) for key, value in values.items()}


def _export(
    module: nn.Module, inputs: dict[str, Tensor], output_shapes: dict[str, tuple[int, ...]], meta: dict[str, str]
) -> bytes:
    """ONNX bytes of ``module`` traced on ``inputs`` (static shapes), with ``meta`` as metadata."""
    import io

    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, tuple(inputs.values()), buffer, input_names=list(inputs), output_names=list(output_shapes),
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for output in model.graph.output:  # the tracer leaves some output dims symbolic; they are static
        dims = output.type.tensor_type.shape.dim
        for dim, size in zip(dims, output_shapes[output.name]):
            dim.ClearField("dim_param")
            dim.dim_value = size
    return _finish(model, meta)


def _finish(model, meta: dict[str, str]) -> bytes:
    """``model`` with ``meta`` as metadata, checked, as bytes."""
    import onnx

    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_onnx(
    net: FARTrackNet, params: TrackerParams, out: str | os.PathLike, depth: Optional[int] = None, portable: bool = False
) -> tuple[Path, Path]:
    """Export ``net`` (first ``depth`` layers) to ``out`` and its template graph; returns both paths.

    The per-frame graph is written for ONNX Runtime (:mod:`fartrack.export.graph`: fused ``com.microsoft``
    operators, the fastest on a CPU); ``portable=True`` traces :class:`FrameNetwork` instead, a graph of
    standard ONNX operators (opset 17) for other runtimes. Both take the same inputs and give the same
    outputs. Both files are written atomically. ``net`` is not modified (a network on another device is
    copied to the CPU for the export).
    """
    depth = net.cfg.depth if depth is None else int(depth)
    if not 1 <= depth <= net.cfg.depth:
        raise ValueError(f"layers must be in 1..{net.cfg.depth}, got {depth}")
    if next(net.parameters()).device.type != "cpu":
        net = copy.deepcopy(net).cpu()
    was_training = net.training
    net.eval()
    out = Path(out)
    meta = metadata(net, params, depth)
    cfg = net.cfg
    outputs = {"logits": (1, 4, net.vocab.size)}
    if cfg.sparse:
        outputs["scores"] = (1, cfg.template_tokens)
    try:
        with torch.no_grad():
            if portable:
                frame = FrameNetwork(net, depth, params.sparsify).eval()
                frame_bytes = _export(frame, frame_inputs(net), outputs, meta)
            else:
                frame_bytes = _finish(build_frame_graph(net, depth, params.sparsify), meta)
            template_bytes = _export(
                TemplateEmbedder(net).eval(), {"template": torch.zeros(1, 3, cfg.template_size, cfg.template_size)},
                {"tokens": (1, cfg.template_tokens, cfg.embed_dim)}, meta,
            )
    finally:
        net.train(was_training)
    template_out = template_path_for(out)
    atomic_write_bytes(out, frame_bytes)
    atomic_write_bytes(template_out, template_bytes)
    return out, template_out


def verify_export(
    net: FARTrackNet, params: TrackerParams, model: str | os.PathLike, depth: int, seed: int = 0
) -> float:
    """Max |logits difference| between ONNX Runtime (``model``) and PyTorch on random inputs with pruned tokens."""
    from fartrack.export.backend import OnnxRuntimeBackend

    generator = torch.Generator().manual_seed(seed)
    inputs = frame_inputs(net)
    inputs["slot_tokens"] = torch.randn(inputs["slot_tokens"].shape, generator=generator)
    inputs["search"] = torch.randn(inputs["search"].shape, generator=generator)
    cfg = net.cfg
    if cfg.sparse:
        keep = torch.ones(cfg.num_templates * cfg.template_tokens, dtype=torch.bool)
        pruned = params.sparsify.num_pruned(cfg.template_tokens)
        for slot in range(cfg.num_templates - 1):
            order = torch.randperm(cfg.template_tokens, generator=generator)[:pruned]
            keep[slot * cfg.template_tokens + order] = False
        inputs["slot_keep"] = keep
    with torch.inference_mode():
        expected = FrameNetwork(net, depth, params.sparsify).eval()(*inputs.values())[0]
    runtime = OnnxRuntimeBackend(model)
    logits, _ = runtime.run({k: v.numpy() for k, v in inputs.items()})
    return float((logits - expected).abs().max())


def quantize_int8(model: str | os.PathLike, out: str | os.PathLike) -> tuple[Path, Path]:
    """Dynamic int8 quantisation of an exported per-frame graph (weights int8, activations quantised per call).

    Optional and never the default: it changes the outputs (measure with :func:`verify_export`). The template
    graph is copied unchanged. Both files are written atomically; returns their paths.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import logging

    model, out = Path(model), Path(out)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice and skipped tensors (NonZero) as warnings
    try:
        with tempfile.TemporaryDirectory(prefix="fartrack_int8_") as folder:
            target = Path(folder) / "int8.onnx"
            quantize_dynamic(  # the com.microsoft operators have no ONNX shape inference: their outputs are fp32
                str(model), str(target), weight_type=QuantType.QInt8,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
            quantized = target.read_bytes()
    finally:
        root.setLevel(level)
    atomic_write_bytes(out, quantized)
    template_out = template_path_for(out)
    atomic_write_bytes(template_out, template_path_for(model).read_bytes())
    return out, template_out
