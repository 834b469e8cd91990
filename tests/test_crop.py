"""Tracker crops: bitwise parity with the reference crops, geometry rules, input validation."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from fartrack.tracker.crop import (
    DEFAULT_MEAN,
    DEFAULT_STD,
    crop_around_box,
    crop_with_info,
    normalize_crop,
    prepare_frame,
    validate_box,
)

RUN = "sparse_d15"


@pytest.fixture(scope="module")
def reference(official_dir):
    sequence = np.load(official_dir / "tracker_sequence.npz")
    trace = np.load(official_dir / "tracker_trace.npz")
    with open(official_dir / "tracker_expected.json") as handle:
        expected = json.load(handle)["runs"][RUN]
    return {
        "frames": sequence["frames"],
        "boxes": expected["boxes_xywh"],
        "run": expected,
        "template_crops": trace[f"{RUN}/template_crops"],
        "search_crops": trace[f"{RUN}/search_crops"],
        "search_first": trace[f"{RUN}/search_tensors_first"],
    }


def slow_reference_crop(image, box, factor, size):
    """Independent, deliberately naive statement of MODEL.md §8.1: a zero canvas filled pixel by pixel."""
    x, y, w, h = box
    side = math.ceil(math.sqrt(w * h) * factor)
    x1 = round(x + w / 2 - side / 2)
    y1 = round(y + h / 2 - side / 2)
    height, width = image.shape[:2]
    canvas = np.zeros((side, side, image.shape[2]), dtype=np.uint8)
    # The reference slices the image up to column W-1 / row H-1 (exclusive) whenever the crop reaches that
    # border, so the last column/row is zero padding in that case.
    col_end = width - 1 if x1 + side > width - 1 else width
    row_end = height - 1 if y1 + side > height - 1 else height
    for r in range(side):
        for c in range(side):
            ir, ic = y1 + r, x1 + c
            if 0 <= ir < row_end and 0 <= ic < col_end:
                canvas[r, c] = image[ir, ic]
    return cv2.resize(canvas, (size, size)), size / side


# ----------------------------------------------------------------------------------------- reference parity
def test_template_crops_bitwise(reference):
    frames, boxes, expected = reference["frames"], reference["boxes"], reference["template_crops"]
    equal = [np.array_equal(crop_around_box(frames[k], boxes[k], 2.0, 112)[0], expected[k]) for k in range(40)]
    assert sum(equal) == 40, f"template crops not bitwise equal at T_k, k = {[k for k, e in enumerate(equal) if not e]}"


def test_search_crops_bitwise_and_geometry(reference):
    frames, boxes, run = reference["frames"], reference["boxes"], reference["run"]
    for f in range(1, 40):
        result = crop_with_info(frames[f], boxes[f - 1], 4.0, 224)
        assert result.crop.dtype == np.uint8 and result.crop.shape == (224, 224, 3)
        assert np.array_equal(result.crop, reference["search_crops"][f - 1]), f"search crop of frame {f}"
        assert result.resize_factor == run["search_resize_factor"][f - 1], f"frame {f}"
        assert result.crop_size == run["search_crop_size"][f - 1], f"frame {f}"
        assert list(result.padding_ltrb) == run["search_crop_padding_ltrb"][f - 1], f"frame {f}"
        assert crop_around_box(frames[f], boxes[f - 1], 4.0, 224)[1] == result.resize_factor


def test_half_to_even_ties_from_fixture(reference):
    frames, boxes = reference["frames"], reference["boxes"]
    assert boxes[0] == [112.0, 84.0, 96.0, 72.0]
    template = crop_with_info(frames[0], boxes[0], 2.0, 112)
    assert template.crop_size == 167 and template.origin_xy == (76, 36)  # 76.5 -> 76, 36.5 -> 36
    search = crop_with_info(frames[1], boxes[0], 4.0, 224)
    assert search.crop_size == 333 and search.origin_xy == (-6, -46)  # -6.5 -> -6, -46.5 -> -46


def test_normalisation_bitwise(reference):
    tensor = normalize_crop(reference["search_crops"][0], DEFAULT_MEAN, DEFAULT_STD)
    expected = torch.from_numpy(reference["search_first"])
    assert tensor.dtype == torch.float32 and tensor.shape == (1, 3, 224, 224)
    assert torch.equal(tensor, expected)


def test_normalisation_matches_network_io(reference, official_dir):
    io = torch.load(official_dir / "network_io.pt", weights_only=True)
    frame = io["frame_index"]
    search = normalize_crop(reference["search_crops"][frame - 1], DEFAULT_MEAN, DEFAULT_STD)
    assert torch.equal(search, io["search"])
    assert search.stride() == io["search"].stride()  # the reference's channels-last strides
    for slot, k in enumerate(io["template_slot_ids"].tolist()):
        template = normalize_crop(reference["template_crops"][k], DEFAULT_MEAN, DEFAULT_STD)
        assert torch.equal(template, io["templates"][slot]), f"slot {slot} (T_{k})"


# -------------------------------------------------------------------------------------------- geometry rules
def textured(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_matches_naive_statement_on_random_boxes():
    image = textured(37, 53)
    rng = np.random.default_rng(1)
    for _ in range(60):
        w, h = rng.uniform(2, 40, size=2)
        x, y = rng.uniform(-30, 60), rng.uniform(-30, 45)
        factor = float(rng.choice([2.0, 4.0, 1.3]))
        size = int(rng.choice([16, 32, 57]))
        crop, factor_out = crop_around_box(image, [x, y, w, h], factor, size)
        want, want_factor = slow_reference_crop(image, [x, y, w, h], factor, size)
        assert np.array_equal(crop, want), (x, y, w, h, factor, size)
        assert factor_out == want_factor


@pytest.mark.parametrize("raw, expected", [(76.5, 76), (77.5, 78), (-6.5, -6), (-7.5, -8), (3.25, 3)])
def test_origin_rounds_half_to_even(raw, expected):
    # w = h = 20 and factor 5 give a side of 100, so the unrounded origin is x + 10 - 50 = x - 40
    result = crop_with_info(textured(60, 80), [raw + 40.0, raw + 40.0, 20.0, 20.0], 5.0, 32)
    assert result.crop_size == 100
    assert result.origin_xy == (expected, expected)


def test_right_bottom_padding_has_extra_pixel():
    image = textured(20, 30)
    # crop exactly [10, 30) x [0, 20): touches the right and bottom borders
    result = crop_with_info(image, [10.0, 0.0, 20.0, 20.0], 1.0, 20)
    assert result.origin_xy == (10, 0) and result.crop_size == 20
    assert result.padding_ltrb == (0, 0, 1, 1)
    assert np.array_equal(result.crop[:19, :19], image[0:19, 10:29])
    assert not result.crop[19].any() and not result.crop[:, 19].any()


def test_frame_smaller_than_crop_is_zero_padded():
    image = textured(12, 16)
    result = crop_with_info(image, [4.0, 3.0, 8.0, 6.0], 4.0, 40)
    assert result.crop_size == math.ceil(math.sqrt(48) * 4.0)  # 28 > 16 and > 12
    left, top, right, bottom = result.padding_ltrb
    assert min(left, top, right, bottom) > 0
    assert left + right + 16 - 1 == result.crop_size and top + bottom + 12 - 1 == result.crop_size
    want, _ = slow_reference_crop(image, [4.0, 3.0, 8.0, 6.0], 4.0, 40)
    assert np.array_equal(result.crop, want)
    assert not result.crop[0].any() and not result.crop[-1].any()


def test_crop_outside_the_frame_is_all_zero():
    image = textured(20, 20)
    result = crop_with_info(image, [-100.0, -100.0, 5.0, 5.0], 2.0, 16)
    assert result.crop.shape == (16, 16, 3) and not result.crop.any()
    left, top, right, bottom = result.padding_ltrb
    assert left + right == result.crop_size and top + bottom == result.crop_size


def test_crop_side_and_box_errors():
    image = textured(20, 20)
    for bad in ([0, 0, 0, 5], [0, 0, 5, -1], [0, 0, float("nan"), 5], [float("inf"), 0, 5, 5]):
        with pytest.raises(ValueError):
            crop_around_box(image, bad, 2.0, 16)
    with pytest.raises(ValueError, match="below 1"):
        crop_around_box(image, [0, 0, 1e-200, 1e-200], 2.0, 16)  # w*h underflows to 0
    with pytest.raises(ValueError, match="below 1"):
        crop_around_box(image, [0, 0, 1.0, 1.0], -1.0, 16)


def test_crop_of_tiny_box_has_side_one():
    result = crop_with_info(textured(20, 20), [5.0, 5.0, 1e-3, 1e-3], 400.0, 8)
    assert result.crop_size == 1


def test_crop_does_not_modify_or_copy_the_frame():
    image = textured(240, 320)
    before = image.copy()
    crop_around_box(image, [100.0, 80.0, 50.0, 40.0], 4.0, 224)
    crop_around_box(image, [300.0, 200.0, 50.0, 40.0], 4.0, 224)
    assert np.array_equal(image, before)


# --------------------------------------------------------------------------------------------- frame checks
def test_prepare_frame_rgb_is_returned_as_is():
    image = textured(10, 12)
    assert prepare_frame(image) is image


def test_prepare_frame_grayscale_is_replicated():
    gray = textured(10, 12)[:, :, 0]
    for frame in (gray, gray[:, :, None]):
        out = prepare_frame(frame)
        assert out.shape == (10, 12, 3) and out.dtype == np.uint8
        for channel in range(3):
            assert np.array_equal(out[:, :, channel], gray)
    crop, _ = crop_around_box(prepare_frame(gray), [2.0, 2.0, 6.0, 5.0], 2.0, 16)
    assert crop.shape == (16, 16, 3)
    assert np.array_equal(crop[:, :, 0], crop[:, :, 1]) and np.array_equal(crop[:, :, 0], crop[:, :, 2])


def test_prepare_frame_channel_flipped_view_is_usable():
    bgr = textured(30, 40)
    rgb_view = bgr[:, :, ::-1]
    frame = prepare_frame(rgb_view)
    assert np.array_equal(frame, rgb_view)
    crop, _ = crop_around_box(frame, [5.0, 5.0, 10.0, 10.0], 2.0, 16)
    want, _ = crop_around_box(np.ascontiguousarray(rgb_view), [5.0, 5.0, 10.0, 10.0], 2.0, 16)
    assert np.array_equal(crop, want)


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((10, 10, 3), dtype=np.uint16),
        np.zeros((10, 10, 3), dtype=bool),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((10, 10, 3, 1), dtype=np.uint8),
        np.zeros((10,), dtype=np.uint8),
        np.zeros((0, 10, 3), dtype=np.uint8),
        np.zeros((10, 0), dtype=np.uint8),
        [[0, 1], [2, 3]],
        torch.zeros(10, 10, 3, dtype=torch.uint8),
    ],
)
def test_prepare_frame_rejects_bad_frames(frame):
    with pytest.raises(ValueError):
        prepare_frame(frame)


# ---------------------------------------------------------------------------------------------- box checks
def test_validate_box_accepts_and_converts():
    box = validate_box([1, 2, 3, 4])
    assert box.dtype == np.float64 and box.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert validate_box(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist() == [1.0, 2.0, 3.0, 4.0]
    # partly outside, or larger than the image: fine (zero padding)
    validate_box([-5, -5, 10, 10], image_hw=(20, 20))
    validate_box([-50, -50, 200, 200], image_hw=(20, 20))
    validate_box([19.5, 19.5, 10, 10], image_hw=(20, 20))


@pytest.mark.parametrize(
    "box",
    [
        [0, 0, 0, 10],
        [0, 0, 10, 0],
        [0, 0, -3, 10],
        [0, 0, 10, -3],
        [float("nan"), 0, 10, 10],
        [0, 0, float("inf"), 10],
        [0, 0, 10],
        [0, 0, 10, 10, 1],
        "abcd",
    ],
)
def test_validate_box_rejects_bad_boxes(box):
    with pytest.raises(ValueError):
        validate_box(box)


@pytest.mark.parametrize("box", [[-10, 0, 10, 5], [0, -5, 10, 5], [20, 0, 5, 5], [0, 20, 5, 5], [100, 100, 5, 5]])
def test_validate_box_rejects_boxes_outside_the_image(box):
    with pytest.raises(ValueError, match="outside"):
        validate_box(box, image_hw=(20, 20), what="init box")


def test_validate_box_names_the_box():
    with pytest.raises(ValueError, match="ground-truth box"):
        validate_box([0, 0, 0, 1], what="ground-truth box")


# ---------------------------------------------------------------------------------------------- normalise
def test_normalize_crop_order_of_operations():
    crop = textured(8, 8)
    tensor = normalize_crop(crop, DEFAULT_MEAN, DEFAULT_STD, device="cpu")
    x = torch.from_numpy(crop).float().permute(2, 0, 1).unsqueeze(0)
    mean = torch.tensor(DEFAULT_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(DEFAULT_STD, dtype=torch.float32).view(1, 3, 1, 1)
    assert torch.equal(tensor, ((x / 255.0) - mean) / std)
    # tensors for mean/std work the same
    assert torch.equal(normalize_crop(crop, mean.flatten(), std.flatten()), tensor)


def test_normalize_crop_rejects_bad_input():
    with pytest.raises(ValueError):
        normalize_crop(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        normalize_crop(np.zeros((8, 8), dtype=np.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_normalize_crop_same_bits_on_cuda():
    crop = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    cpu = normalize_crop(crop)
    gpu = normalize_crop(crop, device="cuda")
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
