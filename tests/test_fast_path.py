"""The fast inference path (``fast`` mode): equal to the reference computation, and the tracker default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fartrack.config import load_config
from fartrack.data.synthetic import moving_box_sequence
from fartrack.models.build import init_weights
from fartrack.models.encoder import FARTrackNet, NetConfig
from fartrack.models.sparsify import SparsifyConfig
from fartrack.tracker import FARTracker, TrackerParams, build_tracker


def _net(sparse=True, **overrides) -> FARTrackNet:
    torch.manual_seed(0)
    net = FARTrackNet(NetConfig(sparse=sparse, **overrides))
    init_weights(net)
    with torch.no_grad():  # sharper attention than the tiny init, so keep-masks depend on the input
        for block in net.backbone.layers(net.cfg.depth):
            block.attn.qkv.weight.mul_(5)
            if sparse:
                block.masknorm1.norm.weight.normal_(1.0, 0.1)
                block.masknorm2.norm.bias.normal_(0.0, 0.05)
    return net.eval()


@pytest.fixture(scope="module")
def sparse_net():
    return _net()


def _sequence(net, keep_templates):
    """Random template/search tokens and the key-keep vector that prunes 12 tokens of slots 0..3."""
    g = torch.Generator().manual_seed(1)
    cfg = net.cfg
    tz = cfg.template_tokens
    tokens = torch.randn(1, cfg.num_templates * tz + cfg.search_tokens + 4, cfg.embed_dim, generator=g)
    keep = torch.ones(1, tokens.shape[1], dtype=torch.bool)
    if keep_templates:
        for slot in range(cfg.num_templates - 1):
            keep[0, slot * tz + torch.randperm(tz, generator=g)[:12]] = False
    return tokens, keep


@pytest.mark.parametrize("depth", [1, 4, 15])
def test_encode_inference_equals_masked_encode(sparse_net, depth):
    net = sparse_net
    tokens, keep = _sequence(net, keep_templates=True)
    centre = net.search_center_index()
    with torch.inference_mode():
        reference = net.encode(tokens, depth, keep, torch.tensor([centre]))
        kept = keep[0].nonzero().flatten()
        new_centre = int(keep[0, :centre].sum())
        logits, attention = net.encode_inference(tokens[:, kept], depth, torch.tensor([new_centre]))
    assert (logits - reference.logits).abs().max() < 1e-4
    assert attention.shape == (1, 3, 1, kept.numel())
    assert (attention - reference.probe_attention[..., kept]).abs().max() < 1e-5
    # masked keys get exactly zero attention in the reference form, so nothing is lost by removing them
    assert reference.probe_attention[..., ~keep[0]].abs().max() == 0


def test_encode_inference_on_a_dense_model_equals_encode():
    net = _net(sparse=False)
    tokens, _ = _sequence(net, keep_templates=False)
    with torch.inference_mode():
        expected = net.encode(tokens, 6).logits
        logits, attention = net.encode_inference(tokens, 6)
    assert attention is None
    assert (logits - expected).abs().max() < 1e-4


def test_last_layer_computes_only_the_requested_rows(sparse_net):
    block = sparse_net.backbone.blocks[0]
    x = torch.randn(1, 50, sparse_net.cfg.embed_dim)
    with torch.inference_mode():
        full, probs_full = block.forward_inference(x, torch.tensor([7, 20]))
        tail, probs_tail = block.forward_inference(x, torch.tensor([7, 20]), output_rows=4)
    assert tail.shape == (1, 4, x.shape[-1])
    assert (tail - full[:, -4:]).abs().max() < 1e-5
    assert (probs_tail - probs_full).abs().max() < 1e-6


def _track(net, frames, boxes, **params):
    tracker = FARTracker(net, TrackerParams(**params))
    tracker.initialize(frames[0], boxes[0])
    out, logits, masks = [], [], []
    for frame in frames[1:]:
        out.append(tracker.track(frame))
        logits.append(tracker.last_logits.clone())
        newest = tracker.memory[tracker.last_slots[-1]]
        masks.append(None if newest.keep is None else newest.keep.clone())
    return tracker, np.array(out), torch.cat(logits), masks


@pytest.mark.parametrize("query,extra", [("center1x1", "none"), ("center3x3", "command"), ("search_all", "template")])
def test_fast_tracker_equals_masked_tracker(sparse_net, query, extra):
    frames, boxes = moving_box_sequence(num_frames=10, height=120, width=160, seed=2)
    sparsify = SparsifyConfig(query=query, extra_term=extra)
    _, masked_boxes, masked_logits, masked_masks = _track(sparse_net, frames, boxes, depth=3, mode="masked", sparsify=sparsify)
    fast, fast_boxes, fast_logits, fast_masks = _track(sparse_net, frames, boxes, depth=3, mode="fast", sparsify=sparsify)
    assert fast.mode == "fast"
    assert (fast_logits - masked_logits).abs().max() < 1e-4
    assert np.abs(fast_boxes - masked_boxes).max() < 1e-3
    assert all(torch.equal(a, b) for a, b in zip(fast_masks, masked_masks))
    assert len(fast._token_buffers) <= 2  # first frame (all tokens) and steady state: reused, not reallocated


def test_fast_is_the_default_for_sparse_and_dense_configs():
    for script, config in [("fartrack_sparse", "fartrack_sparse_224_full"), ("fartrack", "fartrack_tiny_224_full")]:
        tracker = build_tracker(load_config(script, config), None, layers=1, device="cpu")
        assert tracker.mode == "fast" and tracker.backend is None


def test_dense_fast_tracker_equals_dense_tracker():
    net = _net(sparse=False)
    frames, boxes = moving_box_sequence(num_frames=6, height=120, width=160, seed=4)
    _, dense_boxes, dense_logits, _ = _track(net, frames, boxes, depth=2, mode="dense", decode="argmax")
    _, fast_boxes, fast_logits, _ = _track(net, frames, boxes, depth=2, mode="fast", decode="argmax")
    assert (fast_logits - dense_logits).abs().max() < 1e-4
    assert np.abs(fast_boxes - dense_boxes).max() < 1e-3


def test_runtime_backend_needs_the_fast_mode(sparse_net):
    with pytest.raises(ValueError, match="fast"):
        FARTracker(sparse_net, TrackerParams(mode="masked"), backend=object())


def test_numpy_crop_normalisation_is_bitwise_normalize_crop():
    """The tracker's per-frame numpy normalisation equals normalize_crop bitwise, values and layout."""
    from fartrack.tracker.crop import DEFAULT_MEAN, DEFAULT_STD, normalize_crop, normalize_crop_into

    crop = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    crop[0, :, :] = np.arange(32, dtype=np.uint8)[:, None] * 8 + 7  # spread over the uint8 range
    crop[1, :, 0] = np.arange(224, 256, dtype=np.uint8)
    expected = normalize_crop(crop, DEFAULT_MEAN, DEFAULT_STD)
    mean, std = np.asarray(DEFAULT_MEAN, np.float32), np.asarray(DEFAULT_STD, np.float32)
    nchw = normalize_crop_into(crop, np.empty((1, 3, 32, 32), np.float32), mean, std)
    assert np.array_equal(nchw, expected.numpy())
    hwc = torch.from_numpy(normalize_crop_into(crop, np.empty((32, 32, 3), np.float32), mean, std))
    view = hwc.permute(2, 0, 1).unsqueeze(0)
    assert torch.equal(view, expected) and view.stride() == expected.stride()
