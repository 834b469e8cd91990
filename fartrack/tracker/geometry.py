"""Crop -> image box mapping and border clipping of the tracker (MODEL.md §5.3)."""

from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch

__all__ = ["map_box_to_image", "clip_box"]


def map_box_to_image(
    box_xyxy_norm: torch.Tensor,
    prev_state_xywh: Sequence[float],
    resize_factor: float,
    search_size: int = 224,
) -> List[float]:
    """Map a normalised search-crop box (float32 ``(4,)`` xyxy) to an image box ``[x, y, w, h]``.

    MODEL.md §5.3 steps 1-3: ``(cx, cy, w, h)`` from the xyxy box and the scaling ``* search_size /
    resize_factor`` in float32 tensor arithmetic, then python floats; the crop centre is the unrounded
    centre of ``prev_state_xywh`` (reference quirk: the crop itself used a rounded origin), shifted in
    double precision as ``c + (c_prev - half_side)`` for both x and y. (MODEL.md §5.3 writes the y shift
    as ``(cy + cy_prev) - half``; that ordering misses the reference's ``tracker_expected.json`` boxes
    by 1 ulp on one frame, whereas this one matches all of them bitwise.) The result is not clipped
    (see :func:`clip_box`).
    """
    box = box_xyxy_norm.reshape(-1)
    if box.numel() != 4:
        raise ValueError(f"box_xyxy_norm must hold 4 values, got shape {tuple(box_xyxy_norm.shape)}")
    x0, y0, x1, y1 = box.unbind(0)
    w = x1 - x0
    h = y1 - y0
    cxcywh = torch.stack((x0 + w / 2, y0 + h / 2, w, h))
    cx, cy, w_img, h_img = (cxcywh * search_size / resize_factor).tolist()

    x_prev, y_prev, w_prev, h_prev = (float(v) for v in prev_state_xywh)
    cx_prev = x_prev + 0.5 * w_prev
    cy_prev = y_prev + 0.5 * h_prev
    half_side = 0.5 * search_size / resize_factor
    cx_img = cx + (cx_prev - half_side)
    cy_img = cy + (cy_prev - half_side)
    return [cx_img - 0.5 * w_img, cy_img - 0.5 * h_img, w_img, h_img]


def clip_box(
    box_xywh: Sequence[float], image_hw: Union[Sequence[int], Tuple[int, int]], margin: int = 10
) -> List[float]:
    """Clip a box to the image keeping at least ``margin`` pixels (MODEL.md §5.3 step 4), as floats.

    ``x1 = min(max(0, x1), W - margin)``, ``x2 = min(max(margin, x1_orig + w), W)``, y likewise, then
    ``w = max(margin, x2 - x1)`` and ``h = max(margin, y2 - y1)``. The reference returns python ints when a
    bound is hit; here every value is a float.
    """
    height, width = int(image_hw[0]), int(image_hw[1])
    x, y, w, h = (float(v) for v in box_xywh)
    x1 = min(max(0, x), width - margin)
    y1 = min(max(0, y), height - margin)
    x2 = min(max(margin, x + w), width)
    y2 = min(max(margin, y + h), height)
    return [float(x1), float(y1), float(max(margin, x2 - x1)), float(max(margin, y2 - y1))]
