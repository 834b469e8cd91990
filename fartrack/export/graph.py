"""The per-frame network written directly as an ONNX Runtime graph (fused operators, no tracing).

Same inputs, outputs and numbers (within float rounding) as :class:`fartrack.export.exporter.FrameNetwork`,
but built for ONNX Runtime's CPU kernels instead of traced from PyTorch:

- the token sequence is a 2-D (N, C) tensor, so every linear layer is one ``Gemm``/``MatMul`` with no
  batch dimension to broadcast, and there are no layout transposes between layers;
- attention is ``com.microsoft.MultiHeadAttention`` (heads split inside the kernel, no (N, N) tensor
  written out), residual add + bias + LayerNorm is ``com.microsoft.SkipLayerNormalization`` and the
  first MLP layer's bias + exact GELU is ``com.microsoft.BiasGelu``;
- the keep-mask probe (the attention of a few query rows, summed over layers) is a thin matmul of every
  key against a (C, rows x heads) block matrix of the probe queries, softmaxed over the keys;
- the last layer computes keys/values for every token and everything else for the 4 command tokens only.

About 11 operators per layer instead of about 25 in the traced graph; at 2 threads the saved operator
overhead and copies are most of the gain (see ``bench/README.md``). The graph needs ONNX Runtime (the
``com.microsoft`` operators); :func:`fartrack.export.exporter.export_onnx` with ``portable=True`` writes
the traced, standard-operator graph for other runtimes.
"""

from __future__ import annotations

from typing import Optional

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
        from onnx import numpy_helper

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attrs):
        from onnx import helper

        names = [self.name(op_type.lower()) for _ in range(outputs)] if isinstance(outputs, int) else outputs
        self.nodes.append(helper.make_node(op_type, inputs, names, domain=domain or None, **attrs))
        return names[0] if len(names) == 1 else names


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
        c = block.attn.qkv.weight.shape[1]
        qkv_w, qkv_b = block.attn.qkv.weight, block.attn.qkv.bias
        tag = f"layer{index}"
        self.heads, self.scale = block.attn.num_heads, float(block.attn.scale)
        self.head_dim = c // self.heads
        self.wq, self.wk, self.wv = (_weight_t(writer, f"{tag}_w{n}", qkv_w[i * c : (i + 1) * c]) for i, n in enumerate("qkv"))
        self.bq, self.bk, self.bv = (writer.const(f"{tag}_b{n}", qkv_b[i * c : (i + 1) * c]) for i, n in enumerate("qkv"))
        self.wp, self.bp = _weight_t(writer, f"{tag}_wproj", block.attn.proj.weight), writer.const(f"{tag}_bproj", block.attn.proj.bias)
        self.w1, self.b1 = _weight_t(writer, f"{tag}_wfc1", block.mlp.fc1.weight), writer.const(f"{tag}_bfc1", block.mlp.fc1.bias)
        self.w2, self.b2 = _weight_t(writer, f"{tag}_wfc2", block.mlp.fc2.weight), writer.const(f"{tag}_bfc2", block.mlp.fc2.bias)
        g1, be1, self.eps1 = _norm_params(block, 1)
        g2, be2, self.eps2 = _norm_params(block, 2)
        self.g1, self.be1 = writer.const(f"{tag}_norm1_w", g1), writer.const(f"{tag}_norm1_b", be1)
        self.g2, self.be2 = writer.const(f"{tag}_norm2_w", g2), writer.const(f"{tag}_norm2_b", be2)


class _ProbeWriter:
    """Post-softmax attention of the probe query rows, summed over layers, as (N, rows x heads)."""

    def __init__(self, writer: _GraphWriter, rows: torch.Tensor, dim: int, heads: int, scale: float) -> None:
        self.writer = writer
        self.rows = writer.const("probe_rows", rows.to(torch.int64).reshape(-1, 1))  # (R, 1): gathers (R, 1, C)
        self.flat_rows = writer.const("probe_rows_flat", rows.to(torch.int64))
        self.num_rows = int(rows.numel())
        head_dim = dim // heads
        # (H, C): row h keeps head h's channels, pre-multiplied by the attention scale
        mask = np.zeros((heads, dim), dtype=np.float32)
        for h in range(heads):
            mask[h, h * head_dim : (h + 1) * head_dim] = scale
        self.head_mask = writer.const("probe_head_mask", mask)
        self.block_shape = writer.const("probe_block_shape", np.array([self.num_rows * heads, dim], dtype=np.int64))
        self.layers: list[str] = []

    def add(self, queries: str, keys: str, probe_rows_only: bool = False) -> None:
        """One layer's probe attention: the probe rows of ``queries`` (N, C) against ``keys`` (N, C).
        ``probe_rows_only``: ``queries`` holds just the probe rows' queries, (R, C)."""
        w = self.writer
        if probe_rows_only:
            picked = w.op("Unsqueeze", [queries, w.const("axis1", np.array([1]))])
        else:
            picked = w.op("Gather", [queries, self.rows], axis=0)  # (R, 1, C)
        block = w.op("Reshape", [w.op("Mul", [picked, self.head_mask]), self.block_shape])  # (R*H, C), zeros off-head
        self.layers.append(w.op("Softmax", [w.op("Gemm", [keys, block], transB=1)], axis=0))  # (N, R*H), over the keys

    def total(self) -> str:
        """The probe attention summed over the layers added so far."""
        return self.writer.op("Sum", self.layers) if len(self.layers) > 1 else self.layers[0]


def _attention(w: _GraphWriter, queries: str, keys: str, values: str, rows: int, weights: _LayerWeights, dim: int) -> str:
    """Multi-head attention of 2-D queries (R, C) over keys/values (N, C) -> (R, C), before the projection."""
    shape3 = w.const("shape_1nc", np.array([1, -1, dim], dtype=np.int64))
    q3, k3, v3 = (w.op("Reshape", [t, shape3]) for t in (queries, keys, values))
    out = w.op("MultiHeadAttention", [q3, k3, v3], domain=MS_DOMAIN, num_heads=weights.heads, scale=weights.scale)
    return w.op("Reshape", [out, w.const("shape_rc", np.array([rows, dim], dtype=np.int64))])


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
    c, tz, slots, grid = cfg.embed_dim, cfg.template_tokens, cfg.num_templates, cfg.search_grid
    vocab = net.vocab.size
    w = _GraphWriter()
    backbone = net.backbone
    inputs = [helper.make_tensor_value_info("slot_tokens", TensorProto.FLOAT, [1, slots * tz, c])]

    # ---- token sequence (N, C): kept template tokens | search | (trajectory) | commands
    with torch.no_grad():
        identity = net.identity[0, :slots].repeat_interleave(tz, dim=0)
        commands = net.command_tokens(1)[0]
    templates = w.op("Add", [w.op("Reshape", ["slot_tokens", w.const("shape_tc", np.array([slots * tz, c], dtype=np.int64))]),
                             w.const("slot_identity", identity)])
    if cfg.sparse:
        inputs.append(helper.make_tensor_value_info("slot_keep", TensorProto.BOOL, [slots * tz]))
        older = w.op("Slice", ["slot_keep", w.const("zero", np.array([0])), w.const("older_end", np.array([(slots - 1) * tz])),
                               w.const("axis0", np.array([0]))])
        keep = w.op("Concat", [older, w.const("newest_keep", np.ones(tz, dtype=np.bool_))], axis=0)
        kept = w.op("Reshape", [w.op("NonZero", [keep]), w.const("flat", np.array([-1], dtype=np.int64))])
        templates = w.op("Gather", [templates, kept], axis=0)
    inputs.append(helper.make_tensor_value_info("search", TensorProto.FLOAT, [1, 3, cfg.search_size, cfg.search_size]))
    conv = backbone.patch_embed.proj
    patches = w.op("Conv", ["search", w.const("patch_w", conv.weight), w.const("patch_b", conv.bias)],
                   kernel_shape=[cfg.patch_size] * 2, strides=[cfg.patch_size] * 2)
    search = w.op("Transpose", [w.op("Reshape", [patches, w.const("shape_cg", np.array([c, grid * grid], dtype=np.int64))])], perm=[1, 0])
    search = w.op("Add", [w.op("Add", [search, w.const("identity_x", net.identity[0, -1:])]), w.const("pos_x", backbone.pos_embed_x[0])])
    parts = [templates, search]
    if cfg.prenum > 0:
        inputs.append(helper.make_tensor_value_info("trajectory_ids", TensorProto.INT64, [1, cfg.prenum * 4]))
        ids = w.op("Reshape", ["trajectory_ids", w.const("flat", np.array([-1], dtype=np.int64))])
        words = w.op("Gather", [w.const("word_embeddings", backbone.word_embeddings.weight), ids], axis=0)
        parts.append(w.op("Add", [words, w.const("prev_pos", backbone.prev_position_embeddings.weight)]))
    parts.append(w.const("commands", commands))
    x = w.op("Concat", parts, axis=0)

    # ---- encoder
    layers = [_LayerWeights(w, block, i) for i, block in enumerate(backbone.layers(depth))]
    tail = cfg.search_tokens + cfg.prenum * 4 + 4  # tokens after the template tokens (fixed length)
    probe = None
    plan = None
    if cfg.sparse:
        plan = plan_probe(sparsify, -tail, grid, slice(-tail - tz, -tail), -4)
        probe = _ProbeWriter(w, plan.rows, c, layers[0].heads, layers[0].scale)
    normed = w.op("LayerNormalization", [x, layers[0].g1, layers[0].be1], axis=-1, epsilon=layers[0].eps1)
    last_rows = w.const("last4_start", np.array([-4])), w.const("end", np.array([np.iinfo(np.int64).max])), w.const("axis0", np.array([0]))
    for index, lw in enumerate(layers):
        last = index == len(layers) - 1
        keys = w.op("Gemm", [normed, lw.wk, lw.bk])
        values = w.op("Gemm", [normed, lw.wv, lw.bv])
        if last:  # only the command tokens reach the head; the probe rows get their own queries
            if probe is not None:
                probe_queries = w.op("Gemm", [w.op("Gather", [normed, probe.flat_rows], axis=0), lw.wq, lw.bq])
                probe.add(probe_queries, keys, probe_rows_only=True)
            normed = w.op("Slice", [normed, *last_rows])
            x = w.op("Slice", [x, *last_rows])
        queries = w.op("Gemm", [normed, lw.wq, lw.bq])
        if probe is not None and not last:
            probe.add(queries, keys)
        attended = _attention(w, queries, keys, values, 4 if last else -1, lw, c)
        x = w.op("Add", [x, w.op("Gemm", [attended, lw.wp, lw.bp])])
        normed = w.op("LayerNormalization", [x, lw.g2, lw.be2], axis=-1, epsilon=lw.eps2)
        hidden = w.op("BiasGelu", [w.op("MatMul", [normed, lw.w1]), lw.b1], domain=MS_DOMAIN)
        x = w.op("Add", [x, w.op("Gemm", [hidden, lw.w2, lw.b2])])
        if last:
            g, b, eps = backbone.norm.weight, backbone.norm.bias, float(backbone.norm.eps)
        else:
            nxt = layers[index + 1]
            g, b, eps = nxt.g1, nxt.be1, nxt.eps1
        g = g if isinstance(g, str) else w.const("final_norm_w", g)
        b = b if isinstance(b, str) else w.const("final_norm_b", b)
        normed = w.op("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)

    # ---- tied head and keep-mask scores
    head = w.op("MatMul", [normed, w.const("word_embeddings_t", backbone.word_embeddings.weight.t().contiguous())])
    head = w.op("Add", [head, w.const("output_bias", backbone.output_bias)])
    w.op("Reshape", [head, w.const("shape_logits", np.array([1, 4, vocab], dtype=np.int64))], ["logits"])
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, vocab])]
    if probe is not None:
        _write_scores(w, probe, plan, tz, tail, layers[0].heads)
        outputs.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, tz]))
    graph = helper.make_graph(w.nodes, "fartrack_frame", inputs, outputs, w.initializers)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)], ir_version=8,
        producer_name="fartrack",
    )


def _write_scores(w: _GraphWriter, probe: _ProbeWriter, plan, tz: int, tail: int, heads: int) -> None:
    """``scores`` (1, tz): the newest template's rows of the summed probe attention, mean over heads, then
    over the region rows (+ the extra term's rows), as :func:`fartrack.models.sparsify.template_scores`."""
    axis0 = w.const("axis0", np.array([0]))
    newest = w.op("Slice", [probe.total(), w.const("newest_start", np.array([-tail - tz])), w.const("newest_end", np.array([-tail])), axis0])
    per_row = w.op("ReduceMean", [w.op("Reshape", [newest, w.const("shape_trh", np.array([tz, probe.num_rows, heads], dtype=np.int64))])],
                   axes=[2], keepdims=0)  # (tz, R): mean over heads

    def term(part: slice) -> str:
        rows = w.op("Slice", [per_row, w.const("term_start", np.array([part.start])), w.const("term_end", np.array([part.stop])),
                              w.const("axis1", np.array([1]))])
        return w.op("ReduceMean", [rows], axes=[1], keepdims=0)

    scores = term(plan.region)
    if plan.extra is not None:
        scores = w.op("Add", [scores, term(plan.extra)])
    w.op("Reshape", [scores, w.const("shape_scores", np.array([1, tz], dtype=np.int64))], ["scores"])
