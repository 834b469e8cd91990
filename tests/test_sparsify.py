"""Keep-mask rules: pruning counts, stable tie-breaking, and the stage-3 training mask of the reference."""

from __future__ import annotations

import pytest
import torch

from fartrack.models.sparsify import SparsifyConfig, keep_from_scores, keep_older_templates, plan_probe


@pytest.mark.parametrize("ratio,pruned", [(1.0, 0), (0.75, 12), (0.5, 24), (0.25, 36), (0.1, 44)])
def test_pruned_counts_match_reference_ratios(ratio, pruned):
    assert SparsifyConfig(retain_ratio=ratio).num_pruned(49) == pruned


def test_bad_sparsify_settings_are_rejected():
    with pytest.raises(ValueError, match="query"):
        SparsifyConfig(query="centre")
    with pytest.raises(ValueError, match="extra term"):
        SparsifyConfig(extra_term="both")
    with pytest.raises(ValueError, match="retain ratio"):
        SparsifyConfig(retain_ratio=0.0)


def test_ties_prune_lower_index_first():
    scores = torch.tensor([[0.5, 0.1, 0.1, 0.9, 0.1]])
    assert keep_from_scores(scores, 2).tolist() == [[True, False, False, True, True]]


def test_probe_rows_for_each_region():
    assert plan_probe(SparsifyConfig(), 245, 14, slice(196, 245), 441).rows.tolist() == [350]
    rows3 = plan_probe(SparsifyConfig(query="center3x3"), 245, 14, slice(196, 245), 441).rows.tolist()
    assert rows3 == [245 + r * 14 + c for r in (6, 7, 8) for c in (6, 7, 8)]
    all_rows = plan_probe(SparsifyConfig(query="search_all", extra_term="command"), 245, 14, slice(196, 245), 441)
    assert all_rows.rows.tolist() == list(range(245, 441)) + [441, 442, 443, 444]


def test_training_mask_equals_reference(training_fixtures_dir):
    data = torch.load(training_fixtures_dir / "sparse_train_mask.pt", weights_only=True)
    attention = data["fixed_attn_avg"]  # (B, 445, 445), already head-averaged
    scores = attention[:, 350, :245].reshape(-1, 5, 49)
    assert torch.equal(scores, data["fixed_attn_scores"])
    keep_templates = keep_older_templates(scores, SparsifyConfig().num_pruned(49))
    keep = torch.cat([keep_templates, torch.ones(scores.shape[0], 200, dtype=torch.bool)], dim=1)
    assert torch.equal(keep, data["fixed_attn_keep"])
    assert keep[:, :196].sum(dim=1).tolist() == [4 * 37, 4 * 37]
