"""Parameter and multiply-accumulate (MAC) counts of a FARTrack network, computed analytically.

Two MAC conventions are reported side by side:

* ``thop``: what thop 0.1.1 (the counter of the reference profiling script) counts: Linear and Conv2d
  weights (one MAC per weight per output position) and LayerNorm at 4 x channels per token; attention
  matmuls (q.k^T, P.v) and the tied head are NOT counted, and masking is ignored.
* ``full``: the thop count plus the attention matmuls (2 x N^2 x C per layer) and the tied output head.

Parameters follow thop too: the patch embedding, the executed layers and the final norm (embedding tables,
positional embeddings, ``identity`` and the head bias are not counted). This reproduces the paper's
6.82 / 4.59 / 2.81 M for 15 / 10 / 6 layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fartrack.models.encoder import FARTrackNet


@dataclass
class MacCount:
    """MACs of one forward, split by part (all integers)."""

    patch_embed: int
    layers_thop: int
    attention_matmuls: int
    head: int
    tokens: int
    depth: int

    @property
    def thop(self) -> int:
        return self.patch_embed + self.layers_thop

    @property
    def full(self) -> int:
        return self.thop + self.attention_matmuls + self.head

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(thop=self.thop, full=self.full)
        return out


def count_params(net: FARTrackNet, depth: int | None = None) -> int:
    """Parameters used by a ``depth``-layer forward, thop convention (see module docstring)."""
    depth = net.cfg.depth if depth is None else depth
    modules = [net.backbone.patch_embed, net.backbone.norm, *net.backbone.layers(depth)]
    return sum(p.numel() for m in modules for p in m.parameters())


def count_macs(net: FARTrackNet, tokens: int, embedded_images: dict[int, int], depth: int | None = None) -> MacCount:
    """MACs of one forward over a sequence of ``tokens`` tokens.

    ``embedded_images`` maps a crop side in pixels to how many crops of that side are patch-embedded in
    this forward (e.g. ``{112: 1, 224: 1}`` when older templates come from a cache).
    """
    cfg = net.cfg
    depth = cfg.depth if depth is None else depth
    c, hidden = cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio)
    per_token = c * 3 * c + c * c + c * hidden + hidden * c + 2 * 4 * c
    patch = 3 * cfg.patch_size**2 * c
    patch_embed = sum(count * (side // cfg.patch_size) ** 2 * patch for side, count in embedded_images.items())
    head = 4 * c * net.vocab.size + 4 * 4 * c  # tied matmul + final LayerNorm of the 4 command tokens
    return MacCount(
        patch_embed=patch_embed,
        layers_thop=depth * tokens * per_token,
        attention_matmuls=depth * 2 * tokens * tokens * c,
        head=head,
        tokens=tokens,
        depth=depth,
    )


def inference_token_count(net: FARTrackNet, retained_per_template: int | None = None) -> int:
    """Tokens in a steady-state inference forward: pruned older templates, the full newest one, search, commands."""
    cfg = net.cfg
    older = cfg.template_tokens if retained_per_template is None else retained_per_template
    return (cfg.num_templates - 1) * older + cfg.template_tokens + cfg.search_tokens + 4 + 4 * cfg.prenum
