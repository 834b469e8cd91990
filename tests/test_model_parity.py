"""Golden parity of the network with the released reference code (fixtures in ../shared/fixtures/official)."""

from __future__ import annotations

import pytest
import torch

from fartrack.models.checkpoint import load_model_weights
from fartrack.models.encoder import FARTrackNet, NetConfig
from fartrack.models.sparsify import SparsifyConfig, keep_from_scores, plan_probe, template_scores

DEPTHS = (15, 10, 6)


@pytest.fixture(scope="module")
def network_io(official_dir):
    return torch.load(official_dir / "network_io.pt", weights_only=True)


@pytest.fixture(scope="module")
def stage1_net(official_dir):
    net = FARTrackNet(NetConfig(sparse=False))
    load_model_weights(net, official_dir / "checkpoint_stage1.pth")
    return net.eval()


@pytest.fixture(scope="module")
def sparse_net(official_dir):
    net = FARTrackNet(NetConfig(sparse=True))
    load_model_weights(net, official_dir / "checkpoint_sparse.pth")
    return net.eval()


def _templates(io):
    return io["templates"].permute(1, 0, 2, 3, 4)  # (5, 1, 3, H, W) -> (1, 5, 3, H, W)


@pytest.mark.parametrize("depth", DEPTHS)
def test_stage1_logits_bitwise(stage1_net, network_io, depth):
    with torch.inference_mode():
        out = stage1_net(_templates(network_io), network_io["search"], depth=depth)
    expected = network_io[f"stage1_logits_d{depth}"]
    assert (out.logits - expected).abs().max().item() <= 1e-4
    assert torch.equal(out.logits, expected), "CPU fp32 should reproduce the reference bitwise (MODEL.md §9)"
    assert torch.equal(out.logits.argmax(-1), network_io[f"stage1_tokens_d{depth}"])


def test_distill_tracking_forward_equals_stage1(stage1_net, network_io):
    with torch.inference_mode():
        out = stage1_net(_templates(network_io), network_io["search"])
    assert torch.equal(out.logits, network_io["distill_track_logits_d15"])


def test_distill_training_forward_exits(official_dir, network_io):
    cfg = NetConfig(sparse=False, exits=tuple(range(5, 16)))
    net = FARTrackNet(cfg)
    load_model_weights(net, official_dir / "checkpoint_stage1.pth")
    assert net.net_type == "FARTrackDistill"
    net.train()  # drop-path rate is 0 in NetConfig by default: the reference fixture ran without drop-path
    with torch.no_grad():
        out = net(_templates(network_io), network_io["search"], search_pos_first=True)
    logits = torch.stack(out.exit_logits + [out.logits])
    assert out.exit_depths == list(network_io["distill_train_depths"][:-1].tolist())
    assert torch.equal(logits, network_io["distill_train_logits"])


@pytest.mark.parametrize("depth", DEPTHS)
def test_sparse_masked_logits_scores_and_keep_bitwise(sparse_net, network_io, depth):
    plan = plan_probe(SparsifyConfig(), 245, 14, slice(196, 245), 441)
    with torch.inference_mode():
        out = sparse_net(_templates(network_io), network_io["search"], key_keep=network_io["keep"], depth=depth,
                         probe_rows=plan.rows)
    assert torch.equal(out.logits, network_io[f"sparse_logits_d{depth}"])
    scores = template_scores(out.probe_attention, plan)
    assert torch.equal(scores, network_io[f"sparse_center_scores_d{depth}"])
    keep = keep_from_scores(scores, SparsifyConfig().num_pruned(49))
    assert keep.sum().item() == 37
    assert torch.equal(keep, network_io[f"sparse_keep_out_d{depth}"][0])
    for ratio, expected in zip((0.5, 0.25, 0.1), network_io[f"sparse_keep_out_d{depth}"][1:]):
        assert torch.equal(keep_from_scores(scores, SparsifyConfig(retain_ratio=ratio).num_pruned(49)), expected)


@pytest.mark.parametrize("depth", DEPTHS)
def test_sparse_removed_tokens_within_tolerance(sparse_net, network_io, depth):
    keep = network_io["keep"][0]
    index = torch.nonzero(keep).flatten()
    net = sparse_net
    with torch.inference_mode():
        slots = net.add_template_identity(net.embed_templates(_templates(network_io)))
        tokens = torch.cat([slots, net.embed_search(network_io["search"]), net.command_tokens(1)], dim=1)
        out = net.encode(tokens[:, index], depth=depth)
    diff = (out.logits - network_io[f"sparse_logits_d{depth}"]).abs().max().item()
    assert diff <= 1e-4
    assert torch.equal(out.logits.argmax(-1), network_io[f"sparse_tokens_d{depth}"])


def test_command_rows_renormalised_once_at_load(sparse_net, network_io):
    rows = sparse_net.backbone.word_embeddings.weight[600:604]
    assert torch.equal(rows, network_io["word_embeddings_600_603_after"])
    assert not torch.equal(network_io["word_embeddings_600_603_before"], network_io["word_embeddings_600_603_after"])
    before = sparse_net.backbone.word_embeddings.weight.clone()
    with torch.inference_mode():
        sparse_net(_templates(network_io), network_io["search"], key_keep=network_io["keep"])
    assert torch.equal(before, sparse_net.backbone.word_embeddings.weight), "inference must not mutate weights"
