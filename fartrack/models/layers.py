"""Transformer building blocks of the FARTrack encoder: masked LayerNorm, attention, MLP, pre-norm block.

Every op follows the reference's order of floating-point operations (matmul-then-scale attention,
explicit masked LayerNorm), so CPU fp32 outputs match the released code bitwise. The ``forward_inference``
methods are the tracker's fast form (pruned tokens already removed, fused attention, ``F.layer_norm``),
equal to it within float rounding.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLayerNorm(nn.Module):
    """LayerNorm over channels written out explicitly, with an optional per-token keep mask.

    For a kept token it is a LayerNorm with ``eps``; a masked token (``keep`` False) is zeroed before the
    statistics and comes out as exactly ``bias``. Parameters live in ``self.norm`` so the state_dict keys
    are ``<name>.norm.weight`` / ``<name>.norm.bias`` as in the reference.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.eps = eps

    def forward(self, x: Tensor, keep: Optional[Tensor] = None) -> Tensor:
        """``x`` (B, N, C); ``keep`` (B, N) bool or None (all tokens kept)."""
        dim = x.shape[-1]
        if keep is not None:
            m = keep.to(x.dtype).unsqueeze(-1)
            xm = x * m
            mu = xm.sum(dim=-1, keepdim=True) / dim
            var = (((xm - mu) ** 2) * m).sum(dim=-1, keepdim=True) / dim
        else:
            xm = x
            mu = xm.sum(dim=-1, keepdim=True) / dim
            var = ((xm - mu) ** 2).sum(dim=-1, keepdim=True) / dim
        return self.norm.weight * ((xm - mu) / torch.sqrt(var + self.eps)) + self.norm.bias


class Attention(nn.Module):
    """Multi-head self-attention (qkv linear, matmul-then-scale scores, optional key mask, proj linear)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,
        key_keep: Optional[Tensor] = None,
        probe_rows: Optional[Tensor] = None,
        fused: bool = False,
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Attend over ``x`` (B, N, C).

        ``key_keep`` (B, N) bool masks keys (False = may not be attended to). ``probe_rows`` (R,) long
        selects query rows whose post-softmax attention (B, heads, R, N) is returned alongside the output;
        otherwise ``None`` is returned. ``fused`` uses PyTorch's scaled-dot-product kernel for the output
        (probe rows are then computed separately); the default explicit form is bitwise equal to the reference.
        """
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        probs_rows = None
        if fused:
            attn_mask = None if key_keep is None else key_keep[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=self.scale)
            if probe_rows is not None:
                scores = (q[:, :, probe_rows] @ k.transpose(-2, -1)) * self.scale
                if key_keep is not None:
                    scores = scores.masked_fill(~key_keep[:, None, None, :], float("-inf"))
                probs_rows = scores.softmax(dim=-1)
        else:
            scores = (q @ k.transpose(-2, -1)) * self.scale
            if key_keep is not None:
                scores = scores.masked_fill(~key_keep[:, None, None, :], float("-inf"))
            probs = scores.softmax(dim=-1)
            if probe_rows is not None:
                probs_rows = probs[:, :, probe_rows]
            out = probs @ v
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj(out), probs_rows

    def forward_inference(
        self, x: Tensor, probe_rows: Optional[Tensor] = None, output_rows: Optional[int] = None
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Inference attention over normalised ``x`` (B, N, C) in which every token is a valid key.

        Pruned tokens must already be removed from ``x`` (no mask). The output uses PyTorch's fused
        scaled-dot-product kernel, so no (N, N) attention matrix is materialised. ``probe_rows`` (R,) long:
        the post-softmax attention of those query rows, (B, heads, R, N), is computed on its own and returned.
        ``output_rows`` = k computes the output (B, k, C) of the last k query rows only (the last layer needs
        just the command tokens); ``None`` computes all N rows. Equal to :meth:`forward` within float rounding.
        """
        b, c = x.shape[0], x.shape[2]
        heads, dim = self.num_heads, self.head_dim
        weight, bias = self.qkv.weight, self.qkv.bias
        if output_rows is None:
            q, k, v = F.linear(x, weight, bias).view(b, -1, 3, heads, dim).permute(2, 0, 3, 1, 4).unbind(0)
            q_out = q
        else:
            k, v = (
                F.linear(x, weight[c:], None if bias is None else bias[c:])
                .view(b, -1, 2, heads, dim)
                .permute(2, 0, 3, 1, 4)
                .unbind(0)
            )
            q = None
            q_out = self._queries(x[:, -output_rows:])
        out = F.scaled_dot_product_attention(q_out, k, v, scale=self.scale)
        probs_rows = None
        if probe_rows is not None:
            q_probe = q[:, :, probe_rows] if q is not None else self._queries(x[:, probe_rows])
            probs_rows = ((q_probe @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = out.transpose(1, 2).reshape(b, -1, c)
        return self.proj(out), probs_rows

    def _queries(self, x: Tensor) -> Tensor:
        """Queries (B, heads, R, head_dim) of the rows ``x`` (B, R, C) only."""
        b, c = x.shape[0], x.shape[2]
        bias = self.qkv.bias
        q = F.linear(x, self.qkv.weight[:c], None if bias is None else bias[:c])
        return q.view(b, -1, self.num_heads, self.head_dim).transpose(1, 2)


class Mlp(nn.Module):
    """Two-layer perceptron with exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: zero a sample's residual branch with probability ``rate`` (training only)."""
    if rate == 0.0 or not training:
        return x
    keep_prob = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
    return x * mask / keep_prob


class Block(nn.Module):
    """Pre-norm transformer layer: ``h + attn(norm1(h))`` then ``h + mlp(norm2(h))``.

    ``masked_norm`` selects the sparse-model norms (``masknorm1``/``masknorm2``, explicit formula, eps 1e-5);
    otherwise ``norm1``/``norm2`` are LayerNorms with eps 1e-6. In the sparse model the reference's unused
    ``norm1``/``norm2`` tensors are kept as buffers, so checkpoints keep the reference layout.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        masked_norm: bool = False,
    ) -> None:
        super().__init__()
        self.masked_norm = masked_norm
        self.drop_path_rate = drop_path_rate
        if masked_norm:
            self.norm1 = _DeadNorm(dim)
            self.masknorm1 = MaskedLayerNorm(dim, eps=1e-5)
        else:
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        if masked_norm:
            self.norm2 = _DeadNorm(dim)
            self.masknorm2 = MaskedLayerNorm(dim, eps=1e-5)
        else:
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _norm(self, index: int, x: Tensor, keep: Optional[Tensor]) -> Tensor:
        if self.masked_norm:
            return (self.masknorm1 if index == 1 else self.masknorm2)(x, keep)
        return (self.norm1 if index == 1 else self.norm2)(x)

    def forward(
        self,
        x: Tensor,
        key_keep: Optional[Tensor] = None,
        probe_rows: Optional[Tensor] = None,
        fused: bool = False,
    ) -> tuple[Tensor, Optional[Tensor]]:
        """One layer over ``x`` (B, N, C); returns the new hidden state and the probed attention rows."""
        attn_out, probs = self.attn(self._norm(1, x, key_keep), key_keep, probe_rows, fused)
        x = x + drop_path(attn_out, self.drop_path_rate, self.training)
        x = x + drop_path(self.mlp(self._norm(2, x, key_keep)), self.drop_path_rate, self.training)
        return x, probs

    def forward_inference(
        self, x: Tensor, probe_rows: Optional[Tensor] = None, output_rows: Optional[int] = None
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Inference form of :meth:`forward` for sequences with pruned tokens removed (no mask).

        Fused attention (:meth:`Attention.forward_inference`) and ``F.layer_norm`` with this layer's norm
        weights and eps (the masked norm equals a LayerNorm when every token is kept). ``output_rows`` = k
        returns the new hidden state of the last k tokens only, (B, k, C).
        """
        attn_out, probs = self.attn.forward_inference(self._fast_norm(1, x), probe_rows, output_rows)
        if output_rows is not None:
            x = x[:, -output_rows:]
        x = x + attn_out
        x = x + self.mlp(self._fast_norm(2, x))
        return x, probs

    def _fast_norm(self, index: int, x: Tensor) -> Tensor:
        if self.masked_norm:
            module = self.masknorm1 if index == 1 else self.masknorm2
            norm, eps = module.norm, module.eps
        else:
            norm = self.norm1 if index == 1 else self.norm2
            eps = norm.eps
        return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, eps)


class _DeadNorm(nn.Module):
    """Holder of the reference's unused ``norm1``/``norm2`` tensors in sparse layers (buffers, never run)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(dim))
        self.register_buffer("bias", torch.zeros(dim))
