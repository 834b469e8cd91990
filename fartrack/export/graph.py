"""The per-frame network written directly as an ONNX Runtime graph (fused operators, no tracing).

Same inputs, outputs and numbers (within float rounding) as :class:`fartrack.export.exporter.FrameNetwork`,
but built for ONNX Runtime's CPU kernels instead of traced from PyTorch:

- the token sequence is a 2-D (N, C) tensor, so every linear layer is one ``Gemm``/``MatMul`` with no
  batch dimension to broadcast, and there are no layout transposes between layers;
- attention is ``com.microsoft.MultiHeadAttention`` (heads split inside the kernel, no (N, N) tensor
  written out) and the first MLP layer's bias + exact GELU is ``com.microsoft.BiasGelu``;
- the keep-mask probe (the attention of a few query rows, summed over layers) is a thin matmul of every
  key against a (C, rows x heads) block matrix of the probe queries, softmaxed over the keys;
- the last layer computes keys/values for every token and everything else for the 4 command tokens only.

A tiny (15-layer) frame runs 343 operators instead of 589 for the traced graph after ONNX Runtime's own
fusions, and about 10 % less time at 2 threads (see ``bench/README.md``). The graph needs ONNX Runtime (the
``com.microsoft`` operators); :func:`fartrack.export.exporter.export_onnx` with ``portable=True`` writes
the traced, standard-operator graph for other runtimes.
"""

from __future__ import annotations

import numpy as np
import torch

from fartrack.models.encoder import FARTrackNet
from fartrack.models.layers import Block
from fartrack.models.sparsify import SparsifyConfig, plan_probe

OPSET = 17
MS_DOMAIN = "com.microsoft"


class _GraphWriter:
    """Accumulates nodes and constant initialisers; ``op`` returns the output name(s) of the added node."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value) -> str:
        """A constant (tensor or array) as an initialiser; returns its name."""
        from onnx import numpy_helper

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def ints(self, hint: str, values) -> str:
        """An int64 constant (shapes, indices, axes)."""
        return self.const(hint, np.asarray(values, dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attrs):
        from onnx import helper

        names = [self.name(op_type.lower()) for _ in range(outputs)] if isinstance(outputs, int) else outputs
        self.nodes.append(helper.make_node(op_type, inputs, names, domain=domain or None, **attrs))
        return names[0] if len(names) == 1 else names

    def slice(self, tensor: str, start: int, end: int, axis: int) -> str:
        bounds = [self.ints("start", [start]), self.ints("end", [end]), self.ints("axis", [axis])]
        return self.op("Slice", [tensor, *bounds])

    def reshape(self, tensor: str, shape, output: str | None = None) -> str:
        return self.op("Reshape", [tensor, self.ints("shape", shape)], [output] if output else 1)


def _weight_t(writer: _GraphWriter, hint: str, weight: torch.Tensor) -> str:
    """A linear layer's weight (out, in) as a (in, out) constant, for ``MatMul``/``Gemm`` without transposes."""
    return writer.const(hint, weight.detach().t().contiguous().float())


def _norm_params(block: Block, index: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Weight, bias and eps of a layer's first (``index`` 1) or second norm, masked or plain."""
    if block.masked_norm:
        module = block.masknorm1 if index == 1 else block.masknorm2
        return module.norm.weight, module.norm.bias, float(module.eps)
    norm = block.norm1 if index == 1 else block.norm2
    return norm.weight, norm.bias, float(norm.eps)


class _LayerWeights:
    """One encoder layer's tensors as graph constants (linear weights transposed to (in, out))."""

    def __init__(self, writer: _GraphWriter, block: Block, index: int) -> None:
        attn, mlp = block.attn, block.mlp
        c = attn.qkv.weight.shape[1]
        tag = f"layer{index}"
        self.dim, self.heads, self.scale = c, attn.num_heads, float(attn.scale)
        rows = [slice(i * c, (i + 1) * c) for i in range(3)]  # q, k, v rows of the fused qkv linear
        self.wq, self.wk, self.wv = (_weight_t(writer, f"{tag}_w{n}", attn.qkv.weight[r]) for n, r in zip("qkv", rows))
        self.bq, self.bk, self.bv = (writer.const(f"{tag}_b{n}", attn.qkv.bias[r]) for n, r in zip("qkv", rows))
        self.wp = _weight_t(writer, f"{tag}_wproj", attn.proj.weight)
        self.bp = writer.const(f"{tag}_bproj", attn.proj.bias)
        self.w1, self.b1 = _weight_t(writer, f"{tag}_wfc1", mlp.fc1.weight), writer.const(f"{tag}_bfc1", mlp.fc1.bias)
        self.w2, self.b2 = _weight_t(writer, f"{tag}_wfc2", mlp.fc2.weight), writer.const(f"{tag}_bfc2", mlp.fc2.bias)
        g1, be1, self.eps1 = _norm_params(block, 1)
        g2, be2, self.eps2 = _norm_params(block, 2)
        self.g1, self.be1 = writer.const(f"{tag}_norm1_w", g1), writer.const(f"{tag}_norm1_b", be1)
        self.g2, self.be2 = writer.const(f"{tag}_norm2_w", g2), writer.const(f"{tag}_norm2_b", be2)


class _ProbeWriter:
    """Post-softmax attention of the probe query rows, summed over layers, as (N, rows x heads)."""

    def __init__(self, writer: _GraphWriter, rows: torch.Tensor, dim: int, heads: int, scale: float) -> None:
        self.writer = writer
        self._rows = rows
        self._column_rows: str | None = None  # (R, 1) indices: Gather gives (R, 1, C); made when first needed
        self.flat_rows = writer.ints("probe_rows_flat", rows)
        self.num_rows, self.heads = int(rows.numel()), heads
        head_dim = dim // heads
        # (H, C): row h keeps head h's channels, pre-multiplied by the attention scale
        mask = np.zeros((heads, dim), dtype=np.float32)
        for h in range(heads):
            mask[h, h * head_dim : (h + 1) * head_dim] = scale
        self.head_mask = writer.const("probe_head_mask", mask)
        self.block_shape = [self.num_rows * heads, dim]
        self.layers: list[str] = []

    def add(self, queries: str, keys: str, probe_rows_only: bool = False) -> None:
        """One layer's probe attention: the probe rows of ``queries`` (N, C) against ``keys`` (N, C).
        ``probe_rows_only``: ``queries`` holds just the probe rows' queries, (R, C)."""
        w = self.writer
        if probe_rows_only:
            picked = w.op("Unsqueeze", [queries, w.ints("axis", [1])])
        else:
            if self._column_rows is None:
                self._column_rows = w.ints("probe_rows", self._rows.reshape(-1, 1))
            picked = w.op("Gather", [queries, self._column_rows], axis=0)  # (R, 1, C)
        block = w.reshape(w.op("Mul", [picked, self.head_mask]), self.block_shape)  # (R*H, C), zeros off-head
        self.layers.append(w.op("Softmax", [w.op("Gemm", [keys, block], transB=1)], axis=0))  # (N, R*H), over keys

    def total(self) -> str:
        """The probe attention summed over the layers added so far."""
        return self.writer.op("Sum", self.layers) if len(self.layers) > 1 else self.layers[0]


def _token_sequence(w: _GraphWriter, net: FARTrackNet, inputs: list) -> str:
    """Graph inputs -> the (N, C) sequence: kept template tokens | search | (trajectory) | commands."""
    from onnx import TensorProto, helper

    cfg, backbone = net.cfg, net.backbone
    c, tz, slots, grid = cfg.embed_dim, cfg.template_tokens, cfg.num_templates, cfg.search_grid
    inputs.append(helper.make_tensor_value_info("slot_tokens", TensorProto.FLOAT, [1, slots * tz, c]))
    with torch.no_grad():
        identity = net.identity[0, :slots].repeat_interleave(tz, dim=0)
        commands = net.command_tokens(1)[0]
    templates = w.op("Add", [w.reshape("slot_tokens", [slots * tz, c]), w.const("slot_identity", identity)])
    if cfg.sparse:  # gather the kept tokens (the newest slot is always kept)
        inputs.append(helper.make_tensor_value_info("slot_keep", TensorProto.BOOL, [slots * tz]))
        older = w.slice("slot_keep", 0, (slots - 1) * tz, 0)
        keep = w.op("Concat", [older, w.const("newest_keep", np.ones(tz, dtype=np.bool_))], axis=0)
        templates = w.op("Gather", [templates, w.reshape(w.op("NonZero", [keep]), [-1])], axis=0)
    inputs.append(helper.make_tensor_value_info("search", TensorProto.FLOAT, [1, 3, cfg.search_size, cfg.search_size]))
    conv = backbone.patch_embed.proj
    patches = w.op("Conv", ["search", w.const("patch_w", conv.weight), w.const("patch_b", conv.bias)],
                   kernel_shape=[cfg.patch_size] * 2, strides=[cfg.patch_size] * 2)
    search = w.op("Transpose", [w.reshape(patches, [c, grid * grid])], perm=[1, 0])
    search = w.op("Add", [search, w.const("identity_x", net.identity[0, -1:])])  # (conv + identity) + pos
    search = w.op("Add", [search, w.const("pos_x", backbone.pos_embed_x[0])])
    parts = [templates, search]
    if cfg.prenum > 0:
        inputs.append(helper.make_tensor_value_info("trajectory_ids", TensorProto.INT64, [1, cfg.prenum * 4]))
        words = w.op("Gather", [w.const("word_embeddings", backbone.word_embeddings.weight),
                                w.reshape("trajectory_ids", [-1])], axis=0)
        parts.append(w.op("Add", [words, w.const("prev_pos", backbone.prev_position_embeddings.weight)]))
    parts.append(w.const("commands", commands))
    return w.op("Concat", parts, axis=0)


def _attention(w: _GraphWriter, queries: str, keys: str, values: str, rows: int, lw: _LayerWeights) -> str:
    """Multi-head attention of 2-D queries (R, C) over keys/values (N, C) -> (R, C), before the projection."""
    q3, k3, v3 = (w.reshape(t, [1, -1, lw.dim]) for t in (queries, keys, values))
    out = w.op("MultiHeadAttention", [q3, k3, v3], domain=MS_DOMAIN, num_heads=lw.heads, scale=lw.scale)
    return w.reshape(out, [rows, lw.dim])


def _encoder(w: _GraphWriter, net: FARTrackNet, x: str, depth: int, probe) -> str:
    """The first ``depth`` layers over ``x`` (N, C) and the final norm -> normalised command tokens (4, C).
    ``probe`` (a :class:`_ProbeWriter` or None) collects the probe rows' attention of every layer."""
    backbone = net.backbone
    layers = [_LayerWeights(w, block, i) for i, block in enumerate(backbone.layers(depth))]
    normed = w.op("LayerNormalization", [x, layers[0].g1, layers[0].be1], axis=-1, epsilon=layers[0].eps1)
    for index, lw in enumerate(layers):
        last = index == len(layers) - 1
        keys = w.op("Gemm", [normed, lw.wk, lw.bk])
        values = w.op("Gemm", [normed, lw.wv, lw.bv])
        if last:  # only the command tokens reach the head; the probe rows get their own queries
            if probe is not None:
                picked = w.op("Gather", [normed, probe.flat_rows], axis=0)
                probe.add(w.op("Gemm", [picked, lw.wq, lw.bq]), keys, probe_rows_only=True)
            normed, x = w.slice(normed, -4, _END, 0), w.slice(x, -4, _END, 0)
        queries = w.op("Gemm", [normed, lw.wq, lw.bq])
        if probe is not None and not last:
            probe.add(queries, keys)
        attended = _attention(w, queries, keys, values, 4 if last else -1, lw)
        x = w.op("Add", [x, w.op("Gemm", [attended, lw.wp, lw.bp])])
        normed = w.op("LayerNormalization", [x, lw.g2, lw.be2], axis=-1, epsilon=lw.eps2)
        hidden = w.op("BiasGelu", [w.op("MatMul", [normed, lw.w1]), lw.b1], domain=MS_DOMAIN)
        x = w.op("Add", [x, w.op("Gemm", [hidden, lw.w2, lw.b2])])
        if last:
            norm = backbone.norm
            gamma, beta = w.const("final_norm_w", norm.weight), w.const("final_norm_b", norm.bias)
            eps = float(norm.eps)
        else:
            gamma, beta, eps = layers[index + 1].g1, layers[index + 1].be1, layers[index + 1].eps1
        normed = w.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=eps)
    return normed


_END = np.iinfo(np.int64).max


def build_frame_graph(net: FARTrackNet, depth: int, sparsify: SparsifyConfig):
    """The per-frame network of ``net`` (first ``depth`` layers) as an ``onnx.ModelProto`` (see the module doc).

    Inputs and outputs are those of :class:`~fartrack.export.exporter.FrameNetwork`: ``slot_tokens``
    (1, T*tz, C), ``slot_keep`` (T*tz,) bool (sparse models), ``search`` (1, 3, S, S), ``trajectory_ids``
    (1, PRENUM*4) int64 (trajectory variant) -> ``logits`` (1, 4, V) and ``scores`` (1, tz) (sparse models).
    """
    from onnx import TensorProto, helper

    cfg = net.cfg
    if not 1 <= depth <= cfg.depth:
        raise ValueError(f"layers must be in 1..{cfg.depth}, got {depth}")
    w = _GraphWriter()
    inputs: list = []
    x = _token_sequence(w, net, inputs)
    tail = cfg.search_tokens + cfg.prenum * 4 + 4  # tokens after the template tokens (a fixed count)
    probe = plan = None
    if cfg.sparse:
        plan = plan_probe(sparsify, -tail, cfg.search_grid, slice(-tail - cfg.template_tokens, -tail), -4)
        first = net.backbone.layers(1)[0].attn
        probe = _ProbeWriter(w, plan.rows, cfg.embed_dim, first.num_heads, float(first.scale))
    normed = _encoder(w, net, x, depth, probe)

    vocab = net.vocab.size
    embeddings_t = w.const("word_embeddings_t", net.backbone.word_embeddings.weight.t().contiguous())
    head = w.op("Add", [w.op("MatMul", [normed, embeddings_t]), w.const("output_bias", net.backbone.output_bias)])
    w.reshape(head, [1, 4, vocab], output="logits")
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, vocab])]
    if probe is not None:
        _write_scores(w, probe, plan, cfg.template_tokens, tail)
        outputs.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, cfg.template_tokens]))
    graph = helper.make_graph(w.nodes, "fartrack_frame", inputs, outputs, w.initializers)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)], ir_version=8,
        producer_name="fartrack",
    )


def _write_scores(w: _GraphWriter, probe: _ProbeWriter, plan, tz: int, tail: int) -> None:
    """``scores`` (1, tz): the newest template's rows of the summed probe attention, mean over heads, then
    over the region rows (+ the extra term's rows), as :func:`fartrack.models.sparsify.template_scores`."""
    newest = w.reshape(w.slice(probe.total(), -tail - tz, -tail, 0), [tz, probe.num_rows, probe.heads])
    per_row = w.op("ReduceMean", [newest], axes=[2], keepdims=0)  # (tz, R): mean over heads

    def term(part: slice) -> str:
        return w.op("ReduceMean", [w.slice(per_row, part.start, part.stop, 1)], axes=[1], keepdims=0)

    scores = term(plan.region)
    if plan.extra is not None:
        scores = w.op("Add", [scores, term(plan.extra)])
    w.reshape(scores, [1, tz], output="scores")
