"""Inter-frame sparsification: which template tokens to keep, from the encoder's attention.

The importance of a template token is the attention it receives from a query region (reference: the single
search-centre token), summed over the executed layers and averaged over heads; the paper variants add a
3x3 centre region, all search tokens, and a template self-attention (Z) or command-token (C) term. The
least important ``int(tokens * (1 - retain_ratio))`` tokens are pruned (reference: 12 of 49, keep 37).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

QUERY_REGIONS = ("center1x1", "center3x3", "search_all")
EXTRA_TERMS = ("none", "template", "command")


@dataclass(frozen=True)
class SparsifyConfig:
    """How keep-masks are generated (defaults = the released code)."""

    retain_ratio: float = 0.75
    query: str = "center1x1"
    extra_term: str = "none"

    def __post_init__(self) -> None:
        if self.query not in QUERY_REGIONS:
            raise ValueError(f"sparsification query must be one of {QUERY_REGIONS}, got {self.query!r}")
        if self.extra_term not in EXTRA_TERMS:
            raise ValueError(f"sparsification extra term must be one of {EXTRA_TERMS}, got {self.extra_term!r}")
        if not 0.0 < self.retain_ratio <= 1.0:
            raise ValueError(f"retain ratio must be in (0, 1], got {self.retain_ratio}")

    def num_pruned(self, tokens_per_template: int) -> int:
        """Tokens pruned per template: ``int(tokens * (1 - ratio))`` (12 of 49 for the reference 0.75)."""
        return int(tokens_per_template * round(1.0 - self.retain_ratio, 12))


@dataclass(frozen=True)
class ProbePlan:
    """Query rows to probe in one forward, and how to turn their attention into template-token scores."""

    rows: Tensor  # (R,) long: query rows whose attention is summed over layers
    region: slice  # rows[region] = the search query region
    extra: Optional[slice]  # rows[extra] = the extra-term rows (template or command), if any
    columns: slice  # key columns of the scored template


def plan_probe(
    cfg: SparsifyConfig,
    search_start: int,
    search_grid: int,
    scored_template: slice,
    command_start: int,
    device: torch.device | str = "cpu",
) -> ProbePlan:
    """Rows and columns for scoring the template occupying ``scored_template`` in a sequence.

    ``search_start`` is the index of the first search token, ``command_start`` of the first command token.
    """
    g = search_grid
    centre = g // 2
    if cfg.query == "center1x1":
        region = [search_start + centre * g + centre]
    elif cfg.query == "center3x3":
        region = [search_start + r * g + c for r in range(centre - 1, centre + 2) for c in range(centre - 1, centre + 2)]
    else:
        region = list(range(search_start, search_start + g * g))
    extra: list[int] = []
    if cfg.extra_term == "template":
        extra = list(range(scored_template.start, scored_template.stop))
    elif cfg.extra_term == "command":
        extra = list(range(command_start, command_start + 4))
    rows = torch.tensor(region + extra, dtype=torch.long, device=device)
    extra_slice = slice(len(region), len(region) + len(extra)) if extra else None
    return ProbePlan(rows, slice(0, len(region)), extra_slice, scored_template)


def template_scores(attention_rows: Tensor, plan: ProbePlan) -> Tensor:
    """Importance of the scored template's tokens, (B, tokens).

    ``attention_rows`` (B, heads, R, N) is the post-softmax attention of the probed rows summed over layers.
    Heads are averaged, then the query rows of each term are averaged and the terms added.
    """
    mean_heads = attention_rows.mean(dim=1)
    scores = mean_heads[:, plan.region, plan.columns].mean(dim=1)
    if plan.extra is not None:
        scores = scores + mean_heads[:, plan.extra, plan.columns].mean(dim=1)
    return scores


def keep_from_scores(scores: Tensor, num_pruned: int) -> Tensor:
    """Keep-mask (B, tokens) bool that prunes the ``num_pruned`` lowest scores.

    Uses a stable ascending sort, so exact ties prune the lower token index first (the reference's sort is
    not stable; results differ only on exact ties).
    """
    keep = torch.ones_like(scores, dtype=torch.bool)
    if num_pruned > 0:
        order = torch.argsort(scores, dim=-1, stable=True)
        keep.scatter_(-1, order[..., :num_pruned], False)
    return keep


def keep_older_templates(scores: Tensor, num_pruned: int) -> Tensor:
    """Stage-3 training keep vector over the template tokens, (B, T*tokens) bool.

    ``scores`` (B, T, tokens) scores every template slot at once (the training-time rule, where templates
    are fixed for a clip); templates 0..T-2 lose their ``num_pruned`` lowest tokens, the newest slot is kept.
    """
    keep = keep_from_scores(scores, num_pruned)
    keep[:, -1] = True
    return keep.flatten(1)
