"""Frame-level processing against the reference's golden outputs (``training/processing.pt``).

Integers and uint8 crops must match exactly (same OpenCV), float outputs bitwise (same op order).
``target_in_search`` crops are deliberately not built (the model never uses them, TRAINING_AND_EVAL.md
§13 #24); their random draws are still taken, which the RNG-consumption checks below verify.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fartrack.data.processing import (
    CropFamily,
    FrameProcessing,
    SampleRng,
    box_in_crop,
    crop_with_padding_map,
    flip_box_horizontal,
    make_sample_rng,
)

STAGE1_TEMPLATE = CropFamily(2.0, 112, 0.0, 0.0)
STAGE1_SEARCH = CropFamily(4.0, 224, 3.5, 0.5)


@pytest.fixture(scope="module")
def proc(training_fixtures_dir):
    return torch.load(training_fixtures_dir / "processing.pt", weights_only=True)


def test_crop_cases_match_reference(proc):
    frame = proc["frames"][0].numpy()
    checked = 0
    for k, case in enumerate(proc["crop_cases"]):
        if "raises" in case:  # zero-area box: the reference raises, so do we (ValueError with the sizes)
            with pytest.raises(ValueError, match="positive width and height"):
                crop_with_padding_map(frame, case["box_xywh"], case["factor"], case["output_sz"])
            continue
        crop, att, factor = crop_with_padding_map(frame, case["box_xywh"], case["factor"], case["output_sz"])
        assert np.array_equal(crop, proc[f"crop{k:02d}_image"].numpy()), case["name"]
        assert np.array_equal(att, proc[f"crop{k:02d}_att"].numpy()), case["name"]
        assert factor == proc[f"crop{k:02d}_resize_factor"] == case["resize_factor"], case["name"]
        checked += 1
    assert checked == 16


def test_box_to_crop_cases_match_reference(proc):
    out = torch.stack([
        box_in_crop(a, b, float(r), int(c), bool(n))
        for a, b, r, c, n in zip(proc["b2c_box_in"], proc["b2c_box_extract"], proc["b2c_resize_factor"],
                                 proc["b2c_crop_sz"], proc["b2c_normalize"])
    ])
    assert torch.equal(out, proc["b2c_out"])


def _run(proc, tag):
    frames = list(proc["frames"].numpy())
    boxes = proc["frame_boxes_xywh"].numpy()
    mode = "val" if tag == "C" else "train"
    processing = FrameProcessing(STAGE1_TEMPLATE, STAGE1_SEARCH, mode=mode, keep_trace=True)
    rng = SampleRng.from_seed(proc[f"proc{tag}_seed"])
    result, reason = processing(frames[:5], boxes[:5], frames[5:], boxes[5:], rng)
    assert result is not None, reason
    return result, rng


@pytest.mark.parametrize("tag", ["A", "B", "C"])
def test_seeded_processing_calls_match_reference(proc, tag):
    result, _ = _run(proc, tag)
    trace = result.trace
    summary = {s["tag"]: s for s in proc["proc_summary"]}[tag]
    assert trace["grayscale"] == summary["grayscale"] and trace["joint_flip"] == summary["joint_hflip"]
    jin = torch.cat([trace["template"]["jitter_box_in"], trace["search"]["jitter_box_in"]])
    jout = torch.cat([trace["template"]["jitter_box_out"], trace["search"]["jitter_box_out"]])
    assert torch.equal(jin, proc[f"proc{tag}_jitter_box_in"][:6])
    assert torch.equal(jout, proc[f"proc{tag}_jitter_box_out"][:6])
    for ours, ref in zip(trace["template"]["crops"], proc[f"proc{tag}_template_crop_uint8"].numpy()):
        assert np.array_equal(ours, ref)
    assert np.array_equal(trace["search"]["crops"][0], proc[f"proc{tag}_search_crop_uint8"][0].numpy())
    assert torch.equal(trace["template"]["crop_boxes"], proc[f"proc{tag}_template_crop_box"])
    assert torch.equal(trace["search"]["crop_boxes"], proc[f"proc{tag}_search_crop_box"])
    assert torch.equal(result.template_anno, proc[f"proc{tag}_template_anno"])
    assert torch.equal(result.search_anno, proc[f"proc{tag}_search_anno"])
    if tag == "A":
        assert torch.equal(result.template_images, proc["procA_template_images"])
        assert torch.equal(result.search_images, proc["procA_search_images"])
    if tag == "C":
        assert torch.equal(result.template_images[0], proc["procC_template_images_slot0"])
        assert torch.equal(result.search_images, proc["procC_search_images"])


@pytest.mark.parametrize("tag", ["A", "B", "C"])
def test_processing_consumes_the_reference_draws(proc, tag):
    """Each generator has advanced by exactly the reference's draws (9/7/14 train, 2/0/14 val), and the
    recorded draw values are the first draws of freshly seeded generators in the recorded order."""
    _, rng = _run(proc, tag)
    fresh = SampleRng.from_seed(proc[f"proc{tag}_seed"])
    for stream, value in zip(proc[f"proc{tag}_rng_streams"], proc[f"proc{tag}_rng_values"]):
        if stream == "random.random":
            assert fresh.py.random() == value
        elif stream.startswith("np."):
            assert fresh.np.uniform(0.8, 1.2) == value
        elif stream == "torch.randn":
            assert torch.randn(2, generator=fresh.torch).tolist() == value
        else:
            assert torch.rand(2, generator=fresh.torch).tolist() == value
    assert rng.py.getstate() == fresh.py.getstate()
    assert rng.np.get_state()[2] == fresh.np.get_state()[2]
    assert np.array_equal(rng.np.get_state()[1], fresh.np.get_state()[1])
    assert torch.equal(rng.torch.get_state(), fresh.torch.get_state())


def test_flip_box_rules():
    box = torch.tensor([10.25, 5.0, 20.5, 7.0])
    flipped = flip_box_horizontal(box, 159.0, True)
    assert torch.equal(flipped, torch.stack([159.0 - (box[0] + box[2]), box[1], (159.0 - box[0]) - (159.0 - (box[0] + box[2])), (box[1] + box[3]) - box[1]]))
    assert torch.equal(flip_box_horizontal(flipped, 159.0, True)[[1, 3]], box[[1, 3]])
    assert torch.allclose(flip_box_horizontal(flipped, 159.0, True), box)


def test_invalid_sample_when_target_outside_frame():
    frame = np.full((60, 80, 3), 100, np.uint8)
    processing = FrameProcessing(CropFamily(2.0, 32, 0.0, 0.0), CropFamily(4.0, 64, 0.0, 0.0))
    boxes = np.array([[10, 10, 20, 20]] * 5, np.float32)
    far = np.array([[500, 500, 10, 10]], np.float32)
    result, reason = processing([frame] * 5, boxes, [frame], far, SampleRng.from_seed(0))
    assert result is None and "search" in reason and "padding" in reason
    ok, _ = processing([frame] * 5, boxes, [frame], boxes[:1], SampleRng.from_seed(0))
    assert ok is not None and ok.template_images.shape == (5, 3, 32, 32) and ok.search_images.shape == (1, 3, 64, 64)


def test_sample_rng_is_a_pure_function_of_seed_epoch_index():
    a, b = make_sample_rng(3, 1, 7), make_sample_rng(3, 1, 7)
    assert a.py.random() == b.py.random() and a.np.uniform() == b.np.uniform()
    assert torch.equal(torch.rand(3, generator=a.torch), torch.rand(3, generator=b.torch))
    draws = {make_sample_rng(3, e, i).py.random() for e in (0, 1) for i in (0, 1, 2)} | {make_sample_rng(4, 0, 0).py.random()}
    assert len(draws) == 7
    assert random.Random(5).random() == SampleRng.from_seed(5).py.random()
