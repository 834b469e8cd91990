"""Training losses of the three FARTrack stages (TRAINING_AND_EVAL.md §9).

All functions take logits in our layout ``(B, 4, V)`` (sample, command x0/y0/x1/y1, vocabulary) and never
modify their inputs. Float32 throughout, in the reference's order of operations, so the golden fixtures
match to float rounding:

* :func:`frame_targets` -- stage-1/2 targets: normalised crop xywh -> xyxy clamped to the coordinate range ->
  ``token = trunc((v + 0.5) * (bins - 1))`` (computed in float32), box target ``token / (bins - 1) - 0.5``
  (quantised).
* :func:`sequence_targets` -- stage-3 targets from 224-px crop boxes: ``t = clamp((xyxy / size + 0.5) *
  (bins - 1), 0, bins*range - 1e-4)``, CE target ``trunc(t)``, box target ``t / (bins - 1) - 0.5``
  (continuous).
* :func:`weighted_cross_entropy` -- class-weighted CE over all ``V`` logits (special ids weigh 0.1).
* :func:`soft_argmax` -- the expectation over the 600-bin grid (as ``fartrack.models.vocab.decode_soft``).
* :func:`siou_loss` -- SIoU (theta 4); NaN where the union is exactly 0, as in the reference.
* :func:`adjacent_kl` -- KL(deeper || shallower) over the coordinate bins, deeper detached, batch-mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fartrack.models.vocab import Vocabulary, decode_soft

__all__ = [
    "SIOU_THETA",
    "BoxTargets",
    "frame_targets",
    "sequence_targets",
    "class_weights",
    "weighted_cross_entropy",
    "soft_argmax",
    "siou_loss",
    "l1_loss",
    "kl_divergence",
    "adjacent_kl",
]

#: Shape-cost exponent of the SIoU loss (reference value).
SIOU_THETA = 4.0
_EPS = 1e-7


@dataclass(frozen=True)
class BoxTargets:
    """Targets of one batch: CE token ids (B, 4) int64 and the SIoU/L1 box target (B, 4) xyxy float32."""

    tokens: Tensor
    box_xyxy: Tensor


def _offset(vocab: Vocabulary) -> float:
    return 0.5 * (vocab.range - 1)


def _xywh_to_xyxy(boxes: Tensor) -> Tensor:
    x, y, w, h = boxes.unbind(-1)
    return torch.stack((x, y, x + w, y + h), dim=-1)


def _check_boxes(boxes: Tensor, what: str) -> Tensor:
    if not isinstance(boxes, Tensor) or boxes.shape[-1] != 4 or boxes.dim() != 2:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{what} must be a (B, 4) tensor, got {shape}")
    return boxes.to(torch.float32)


def frame_targets(search_anno_xywh: Tensor, vocab: Vocabulary = Vocabulary()) -> BoxTargets:
    """Stage-1/2 targets from normalised search-crop boxes ``(B, 4)`` xywh (may lie outside [0, 1]).

    ``xyxy = clamp((x, y, x+w, y+h), -0.5, 1.5)``; ``token = trunc((xyxy + 0.5) * (bins-1))`` in float32;
    box target ``token / (bins-1) - 0.5`` (the quantised GT). The input is not modified.
    """
    boxes = _check_boxes(search_anno_xywh, "search_anno")
    offset = _offset(vocab)
    xyxy = _xywh_to_xyxy(boxes).clamp(-offset, vocab.range - offset)
    scaled = (xyxy + offset) * (vocab.bins - 1)
    tokens = scaled.to(torch.int64)  # truncation toward zero; the values are non-negative
    box = tokens.to(torch.float32) / (vocab.bins - 1) - offset
    return BoxTargets(tokens, box)


def sequence_targets(
    crop_boxes_xywh: Tensor, search_size: int = 224, vocab: Vocabulary = Vocabulary()
) -> BoxTargets:
    """Stage-3 targets from GT boxes ``(N, 4)`` xywh in search-crop pixels (all zeros = absent).

    ``t = clamp((xyxy / search_size + 0.5) * (bins-1), 0, bins*range - 1e-4)``; CE target ``trunc(t)``
    (the last bin is reachable); box target ``t / (bins-1) - 0.5``, continuous (not quantised). An absent
    (zero) box gives the zero-area target at the crop centre's coordinate 0.
    """
    boxes = _check_boxes(crop_boxes_xywh, "search crop boxes")
    offset = _offset(vocab)
    xyxy = _xywh_to_xyxy(boxes)
    upper = vocab.num_coordinate_bins - 1e-4
    scaled = ((xyxy / search_size + offset) * (vocab.bins - 1)).clamp(0, upper)
    return BoxTargets(scaled.to(torch.int64), scaled / (vocab.bins - 1) - offset)


def class_weights(vocab_size: int = 605, special_weight: float = 0.1, device=None) -> Tensor:
    """CE class weights ``(V,)``: 1 for the coordinate ids, ``special_weight`` for the 4 commands and padding."""
    weights = torch.ones(vocab_size, dtype=torch.float32, device=device)
    weights[vocab_size - 5 :] = special_weight
    return weights


def weighted_cross_entropy(logits: Tensor, tokens: Tensor, special_weight: float = 0.1) -> Tensor:
    """Weighted-mean cross-entropy of ``logits`` (B, 4, V) against ``tokens`` (B, 4) (rows sample-major)."""
    if logits.dim() != 3 or tokens.shape != logits.shape[:2]:
        raise ValueError(f"logits (B, 4, V) and tokens (B, 4) expected, got {tuple(logits.shape)} and {tuple(tokens.shape)}")
    vocab_size = logits.shape[-1]
    weights = class_weights(vocab_size, special_weight, logits.device).to(logits.dtype)
    return F.cross_entropy(logits.reshape(-1, vocab_size), tokens.reshape(-1).to(logits.device), weight=weights)


def soft_argmax(logits: Tensor, vocab: Vocabulary = Vocabulary()) -> Tensor:
    """Expected coordinate per command, ``(B, 4)`` xyxy: :func:`fartrack.models.vocab.decode_soft`."""
    if logits.shape[-1] != vocab.size:
        raise ValueError(f"logits must have {vocab.size} entries in the last dimension, got {tuple(logits.shape)}")
    return decode_soft(logits, vocab.bins, vocab.range)


def siou_loss(pred_xyxy: Tensor, target_xyxy: Tensor, theta: float = SIOU_THETA) -> tuple[Tensor, Tensor]:
    """SIoU loss and IoU per box, both ``(B,)``, for boxes ``(B, 4)`` xyxy.

    ``1 - IoU + (shape + distance) / 2`` with the angle-aware distance cost. As in the reference, the IoU
    has no epsilon and the areas are not clamped: the result is NaN where ``area_p + area_g - overlap`` is
    exactly 0 (e.g. two identical zero-area boxes) and an inverted box has a negative area.
    """
    px0, py0, px1, py1 = pred_xyxy.unbind(-1)
    gx0, gy0, gx1, gy1 = target_xyxy.unbind(-1)
    pcx, pcy = (px0 + px1) / 2, (py0 + py1) / 2
    gcx, gcy = (gx0 + gx1) / 2, (gy0 + gy1) / 2

    # angle cost
    sigma = ((pcx - gcx) ** 2 + (pcy - gcy) ** 2) ** 0.5
    sin_alpha = (torch.max(gcy, pcy) - torch.min(gcy, pcy)) / (sigma + _EPS)
    angle = 1 - 2 * torch.sin(torch.arcsin(sin_alpha) - math.pi / 4) ** 2

    # distance cost, relative to the enclosing box
    enclose_w = torch.max(px1, gx1) - torch.min(px0, gx0)
    enclose_h = torch.max(py1, gy1) - torch.min(py0, gy0)
    rho_x = ((gcx - pcx) / (enclose_w + _EPS)) ** 2
    rho_y = ((gcy - pcy) / (enclose_h + _EPS)) ** 2
    gamma = 2 - angle
    distance = (1 - torch.exp(-1 * gamma * rho_x)) + (1 - torch.exp(-1 * gamma * rho_y))

    # shape cost
    pw, ph = px1 - px0, py1 - py0
    gw, gh = gx1 - gx0, gy1 - gy0
    omega_w = torch.abs(pw - gw) / (torch.max(pw, gw) + _EPS)
    omega_h = torch.abs(gh - ph) / (torch.max(gh, ph) + _EPS)
    shape = (1 - torch.exp(-1 * omega_h)) ** theta + (1 - torch.exp(-1 * omega_w)) ** theta

    # IoU: clamped overlap, unclamped areas, no epsilon
    lt = torch.max(pred_xyxy[..., :2], target_xyxy[..., :2])
    rb = torch.min(pred_xyxy[..., 2:], target_xyxy[..., 2:])
    overlap_wh = (rb - lt).clamp(min=0)
    overlap = overlap_wh[..., 0] * overlap_wh[..., 1]
    area_p = (pred_xyxy[..., 2] - pred_xyxy[..., 0]) * (pred_xyxy[..., 3] - pred_xyxy[..., 1])
    area_g = (target_xyxy[..., 2] - target_xyxy[..., 0]) * (target_xyxy[..., 3] - target_xyxy[..., 1])
    iou = overlap / (area_p + area_g - overlap)

    return 1 - iou + (shape + distance) / 2, iou


def l1_loss(pred_xyxy: Tensor, target_xyxy: Tensor) -> Tensor:
    """Mean absolute coordinate error (logged; weighted by ``TRAIN.L1_WEIGHT``)."""
    return F.l1_loss(pred_xyxy, target_xyxy)


def kl_divergence(student_logits: Tensor, teacher_logits: Tensor, num_bins: int) -> Tensor:
    """``KL(softmax(teacher) || softmax(student))`` over the first ``num_bins`` logits, teacher detached.

    Logits ``(B, 4, V)``; the sum over commands and bins is divided by ``B`` (``batchmean``), temperature 1.
    """
    student = F.log_softmax(student_logits[..., :num_bins], dim=-1)
    teacher = F.softmax(teacher_logits[..., :num_bins], dim=-1).detach()
    return F.kl_div(student, teacher, reduction="batchmean")


def adjacent_kl(exit_logits: list[Tensor], num_bins: int) -> list[Tensor]:
    """KL terms of adjacent exits (shallow -> deep order): term i distils exit i+1 (teacher) into exit i."""
    return [kl_divergence(exit_logits[i], exit_logits[i + 1], num_bins) for i in range(len(exit_logits) - 1)]
