"""Box decoding and crop -> image mapping: bitwise parity with the reference, plus unit cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fartrack.models.vocab import coordinate_grid, decode_argmax, decode_mean, decode_soft, vocab_size
from fartrack.tracker.geometry import clip_box, map_box_to_image

DEPTHS = (15, 10, 6)
RUNS = {"sparse_d15": decode_mean, "sparse_d10": decode_mean, "sparse_d6": decode_mean, "stage1_d15": decode_argmax}


@pytest.fixture(scope="module")
def network_io(official_dir):
    return torch.load(official_dir / "network_io.pt", weights_only=True)


@pytest.fixture(scope="module")
def tracker_runs(official_dir):
    with open(official_dir / "tracker_expected.json") as handle:
        runs = json.load(handle)["runs"]
    trace = np.load(official_dir / "tracker_trace.npz")
    return runs, trace


# ----------------------------------------------------------------------------------------- reference parity
@pytest.mark.parametrize("depth", DEPTHS)
def test_decode_mean_bitwise(network_io, depth):
    box = decode_mean(network_io[f"sparse_logits_d{depth}"])
    assert box.dtype == torch.float32 and box.shape == (1, 4)
    assert torch.equal(box, network_io[f"sparse_box_xyxy_d{depth}"])
    assert torch.equal(network_io[f"sparse_logits_d{depth}"].argmax(-1), network_io[f"sparse_tokens_d{depth}"])


@pytest.mark.parametrize("depth", DEPTHS)
def test_decode_argmax_bitwise(network_io, depth):
    box = decode_argmax(network_io[f"stage1_logits_d{depth}"])
    assert box.dtype == torch.float32 and box.shape == (1, 4)
    assert torch.equal(box, network_io[f"stage1_box_xyxy_d{depth}"])
    assert torch.equal(network_io[f"stage1_logits_d{depth}"].argmax(-1), network_io[f"stage1_tokens_d{depth}"])


def test_distill_tracking_decode_equals_stage1(network_io):
    assert torch.equal(decode_argmax(network_io["distill_track_logits_d15"]), network_io["stage1_box_xyxy_d15"])


def test_map_and_clip_bitwise(network_io):
    box = map_box_to_image(
        network_io["sparse_box_xyxy_d15"][0],
        network_io["prev_state_xywh"].tolist(),
        network_io["resize_factor"],
        224,
    )
    clipped = clip_box(box, network_io["image_hw"].tolist())
    expected = network_io["sparse_image_box_xywh_d15"].tolist()
    assert max(abs(a - b) for a, b in zip(clipped, expected)) == 0.0
    assert clipped == expected


@pytest.mark.parametrize("run", sorted(RUNS))
def test_tracker_boxes_from_traced_logits_bitwise(tracker_runs, run):
    """decode -> map -> clip of every traced frame's logits gives the reference tracker's box exactly."""
    runs, trace = tracker_runs
    boxes = runs[run]["boxes_xywh"]
    logits = torch.from_numpy(trace[f"{run}/logits"])
    decode = RUNS[run]
    assert torch.equal(logits.argmax(-1), torch.from_numpy(trace[f"{run}/pred_tokens"]))
    for frame in range(1, 40):
        norm = decode(logits[frame - 1])
        box = map_box_to_image(norm, boxes[frame - 1], runs[run]["search_resize_factor"][frame - 1], 224)
        assert clip_box(box, (240, 320)) == boxes[frame], f"{run} frame {frame}"


# ----------------------------------------------------------------------------------------------- the grid
def test_coordinate_grid_reference_values():
    grid = coordinate_grid()
    assert grid.dtype == torch.float32 and grid.shape == (600,)
    expected = torch.tensor([-0.5 + k * (1 / 300) for k in range(600)], dtype=torch.float64).float()
    assert torch.equal(grid, expected)
    assert grid[0].item() == -0.5 and grid[300].item() == pytest.approx(0.5, abs=1e-7)
    assert vocab_size() == 605


def test_coordinate_grid_parametrised():
    grid = coordinate_grid(bins=100, range_=3)
    assert grid.shape == (300,) and grid[0].item() == -1.0
    assert vocab_size(100, 3) == 305
    assert coordinate_grid(bins=100, range_=2).shape == (200,)


# ---------------------------------------------------------------------------------------------- decoders
def one_hot_logits(ids, vocab=605, peak=50.0):
    logits = torch.zeros(len(ids), vocab)
    logits[torch.arange(len(ids)), torch.tensor(ids)] = peak
    return logits


def test_decode_argmax_unit():
    out = decode_argmax(one_hot_logits([0, 299, 598, 603]))
    assert out.tolist() == pytest.approx([-0.5, 0.5, 598 / 299 - 0.5, 603 / 299 - 0.5])
    assert out.dtype == torch.float32


def test_decode_soft_and_mean_unit():
    logits = one_hot_logits([150, 450])
    soft = decode_soft(logits)
    assert soft.tolist() == pytest.approx([-0.5 + 150 / 300, -0.5 + 450 / 300], abs=1e-6)
    mean = decode_mean(logits)
    hard = torch.tensor([150.5 / 299 - 0.5, 450.5 / 299 - 0.5])
    assert torch.allclose(mean, (soft + hard) / 2, atol=1e-7)
    # the expectation ignores the special ids 600..604
    logits[:, 600:] = 100.0
    assert torch.allclose(decode_soft(logits), soft)


def test_decoders_keep_leading_dims_and_check_vocab():
    logits = torch.randn(2, 3, 4, 605)
    for decode in (decode_argmax, decode_soft, decode_mean):
        assert decode(logits).shape == (2, 3, 4)
        with pytest.raises(ValueError, match="605"):
            decode(torch.randn(4, 600))
    assert decode_mean(torch.randn(4, 205), bins=100).shape == (4,)


# ------------------------------------------------------------------------------------------------ mapping
def test_map_box_to_image_centred_box():
    # a box covering the central half of the search crop maps back onto the previous state
    box = torch.tensor([0.25, 0.25, 0.75, 0.75])
    prev = [100.0, 50.0, 40.0, 20.0]
    crop_side = 120.0
    out = map_box_to_image(box, prev, 224 / crop_side, 224)
    assert out == pytest.approx([120.0 - 30.0, 60.0 - 30.0, 60.0, 60.0], abs=1e-4)
    assert all(isinstance(v, float) for v in out)


def test_map_box_to_image_rejects_bad_shape():
    with pytest.raises(ValueError):
        map_box_to_image(torch.zeros(3), [0, 0, 1, 1], 1.0, 224)


# -------------------------------------------------------------------------------------------------- clip
@pytest.mark.parametrize(
    "box, expected",
    [
        ([10.5, 20.25, 30.0, 40.0], [10.5, 20.25, 30.0, 40.0]),  # inside: unchanged
        ([-5.0, -8.0, 30.0, 40.0], [0.0, 0.0, 25.0, 32.0]),  # left/top outside
        ([300.0, 220.0, 50.0, 50.0], [300.0, 220.0, 20.0, 20.0]),  # right/bottom outside
        ([315.0, 235.0, 50.0, 50.0], [310.0, 230.0, 10.0, 10.0]),  # origin beyond W-10 / H-10
        ([-50.0, -50.0, 20.0, 20.0], [0.0, 0.0, 10.0, 10.0]),  # far outside: at least margin
        ([100.0, 100.0, 2.0, 3.0], [100.0, 100.0, 10.0, 10.0]),  # tiny: at least margin
        ([-10.0, -10.0, 400.0, 300.0], [0.0, 0.0, 320.0, 240.0]),  # larger than the image
    ],
)
def test_clip_box(box, expected):
    out = clip_box(box, (240, 320))
    assert out == expected
    assert all(type(v) is float for v in out)


def test_clip_box_margin():
    assert clip_box([-5.0, 0.0, 4.0, 4.0], (100, 100), margin=2) == [0.0, 0.0, 2.0, 4.0]
