"""The tracker reproduces the reference tracker runs of tracker_expected.json frame by frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fartrack.models.checkpoint import load_model_weights
from fartrack.models.encoder import FARTrackNet, NetConfig
from fartrack.tracker import FARTracker, TrackerParams

RUNS = {
    # run name: (checkpoint, sparse, depth, decode)
    "sparse_d15": ("checkpoint_sparse.pth", True, 15, "mean"),
    "sparse_d10": ("checkpoint_sparse.pth", True, 10, "mean"),
    "sparse_d6": ("checkpoint_sparse.pth", True, 6, "mean"),
    "stage1_d15": ("checkpoint_stage1.pth", False, 15, "argmax"),
}


@pytest.fixture(scope="module")
def sequence(official_dir):
    data = np.load(official_dir / "tracker_sequence.npz")
    return data["frames"], data["init_bbox_xywh"]


@pytest.fixture(scope="module")
def expected(official_dir):
    return json.loads((official_dir / "tracker_expected.json").read_text())["runs"]


@pytest.fixture(scope="module")
def trace(official_dir):
    return dict(np.load(official_dir / "tracker_trace.npz"))


_NETS: dict = {}


def _net(official_dir, checkpoint, sparse):
    key = (checkpoint, sparse)
    if key not in _NETS:
        net = FARTrackNet(NetConfig(sparse=sparse))
        load_model_weights(net, official_dir / checkpoint)
        _NETS[key] = net.eval()
    return _NETS[key]


def _run(tracker, frames, init_box, record):
    tracker.initialize(frames[0], init_box)
    boxes = [list(map(float, init_box))]
    for frame in frames[1:]:
        boxes.append(tracker.track(frame))
        record(tracker)
    return np.array(boxes)


CASES = [(run, mode) for run in sorted(RUNS) if RUNS[run][1] for mode in ("masked", "removed", "fast")] + [
    ("stage1_d15", "dense"),
    ("stage1_d15", "fast"),
]


@pytest.mark.parametrize("run,mode", CASES)
def test_tracker_matches_reference(official_dir, sequence, expected, trace, run, mode):
    checkpoint, sparse, depth, decode = RUNS[run]
    net = _net(official_dir, checkpoint, sparse)
    params = TrackerParams(decode=decode, depth=depth, mode=mode)
    tracker = FARTracker(net, params)
    frames, init_box = sequence
    logits, slots, keeps, new_masks = [], [], [], []

    def record(t):
        logits.append(t.last_logits[0].clone())
        slots.append(list(t.last_slots))
        if mode == "masked":
            keeps.append(t.last_keep[0].clone())
        if sparse:  # the mask this frame computed for its newest template
            new_masks.append(t.memory[t.last_slots[-1]].keep.clone())

    boxes = _run(tracker, frames, init_box, record)
    reference = np.array(expected[run]["boxes_xywh"], dtype=np.float64)
    errors = np.abs(boxes - reference).max(axis=1)
    first_bad = int(np.argmax(errors > 0.01)) if (errors > 0.01).any() else None
    assert first_bad is None, f"{run}/{mode}: first frame off by > 0.01 px: {first_bad} ({errors[first_bad]:.4g} px)"
    assert slots == expected[run]["template_slots"]
    ref_logits = torch.from_numpy(trace[f"{run}/logits"])
    logit_diff = (torch.stack(logits) - ref_logits).abs().max().item()
    assert logit_diff <= 1e-4
    if mode in ("masked", "dense"):
        # The reference computation order is reproduced exactly: bitwise boxes and logits.
        assert np.array_equal(boxes, reference), f"max box diff {errors.max():.3g} px"
        assert logit_diff == 0.0
    else:
        assert errors.max() <= 1e-4
    if mode == "masked":
        assert torch.equal(torch.stack(keeps), torch.from_numpy(trace[f"{run}/keep"]))
    if sparse:  # every keep-mask equals the reference's (keep_out[:, 0] is its 25 %-pruned mask)
        assert torch.equal(torch.stack(new_masks), torch.from_numpy(trace[f"{run}/keep_out"][:, 0]))


def test_memory_is_bounded(official_dir, sequence):
    net = _net(official_dir, "checkpoint_sparse.pth", True)
    tracker = FARTracker(net, TrackerParams(depth=6))
    frames, init_box = sequence
    tracker.initialize(frames[0], init_box)
    sizes = []
    for i in range(200):
        tracker.track(frames[1 + i % (len(frames) - 1)])
        sizes.append(len(tracker.memory))
    # exponential schedule: index 0 plus indices >= int(0.3 (n-1)) -> about 70 % of n stays reachable;
    # what matters is that nothing unreachable is kept
    n = tracker.num_stored
    bound = tracker.schedule.min_selectable_index(n)
    assert set(tracker.memory) == {0, *range(bound, n)}
    assert sizes[-1] < n


@pytest.mark.parametrize(
    "script,config,checkpoint,layers,run",
    [
        ("fartrack_sparse", "fartrack_sparse_224_full", "checkpoint_sparse.pth", 6, "sparse_d6"),
        ("fartrack", "fartrack_tiny_224_full", "checkpoint_stage1.pth", None, "stage1_d15"),
    ],
)
def test_tracker_from_config_and_checkpoint(official_dir, sequence, expected, script, config, checkpoint, layers, run):
    """The user path: YAML config + checkpoint file (+ --layers) -> tracker with the reference's boxes."""
    from fartrack.config import load_config
    from fartrack.tracker import build_tracker

    tracker = build_tracker(load_config(script, config), official_dir / checkpoint, layers=layers, device="cpu")
    frames, init_box = sequence
    boxes = _run(tracker, frames, init_box, lambda t: None)
    assert np.abs(boxes - np.array(expected[run]["boxes_xywh"])).max() <= 1e-4


def test_sparse_model_starts_from_a_dense_checkpoint(official_dir):
    """Stage-3 initialisation: a stage-1/distill checkpoint loads into the sparse model (norm -> masknorm)."""
    net = FARTrackNet(NetConfig(sparse=True))
    notes = load_model_weights(net, official_dir / "checkpoint_stage1.pth")
    assert any("pos_embed_z" in note for note in notes)
    state = net.state_dict()
    assert torch.equal(state["backbone.blocks.3.masknorm1.norm.weight"], state["backbone.blocks.3.norm1.weight"])
