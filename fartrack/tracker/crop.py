"""Frame validation, square crops around a box, and crop normalisation for the tracker.

The crop reproduces the reference geometry exactly (MODEL.md §8.1), so crops made with the same OpenCV
major version are bit-identical to the reference ones:

1. ``crop_sz = ceil(sqrt(w * h) * factor)``; a side below 1 pixel is an error.
2. Origin ``x1 = round(x + w/2 - crop_sz/2)`` with Python's round (half to even), ``y1`` likewise, and
   ``x2 = x1 + crop_sz``. The crop covers columns ``[x1, x2)`` and rows ``[y1, y2)``.
3. Parts outside the frame are zero. The padding is asymmetric, as in the reference:
   ``left = max(0, -x1)``, ``right = max(x2 - W + 1, 0)``; whenever the crop reaches the right (bottom)
   border, the last image column (row) is replaced by zero padding too.
4. ``cv2.resize`` with its default (bilinear) interpolation to ``output_size`` x ``output_size``;
   ``resize_factor = output_size / crop_sz``.

Frames smaller than the crop are fine: everything outside the frame is zero padding, on every side if
needed. The frame is never copied: the in-image part is a numpy view, which OpenCV pads (one allocation of
``crop_sz`` x ``crop_sz``) and resizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

# ImageNet statistics used by the reference (MODEL.md §1), RGB order.
DEFAULT_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
DEFAULT_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)

BoxLike = Union[Sequence[float], np.ndarray, torch.Tensor]

__all__ = [
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "CropResult",
    "prepare_frame",
    "validate_box",
    "crop_with_info",
    "crop_around_box",
    "normalize_crop",
    "normalize_crop_into",
]


def prepare_frame(image: np.ndarray) -> np.ndarray:
    """Check a frame for the tracker and return it as an ``H x W x 3`` uint8 RGB array.

    Accepted: a numpy ``uint8`` array of shape ``H x W`` (grayscale), ``H x W x 1`` or ``H x W x 3`` (RGB).
    Grayscale frames (both forms) are replicated to 3 identical channels, which is what the network
    expects. A 3-channel frame is returned as is (no copy) unless its pixels are not laid out as packed
    ``uint8`` triplets (e.g. a ``[..., ::-1]`` channel flip), in which case a contiguous copy is made so
    OpenCV can read it. The channel order is not checked: pass RGB (convert OpenCV's BGR reads first).

    Raises:
        ValueError: not a numpy array, a dtype other than uint8, another shape, or an empty frame.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"frame must be a numpy uint8 array (H x W [x 3]), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"frame must have dtype uint8, got {image.dtype} (shape {tuple(image.shape)})")
    if image.ndim == 2:
        channels = 1
    elif image.ndim == 3 and image.shape[2] in (1, 3):
        channels = image.shape[2]
    else:
        raise ValueError(
            f"frame must have shape H x W (grayscale), H x W x 1 or H x W x 3 (RGB), got {tuple(image.shape)}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"frame is empty (shape {tuple(image.shape)})")
    if channels == 1:
        gray = image if image.ndim == 2 else image[:, :, 0]
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.strides[2] != 1 or image.strides[1] != 3:
        image = np.ascontiguousarray(image)
    return image


def validate_box(
    box_xywh: BoxLike, image_hw: Optional[Sequence[int]] = None, what: str = "init box"
) -> np.ndarray:
    """Return ``box_xywh`` as a float64 array ``[x, y, w, h]`` after checking it.

    Raises ValueError (naming ``what``) when the box does not have 4 values, holds NaN or inf, has a
    non-positive width or height, or (when ``image_hw = (H, W)`` is given) lies entirely outside the
    image, i.e. does not overlap ``[0, W) x [0, H)``. A box that is only partly inside, or a frame smaller
    than the crop made around the box, is fine: the crop is zero padded.
    """
    if isinstance(box_xywh, torch.Tensor):
        box_xywh = box_xywh.detach().cpu().numpy()
    try:
        box = np.asarray(box_xywh, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be 4 numbers [x, y, w, h], got {box_xywh!r}") from exc
    if box.shape != (4,):
        raise ValueError(f"{what} must be 4 numbers [x, y, w, h], got {box.size} values: {box_xywh!r}")
    if not np.all(np.isfinite(box)):
        raise ValueError(f"{what} must be finite, got {box.tolist()}")
    x, y, w, h = box.tolist()
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} must have positive width and height, got w={w}, h={h}")
    if image_hw is not None:
        height, width = int(image_hw[0]), int(image_hw[1])
        if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
            raise ValueError(
                f"{what} {box.tolist()} lies entirely outside the {height}x{width} (HxW) image"
            )
    return box


@dataclass(frozen=True)
class CropResult:
    """A crop and its geometry.

    Attributes:
        crop: ``output_size x output_size x C`` uint8 crop.
        resize_factor: ``output_size / crop_size`` (output pixels per image pixel).
        crop_size: side of the square image region in pixels, before resizing.
        origin_xy: integer top-left corner ``(x1, y1)`` of that region in image pixels (may be negative).
        padding_ltrb: zero padding ``(left, top, right, bottom)`` in pixels added before resizing, with the
            reference's extra right/bottom pixel whenever the crop reaches that border.
    """

    crop: np.ndarray
    resize_factor: float
    crop_size: int
    origin_xy: Tuple[int, int]
    padding_ltrb: Tuple[int, int, int, int]


def _axis_span(start: int, size: int, limit: int) -> Tuple[int, int, int, int]:
    """In-image slice ``[lo, hi)`` and pads ``(before, after)`` for one axis of the crop (reference rule)."""
    end = start + size
    pad_before = max(0, -start)
    pad_after = max(end - limit + 1, 0)
    lo = start + pad_before
    hi = end - pad_after
    if hi <= lo:  # no overlap with the image (the reference would mis-slice here): all padding
        pad_before = min(pad_before, size)
        return 0, 0, pad_before, size - pad_before
    return lo, hi, pad_before, pad_after


def crop_with_info(image: np.ndarray, box_xywh: BoxLike, factor: float, output_size: int) -> CropResult:
    """Square crop of side ``ceil(sqrt(w*h)*factor)`` centred on the box, resized to ``output_size``.

    ``image`` must be an ``H x W x C`` uint8 array (see :func:`prepare_frame`); ``box_xywh`` is
    ``[x, y, w, h]`` in image pixels. See the module docstring for the exact geometry.

    Raises:
        ValueError: non-finite or non-positive box size, or a crop side below 1 pixel.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(w) and math.isfinite(h)):
        raise ValueError(f"crop box must be finite, got {[x, y, w, h]}")
    if w <= 0 or h <= 0:
        raise ValueError(f"crop box must have positive width and height, got w={w}, h={h}")
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    if crop_sz < 1:
        raise ValueError(f"crop side ceil(sqrt({w}*{h})*{factor}) = {crop_sz} is below 1 pixel")

    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    height, width = image.shape[:2]
    col_lo, col_hi, pad_l, pad_r = _axis_span(x1, crop_sz, width)
    row_lo, row_hi, pad_t, pad_b = _axis_span(y1, crop_sz, height)

    if col_hi > col_lo and row_hi > row_lo:
        region = image[row_lo:row_hi, col_lo:col_hi]
        if pad_l or pad_r or pad_t or pad_b:
            region = cv2.copyMakeBorder(region, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_CONSTANT, value=0)
    else:
        region = np.zeros((crop_sz, crop_sz) + image.shape[2:], dtype=image.dtype)
    crop = cv2.resize(region, (output_size, output_size))
    if crop.ndim == 2 and image.ndim == 3:  # OpenCV drops a single channel axis
        crop = crop[:, :, None]
    return CropResult(
        crop=crop,
        resize_factor=output_size / crop_sz,
        crop_size=crop_sz,
        origin_xy=(x1, y1),
        padding_ltrb=(pad_l, pad_t, pad_r, pad_b),
    )


def crop_around_box(
    image: np.ndarray, box_xywh: BoxLike, factor: float, output_size: int
) -> Tuple[np.ndarray, float]:
    """The reference crop: returns ``(uint8 crop, resize_factor)``; see :func:`crop_with_info`."""
    result = crop_with_info(image, box_xywh, factor, output_size)
    return result.crop, result.resize_factor


@lru_cache(maxsize=8)
def _cached_constants(mean: Tuple[float, ...], std: Tuple[float, ...], device: torch.device):
    return (
        torch.tensor(255.0, dtype=torch.float32, device=device),
        torch.tensor(mean, dtype=torch.float32, device=device).reshape(1, -1, 1, 1),
        torch.tensor(std, dtype=torch.float32, device=device).reshape(1, -1, 1, 1),
    )


def _constants(mean, std, device: torch.device):
    """(255, mean, std) as float32 tensors on ``device``; cached for plain sequences."""
    if not isinstance(mean, torch.Tensor) and not isinstance(std, torch.Tensor):
        return _cached_constants(tuple(float(v) for v in mean), tuple(float(v) for v in std), device)
    scale = torch.tensor(255.0, dtype=torch.float32, device=device)
    stats = []
    for value in (mean, std):
        if isinstance(value, torch.Tensor):
            value = value.to(device=device, dtype=torch.float32)
        else:
            value = torch.tensor(value, dtype=torch.float32, device=device)
        stats.append(value.reshape(1, -1, 1, 1))
    return scale, stats[0], stats[1]


def normalize_crop(
    crop: np.ndarray,
    mean: Union[Sequence[float], torch.Tensor] = DEFAULT_MEAN,
    std: Union[Sequence[float], torch.Tensor] = DEFAULT_STD,
    device: Optional[Union[str, torch.device]] = None,
) -> torch.Tensor:
    """uint8 ``H x W x 3`` crop -> normalised float32 tensor ``(1, 3, H, W)`` on ``device`` (default CPU).

    Operation order of the reference, which makes the result bitwise equal to it: uint8 -> float32 ->
    CHW -> ``(1, 3, H, W)`` -> ``((x / 255.0) - mean) / std`` with ``mean`` and ``std`` as float32 tensors.
    The uint8 crop is moved to ``device`` before the conversion (4x less data to transfer).

    The 255 is a float32 tensor on ``device`` rather than a Python scalar: on CUDA, PyTorch turns a
    division by a Python scalar into a multiplication by its reciprocal, which differs from true division
    in the last bit for about half of the 256 pixel values. With a device tensor the result is the same
    true division on every device (on the CPU it is bitwise the reference's ``x / 255.0``).

    As in the reference, the result keeps the permuted layout (channels-last strides,
    ``(3HW, 1, 3W, 3)``); call ``.contiguous()`` if a standard NCHW layout is needed.
    """
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3:
        raise ValueError(
            "crop must be an H x W x C uint8 numpy array, got "
            f"{type(crop).__name__} {getattr(crop, 'dtype', '')} {tuple(getattr(crop, 'shape', ()))}"
        )
    pixels = torch.from_numpy(np.ascontiguousarray(crop))
    if device is not None:
        pixels = pixels.to(torch.device(device))
    scale, mean_t, std_t = _constants(mean, std, pixels.device)
    image = pixels.float().permute(2, 0, 1).unsqueeze(0)
    return ((image / scale) - mean_t) / std_t


def normalize_crop_into(crop: np.ndarray, out: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """:func:`normalize_crop` in numpy, written into a reused contiguous float32 array; returns ``out``.

    ``out`` is ``(1, 3, H, W)`` (NCHW, what an exported graph takes) or ``(H, W, 3)`` (wrap it as
    ``torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0)`` for exactly the tensor, layout included, that
    :func:`normalize_crop` returns on the CPU). ``mean`` and ``std`` are float32 arrays of shape ``(3,)``.
    Same float32 operations in the same order (``((x / 255) - mean) / std``, each correctly rounded), so
    the values are bitwise equal to :func:`normalize_crop`, without an allocation and without waking
    PyTorch's thread pool (the tracker's per-frame CPU path uses it).
    """
    if out.ndim == 4:
        plane, mean, std = out[0], mean[:, None, None], std[:, None, None]
        np.divide(crop.transpose(2, 0, 1), np.float32(255.0), out=plane, dtype=np.float32)
    else:
        plane = out
        np.divide(crop, np.float32(255.0), out=plane, dtype=np.float32)
    np.subtract(plane, mean, out=plane)
    np.divide(plane, std, out=plane)
    return out
