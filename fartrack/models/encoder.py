"""The one FARTrack network: ViT-Tiny encoder over [templates | search | (trajectory) | commands] + tied head.

State-dict keys are the reference's (``identity``, ``backbone.*``), so released checkpoints load strictly.
The stage is a switch, not a copy: ``sparse`` selects the masked norms and the command-row max-norm,
``exits`` lists the depths whose logits a training forward emits (self-distillation), and every forward
can run the first ``depth`` layers only (tiny 15, nano 10, pico 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from fartrack.models.layers import Block
from fartrack.models.vocab import Vocabulary


@dataclass
class NetConfig:
    """Architecture of a FARTrack network (defaults = the released ViT-Tiny model)."""

    embed_dim: int = 192
    num_heads: int = 3
    mlp_ratio: float = 4.0
    patch_size: int = 16
    num_blocks: int = 12
    extension: int = 3
    num_templates: int = 5
    template_size: int = 112
    search_size: int = 224
    bins: int = 300
    range: int = 2
    sparse: bool = False
    max_norm: float = 1.0
    prenum: int = 0
    exits: Sequence[int] = field(default_factory=tuple)
    drop_path_rate: float = 0.0

    @property
    def depth(self) -> int:
        return self.num_blocks + self.extension

    @property
    def template_tokens(self) -> int:
        return (self.template_size // self.patch_size) ** 2

    @property
    def search_grid(self) -> int:
        return self.search_size // self.patch_size

    @property
    def search_tokens(self) -> int:
        return self.search_grid**2


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding (Conv2d, kernel = stride = patch size), flattened row-major."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Backbone(nn.Module):
    """Embeddings, the 12 + ``extension`` transformer layers, the final norm and the tied-head bias."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        dim, vocab = cfg.embed_dim, Vocabulary(cfg.bins, cfg.range)
        self.output_bias = nn.Parameter(torch.zeros(vocab.size))
        # Tensors the reference carries but never uses at inference; kept for a strict, round-trip layout.
        self.register_buffer("cls_token", torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", torch.zeros(1, 197, dim))
        if cfg.sparse:
            self.register_buffer("pos_embed_z", torch.zeros(1, cfg.template_tokens, dim))
        self.pos_embed_z0 = nn.Parameter(torch.zeros(1, cfg.template_tokens, dim))
        self.register_buffer("pos_embed_z1", torch.zeros(1, cfg.template_tokens, dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, cfg.search_tokens, dim))
        self.word_embeddings = nn.Embedding(vocab.size, dim, padding_idx=vocab.padding_id)
        self.position_embeddings = nn.Embedding(4, dim)
        if cfg.prenum > 0:
            self.prev_position_embeddings = nn.Embedding(cfg.prenum * 4, dim)
        elif cfg.sparse:
            self.prev_position_embeddings = _DeadEmbedding(3 * 4, dim)
        self.patch_embed = PatchEmbed(cfg.patch_size, dim)
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.num_blocks).tolist()
        self.blocks = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_ratio, rates[i], masked_norm=cfg.sparse) for i in range(cfg.num_blocks)
        )
        self.extension = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_ratio, rates[i % cfg.num_blocks], masked_norm=cfg.sparse)
            for i in range(cfg.extension)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def layers(self, depth: int) -> list[Block]:
        """The first ``depth`` layers in execution order (blocks, then extension)."""
        return (list(self.blocks) + list(self.extension))[:depth]


class _DeadEmbedding(nn.Module):
    """Holder of the reference's unused ``prev_position_embeddings.weight`` (buffer, never run)."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(rows, dim))


@dataclass
class EncoderOutput:
    """What one forward returns: final logits (B, 4, V), per-exit logits, and probed attention sums."""

    logits: Tensor
    exit_logits: list[Tensor]
    exit_depths: list[int]
    probe_attention: Optional[Tensor]


class FARTrackNet(nn.Module):
    """FARTrack encoder + tied coordinate head, one class for all three training stages."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab = Vocabulary(cfg.bins, cfg.range)
        self.identity = nn.Parameter(torch.zeros(1, cfg.num_templates + 1, cfg.embed_dim))
        self.backbone = Backbone(cfg)
        self.register_buffer(
            "command_ids", torch.tensor(self.vocab.command_ids, dtype=torch.long), persistent=False
        )
        self.register_load_state_dict_post_hook(_renorm_after_load)

    # ------------------------------------------------------------------ naming
    @property
    def net_type(self) -> str:
        """Reference checkpoint class name: ``FARTrack``, ``FARTrackDistill`` or ``FARTrackSparse``."""
        if self.cfg.sparse:
            return "FARTrackSparse"
        return "FARTrackDistill" if len(self.cfg.exits) > 0 else "FARTrack"

    # ------------------------------------------------------------------ embeddings
    def embed_templates(self, templates: Tensor) -> Tensor:
        """Patch-embed template crops (..., 3, Ht, Wt) -> (..., tz, C), positional embedding added.

        The slot identity is added later (:meth:`add_template_identity`), so one embedding can be cached and
        placed in any slot.
        """
        lead = templates.shape[:-3]
        tokens = self.backbone.patch_embed(templates.reshape(-1, *templates.shape[-3:]))
        tokens = tokens + self.backbone.pos_embed_z0
        return tokens.reshape(*lead, *tokens.shape[-2:])

    def add_template_identity(self, embedded: Tensor) -> Tensor:
        """(B, T, tz, C) embedded templates -> (B, T*tz, C) slot tokens (slot i gets ``identity[:, i]``)."""
        b, t, n, c = embedded.shape
        identity = self.identity[:, :t, :].unsqueeze(2)
        return (embedded + identity).reshape(b, t * n, c)

    def embed_search(self, search: Tensor, pos_first: bool = False) -> Tensor:
        """Search crop (B, 3, Hs, Ws) -> (B, tx, C).

        Inference order is ``(conv + identity) + pos``; the reference's distillation training forward adds
        ``pos`` first (``pos_first=True``). The two differ only in the last bits.
        """
        tokens = self.backbone.patch_embed(search)
        if pos_first:
            return (tokens + self.backbone.pos_embed_x) + self.identity[:, -1:, :]
        return (tokens + self.identity[:, -1:, :]) + self.backbone.pos_embed_x

    def command_tokens(self, batch: int) -> Tensor:
        """The 4 command tokens (B, 4, C): word embedding rows 600..603 + their position embeddings."""
        weight = self.backbone.word_embeddings.weight
        if self.cfg.sparse and self.cfg.max_norm > 0 and self.training:
            with torch.no_grad():
                torch.embedding_renorm_(weight, self.command_ids, self.cfg.max_norm, 2.0)
        tokens = weight[self.command_ids] + self.backbone.position_embeddings.weight
        return tokens.unsqueeze(0).expand(batch, -1, -1)

    def trajectory_tokens(self, trajectory_ids: Tensor) -> Tensor:
        """Trajectory tokens (paper variant, ``prenum`` > 0): ids (B, prenum*4) -> (B, prenum*4, C)."""
        if self.cfg.prenum <= 0:
            raise ValueError("trajectory tokens are off (MODEL.PRENUM = 0); the network takes no trajectory input")
        expected = self.cfg.prenum * 4
        if trajectory_ids.shape[-1] != expected:
            raise ValueError(f"expected {expected} trajectory ids (MODEL.PRENUM * 4), got {trajectory_ids.shape[-1]}")
        weight = self.backbone.word_embeddings.weight
        return weight[trajectory_ids] + self.backbone.prev_position_embeddings.weight

    # ------------------------------------------------------------------ encoder and head
    def encode(
        self,
        tokens: Tensor,
        depth: Optional[int] = None,
        key_keep: Optional[Tensor] = None,
        probe_rows: Optional[Tensor] = None,
        exits: Sequence[int] = (),
        fused: bool = False,
    ) -> EncoderOutput:
        """Run the first ``depth`` layers over a full token sequence whose last 4 tokens are the commands.

        ``key_keep`` (B, N) masks keys in attention and zeroes masked tokens in the masked norms.
        ``probe_rows`` selects query rows whose post-softmax attention is summed over the executed layers
        (B, heads, R, N). ``exits`` lists extra depths (1-based) whose logits are also returned.
        """
        depth = self.cfg.depth if depth is None else depth
        if not 1 <= depth <= self.cfg.depth:
            raise ValueError(f"depth must be in 1..{self.cfg.depth}, got {depth}")
        exit_set = {d for d in exits if d < depth}
        attention_sum = None
        exit_logits, exit_depths = [], []
        x = tokens
        for index, layer in enumerate(self.backbone.layers(depth), start=1):
            x, probs = layer(x, key_keep, probe_rows, fused)
            if probs is not None:
                attention_sum = probs if attention_sum is None else attention_sum + probs
            if index in exit_set:
                exit_logits.append(self.head(x[:, -4:]))
                exit_depths.append(index)
        return EncoderOutput(self.head(x[:, -4:]), exit_logits, exit_depths, attention_sum)

    def encode_inference(
        self, tokens: Tensor, depth: Optional[int] = None, probe_rows: Optional[Tensor] = None
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Inference-only encoder over a sequence with pruned tokens already removed (no mask).

        Returns the logits (B, 4, V) and, with ``probe_rows``, the post-softmax attention of those rows
        summed over the executed layers (B, heads, R, N). Fused attention and ``F.layer_norm`` throughout;
        the last layer computes the command tokens' outputs only (nothing else reaches the head). Equal to
        :meth:`encode` on the same tokens within float rounding (about 1e-5 in the logits).
        """
        depth = self.cfg.depth if depth is None else depth
        if not 1 <= depth <= self.cfg.depth:
            raise ValueError(f"depth must be in 1..{self.cfg.depth}, got {depth}")
        attention_sum = None
        x = tokens
        layers = self.backbone.layers(depth)
        for index, layer in enumerate(layers, start=1):
            x, probs = layer.forward_inference(x, probe_rows, 4 if index == depth else None)
            if probs is not None:
                attention_sum = probs if attention_sum is None else attention_sum + probs
        return self.head(x), attention_sum

    def head(self, command_hidden: Tensor) -> Tensor:
        """Final norm + tied output head: (B, 4, C) -> logits (B, 4, V) (matmul, then a separate bias add)."""
        y = self.backbone.norm(command_hidden)
        return torch.matmul(y, self.backbone.word_embeddings.weight.t()) + self.backbone.output_bias

    # ------------------------------------------------------------------ convenience forward
    def forward(
        self,
        templates: Tensor,
        search: Tensor,
        key_keep: Optional[Tensor] = None,
        depth: Optional[int] = None,
        probe_rows: Optional[Tensor] = None,
        exits: Optional[Sequence[int]] = None,
        trajectory_ids: Optional[Tensor] = None,
        search_pos_first: bool = False,
    ) -> EncoderOutput:
        """Full-sequence forward: templates (B, T, 3, Ht, Wt) in slot order, search (B, 3, Hs, Ws).

        ``exits`` defaults to the configured distillation exits while training and to none in eval mode.
        """
        b = search.shape[0]
        parts = [self.add_template_identity(self.embed_templates(templates)), self.embed_search(search, search_pos_first)]
        if self.cfg.prenum > 0:
            if trajectory_ids is None:
                raise ValueError("MODEL.PRENUM > 0: trajectory_ids (B, PRENUM*4) are required")
            parts.append(self.trajectory_tokens(trajectory_ids))
        elif trajectory_ids is not None:
            raise ValueError("trajectory_ids given but trajectory tokens are off (MODEL.PRENUM = 0)")
        parts.append(self.command_tokens(b))
        tokens = torch.cat(parts, dim=1)
        if exits is None:
            exits = tuple(self.cfg.exits) if self.training else ()
        return self.encode(tokens, depth, key_keep, probe_rows, exits)

    # ------------------------------------------------------------------ layout helpers
    def search_center_index(self, num_templates: Optional[int] = None) -> int:
        """Index of the search centre token in the full sequence (350 for the reference layout)."""
        t = self.cfg.num_templates if num_templates is None else num_templates
        g = self.cfg.search_grid
        return t * self.cfg.template_tokens + (g // 2) * g + g // 2

    @torch.no_grad()
    def renormalize_command_rows(self) -> None:
        """Apply the sparse model's max-norm to word-embedding rows 600..603 once (idempotent)."""
        if self.cfg.sparse and self.cfg.max_norm > 0:
            torch.embedding_renorm_(self.backbone.word_embeddings.weight, self.command_ids, self.cfg.max_norm, 2.0)


def _renorm_after_load(module: FARTrackNet, incompatible_keys) -> None:
    """After any state-dict load, renormalise the command rows once, so inference never mutates weights."""
    module.renormalize_command_rows()
