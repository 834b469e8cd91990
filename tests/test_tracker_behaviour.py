"""Tracker behaviour on a small random-weight network: bad input, variants, token removal equivalence."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from fartrack.models.build import init_weights
from fartrack.models.encoder import FARTrackNet, NetConfig
from fartrack.models.sparsify import SparsifyConfig
from fartrack.tracker import FARTracker, TrackerParams


def _net(**overrides) -> FARTrackNet:
    torch.manual_seed(0)
    net = FARTrackNet(NetConfig(sparse=True, **overrides))
    init_weights(net)
    with torch.no_grad():  # sharper attention than the tiny init, so keep-masks depend on the input
        for block in net.backbone.layers(net.cfg.depth):
            block.attn.qkv.weight.mul_(5)
    return net.eval()


def _frames(n=8, h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    return [np.roll(base, shift=i, axis=1) for i in range(n)]


@pytest.fixture(scope="module")
def net():
    return _net()


def test_track_takes_only_the_frame():
    assert list(inspect.signature(FARTracker.track).parameters) == ["self", "image"]


@pytest.mark.parametrize(
    "box,message",
    [
        ([10, 10, 0, 20], "width"),
        ([10, 10, 20, -5], "height"),
        ([float("nan"), 10, 20, 20], "finite"),
        ([500, 500, 20, 20], "outside"),
        ([10, 10, 20], "4 numbers"),
    ],
)
def test_bad_init_box_is_a_clear_value_error(net, box, message):
    tracker = FARTracker(net, TrackerParams(depth=2))
    with pytest.raises(ValueError) as err:
        tracker.initialize(_frames(1)[0], box)
    assert message in str(err.value).lower() or message in str(err.value)


def test_bad_frames_are_rejected(net):
    tracker = FARTracker(net, TrackerParams(depth=2))
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.track(_frames(1)[0])
    tracker.initialize(_frames(1)[0], [40, 30, 30, 20])
    with pytest.raises(ValueError):
        tracker.track(np.zeros((120, 160, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        tracker.track(np.zeros((120, 160, 4), dtype=np.uint8))
    with pytest.raises(ValueError):
        tracker.track(np.zeros((0, 160, 3), dtype=np.uint8))


def test_grayscale_and_tiny_frames_are_tracked(net):
    tracker = FARTracker(net, TrackerParams(depth=2))
    gray = [f[..., 0] for f in _frames(4)]
    tracker.initialize(gray[0], [40, 30, 30, 20])
    for frame in gray[1:]:
        box = tracker.track(frame)
        assert len(box) == 4 and all(np.isfinite(box))
    tiny = np.full((12, 16, 3), 128, dtype=np.uint8)  # much smaller than any crop: zero padding
    tracker.initialize(tiny, [2, 2, 8, 6])
    for _ in range(3):
        x, y, w, h = tracker.track(tiny)
        assert w >= 10 - 1e-9 and h >= 10 - 1e-9  # the reference clip keeps a 10-px minimum


def test_removed_tokens_equal_masked_tokens(net):
    frames = _frames(12)
    boxes = {}
    for mode in ("masked", "removed"):
        tracker = FARTracker(net, TrackerParams(depth=4, mode=mode))
        tracker.initialize(frames[0], [50, 40, 40, 30])
        boxes[mode] = np.array([tracker.track(f) for f in frames[1:]])
        kept = [int(t.keep.sum()) for t in tracker.memory.values() if t.keep is not None]
        assert kept and set(kept) == {37}
    assert np.abs(boxes["masked"] - boxes["removed"]).max() < 1e-3


@pytest.mark.parametrize("ratio,kept", [(1.0, 49), (0.75, 37), (0.5, 25), (0.25, 13), (0.1, 5)])
def test_retention_ratios(net, ratio, kept):
    tracker = FARTracker(net, TrackerParams(depth=2, sparsify=SparsifyConfig(retain_ratio=ratio)))
    frames = _frames(4)
    tracker.initialize(frames[0], [50, 40, 40, 30])
    for frame in frames[1:]:
        tracker.track(frame)
    assert {int(t.keep.sum()) for t in tracker.memory.values() if t.keep is not None} == {kept}


@pytest.mark.parametrize("query", ["center1x1", "center3x3", "search_all"])
@pytest.mark.parametrize("extra", ["none", "template", "command"])
def test_importance_variants_run_in_both_modes(net, query, extra):
    frames = _frames(5)
    boxes = []
    for mode in ("masked", "removed"):
        params = TrackerParams(depth=3, mode=mode, sparsify=SparsifyConfig(query=query, extra_term=extra))
        tracker = FARTracker(net, params)
        tracker.initialize(frames[0], [50, 40, 40, 30])
        boxes.append(np.array([tracker.track(f) for f in frames[1:]]))
    assert np.abs(boxes[0] - boxes[1]).max() < 1e-3


@pytest.mark.parametrize("templates", [1, 3, 9])
def test_template_counts(templates):
    net = _net(num_templates=templates)
    assert net.identity.shape[1] == templates + 1
    tracker = FARTracker(net, TrackerParams(depth=2))
    frames = _frames(12)
    tracker.initialize(frames[0], [50, 40, 40, 30])
    for frame in frames[1:]:
        tracker.track(frame)
    assert len(tracker.last_slots) == templates
    if templates == 1:
        assert tracker.last_slots == [0] and set(tracker.memory) == {0}  # one slot: the first-frame template
    else:
        assert tracker.last_slots[-1] == tracker.num_stored - 2  # newest slot: the previous frame's template


def test_trajectory_tokens_variant():
    net = _net(prenum=3)
    assert net.backbone.prev_position_embeddings.weight.shape == (12, 192)
    tracker = FARTracker(net, TrackerParams(depth=2))
    frames = _frames(4)
    tracker.initialize(frames[0], [50, 40, 40, 30])
    assert len(tracker.history) == 3
    for frame in frames[1:]:
        assert all(np.isfinite(tracker.track(frame)))


def test_dense_network_rejects_sparse_modes():
    net = FARTrackNet(NetConfig(sparse=False))
    with pytest.raises(ValueError, match="sparse"):
        FARTracker(net, TrackerParams(mode="masked"))
    with pytest.raises(ValueError, match="depth"):
        FARTracker(net, TrackerParams(depth=16))
