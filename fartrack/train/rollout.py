"""Stage-3 rollout: track each training clip with the current network, without gradients (§9.6 step 1).

For a clip of ``T`` template frames and ``N`` search frames (raw RGB frames + pixel boxes):

* The templates are cropped once around their GT boxes with the SiamFC-style sub-window crop
  (:func:`subwindow_crop`; side ``ceil(sqrt(f*w * f*h))``, channel-mean padding) and stay fixed for the clip.
* Frame 0 initialises the state with its GT box. Each later frame is cropped around the previous *predicted*
  state (side ``ceil(sqrt(4w * 4h))``), the network runs in eval mode, the argmax tokens are decoded
  (``tok/(bins-1) - 0.5``, scaled by the crop side) and clipped to the image (the next state).
* The keep-mask is computed once per clip, from the first tracked frame's search-centre attention over all
  templates (:func:`fartrack.models.sparsify.keep_older_templates`: the older templates lose their least
  attended tokens, the newest is kept), and used from the second tracked frame on. Frame 1's recorded mask is
  all True, as in the reference (the recorded mask of a frame is the mask its forward used).

What is recorded per tracked frame (the loss pass replays it with gradients): the normalised search crop, the
GT box in crop pixels (zeros when the GT is absent), the keep vector and the rollout IoU.

Skip rules (explicit; a skipped clip is reported with its reason, the others still train):

* fewer than 2 search frames;
* a template box or the frame-0 box that is not finite or has a non-positive width or height (no crop can be
  made around it);
* a frame that is not an ``H x W x 3`` uint8 array.

Absent or empty GT boxes in later frames (NaN, zeros, or corner sum <= 10) are not skipped: their crop box is
all zeros, exactly as in the reference, so they keep their (reference) loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from fartrack.models.encoder import FARTrackNet
from fartrack.models.sparsify import SparsifyConfig, keep_older_templates, plan_probe, template_scores
from fartrack.models.vocab import decode_argmax

__all__ = [
    "RolloutParams",
    "ClipRollout",
    "RolloutResult",
    "crop_side",
    "channel_mean",
    "subwindow_crop",
    "crops_to_tensor",
    "box_in_crop",
    "clip_keep_mask",
    "decode_to_image",
    "rollout",
]


@dataclass(frozen=True)
class RolloutParams:
    """Crop and decode settings of the stage-3 rollout (defaults = the reference)."""

    template_factor: float = 2.0
    template_size: int = 112
    search_factor: float = 4.0
    search_size: int = 224
    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)
    depth: Optional[int] = None
    sparsify: SparsifyConfig = field(default_factory=SparsifyConfig)
    min_size: float = 10.0  # predicted w, h are clipped to at least this many pixels
    absent_sum: float = 10.0  # a GT whose |corner| sum is at most this is treated as absent

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "RolloutParams":
        """Settings of a resolved config (``DATA.TEMPLATE/SEARCH``, ``DATA.MEAN/STD``, ``MODEL``)."""
        from fartrack.models.build import sparsify_config_from

        data = cfg["DATA"]
        return cls(
            template_factor=float(data["TEMPLATE"]["FACTOR"]),
            template_size=int(data["TEMPLATE"]["SIZE"]),
            search_factor=float(data["SEARCH"]["FACTOR"]),
            search_size=int(data["SEARCH"]["SIZE"]),
            mean=tuple(float(v) for v in data["MEAN"]),
            std=tuple(float(v) for v in data["STD"]),
            depth=int(cfg["MODEL"]["LAYERS"]),
            sparsify=sparsify_config_from(cfg),
        )


@dataclass
class ClipRollout:
    """What the rollout recorded for one usable clip (tracked frames 1..N-1 of it)."""

    index: int  # position of the clip in the batch
    templates: Tensor  # (T, 3, h, w) normalised, on the device
    search: Tensor  # (n, 3, H, W) normalised search crops, n = N - 1
    crop_boxes: Tensor  # (n, 4) float32 GT xywh in search-crop pixels (zeros = absent)
    keep: Tensor  # (n, L) bool key-keep vector each frame's forward used
    iou: Tensor  # (n,) float32 rollout IoU against the GT in image coordinates (0 where absent)
    pred_xywh: np.ndarray  # (n, 4) float64 predicted image boxes
    search_centers: np.ndarray  # (n, 2) float64 crop centres
    search_sides: np.ndarray  # (n,) int crop sides


@dataclass
class RolloutResult:
    """Rollout of one batch of clips: the usable clips and the skipped ones (index, reason)."""

    clips: list[ClipRollout]
    skipped: list[tuple[int, str]]
    mean_iou: float  # over all tracked frames of the usable clips (nan if none)


# ---------------------------------------------------------------------------------------------------------------
# Geometry and crops
# ---------------------------------------------------------------------------------------------------------------


def crop_side(w: float, h: float, factor: float) -> int:
    """Sub-window side ``ceil(sqrt((factor*w) * (factor*h)))`` in pixels."""
    return int(math.ceil(math.sqrt((factor * w) * (factor * h))))


def channel_mean(image: np.ndarray) -> np.ndarray:
    """Per-channel mean of a whole frame (float64, the padding value before its uint8 truncation)."""
    return image.reshape(-1, image.shape[-1]).mean(axis=0, dtype=np.float64)


def subwindow_crop(
    image: np.ndarray, center_xy: Sequence[float], side: int, out_size: int, pad_value: Sequence[float]
) -> np.ndarray:
    """SiamFC-style square crop of ``side`` pixels around ``center_xy``, resized to ``out_size``.

    Top-left ``floor(c - (side + 1)/2 + 0.5)`` per axis; pixels outside the frame take ``pad_value``
    (truncated to uint8); ``cv2.resize`` (bilinear) only when ``side != out_size``. Returns uint8
    ``(out_size, out_size, 3)``.
    """
    if side < 1:
        raise ValueError(f"sub-window side must be at least 1 pixel, got {side}")
    height, width = image.shape[:2]
    half = (side + 1) / 2
    x0 = int(math.floor(center_xy[0] - half + 0.5))
    y0 = int(math.floor(center_xy[1] - half + 0.5))
    x1, y1 = x0 + side, y0 + side  # exclusive
    fill = [int(v) for v in np.asarray(pad_value, dtype=np.float64).astype(np.uint8)]
    cols = (max(x0, 0), min(x1, width))
    rows = (max(y0, 0), min(y1, height))
    if cols[1] <= cols[0] or rows[1] <= rows[0]:
        patch = np.empty((side, side, image.shape[2]), dtype=np.uint8)
        patch[:] = fill
    else:
        patch = image[rows[0] : rows[1], cols[0] : cols[1]]
        pads = (rows[0] - y0, y1 - rows[1], cols[0] - x0, x1 - cols[1])
        if any(pads):
            patch = cv2.copyMakeBorder(patch, *pads, cv2.BORDER_CONSTANT, value=fill)
    if side != out_size:
        patch = cv2.resize(patch, (out_size, out_size))
    return np.ascontiguousarray(patch)


def crops_to_tensor(
    crops: np.ndarray, mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu"
) -> Tensor:
    """uint8 crops ``(n, H, W, 3)`` -> ``(n, 3, H, W)``: ``clamp(x * float32(1/255), 0, 1)``, then (x - mean) / std."""
    pixels = torch.from_numpy(np.ascontiguousarray(crops)).to(device)
    x = pixels.permute(0, 3, 1, 2).to(torch.float32)
    x = (x * torch.tensor(1 / 255, dtype=torch.float32, device=x.device)).clamp(0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    return ((x - mean_t) / std_t).contiguous()


def _usable_box(box: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0)


def box_in_crop(
    gt_xywh: np.ndarray, center_xy: Sequence[float], side: int, out_size: int, absent_sum: float = 10.0
) -> np.ndarray:
    """GT box in search-crop pixels, xywh float64: ``(xyxy - centre) * out/side + out/2``.

    All zeros when the GT is absent: NaN, or the sum of the absolute corner coordinates is at most
    ``absent_sum`` (covers zero boxes).
    """
    gt = np.asarray(gt_xywh, dtype=np.float64)
    corners = np.array([gt[0], gt[1], gt[0] + gt[2], gt[1] + gt[3]])
    if not np.all(np.isfinite(corners)) or np.abs(corners).sum() <= absent_sum:
        return np.zeros(4)
    scale = out_size / side
    cx, cy = center_xy
    x0 = (corners[0] - cx) * scale + out_size / 2
    y0 = (corners[1] - cy) * scale + out_size / 2
    x1 = (corners[2] - cx) * scale + out_size / 2
    y1 = (corners[3] - cy) * scale + out_size / 2
    return np.array([x0, y0, x1 - x0, y1 - y0])


def decode_to_image(
    norm_xyxy: np.ndarray, center_xy: Sequence[float], side: int, image_hw: Sequence[int], min_size: float = 10.0
) -> np.ndarray:
    """Normalised crop xyxy ``(4,)`` -> clipped image box xywh (float64).

    Crop pixels ``norm * side`` are shifted by ``centre - side/2``; then cx in [0, W], cy in [0, H],
    w in [min_size, W], h in [min_size, H].
    """
    height, width = image_hw
    xyxy = np.asarray(norm_xyxy, dtype=np.float64) * side
    offset = np.array([center_xy[0] - side / 2, center_xy[1] - side / 2])
    x0, y0 = xyxy[0] + offset[0], xyxy[1] + offset[1]
    x1, y1 = xyxy[2] + offset[0], xyxy[3] + offset[1]
    w, h = x1 - x0, y1 - y0
    cx = min(max(x0 + w / 2, 0.0), float(width))
    cy = min(max(y0 + h / 2, 0.0), float(height))
    w = min(max(w, min_size), float(width))
    h = min(max(h, min_size), float(height))
    return np.array([cx - w / 2, cy - h / 2, w, h])


def clip_keep_mask(scores: Tensor, num_pruned: int, total_tokens: int) -> Tensor:
    """Key-keep vector ``(B, total_tokens)`` of a clip from template scores ``(B, T, tz)``.

    The older templates lose their ``num_pruned`` lowest-scored tokens (the newest slot is kept), and every
    token after the templates (search, commands) is kept.
    """
    keep_templates = keep_older_templates(scores, num_pruned)
    rest = torch.ones(scores.shape[0], total_tokens - keep_templates.shape[1], dtype=torch.bool, device=scores.device)
    return torch.cat([keep_templates, rest], dim=1)


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> float:
    """Continuous corner IoU of two xywh boxes (0 when the GT is absent or the union is empty)."""
    if not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
        return 0.0
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Rollout
# ---------------------------------------------------------------------------------------------------------------


def _check_clip(clip: Mapping[str, Any]) -> Optional[str]:
    """Why a clip cannot be rolled out, or None."""
    for key in ("template_images", "template_annos", "search_images", "search_annos"):
        if key not in clip:
            return f"missing key {key!r}"
    frames = list(clip["template_images"]) + list(clip["search_images"])
    for frame in frames:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            return "a frame is not an H x W x 3 uint8 array"
    if len(clip["search_images"]) < 2:
        return f"only {len(clip['search_images'])} search frame(s); at least 2 are needed"
    t_annos = np.asarray(clip["template_annos"], dtype=np.float64).reshape(-1, 4)
    if len(t_annos) != len(clip["template_images"]):
        return f"{len(clip['template_images'])} template frames but {len(t_annos)} template boxes"
    for i, box in enumerate(t_annos):
        if not _usable_box(box):
            return f"template box {i} {box.tolist()} is not a finite box with positive size"
    s_annos = np.asarray(clip["search_annos"], dtype=np.float64).reshape(-1, 4)
    if len(s_annos) != len(clip["search_images"]):
        return f"{len(clip['search_images'])} search frames but {len(s_annos)} search boxes"
    if not _usable_box(s_annos[0]):
        return f"first search box {s_annos[0].tolist()} is not a finite box with positive size"
    return None


def _clip_label(clip: Mapping[str, Any], index: int) -> str:
    return f"clip {index} ({clip.get('dataset', '?')}/{clip.get('seq_name', '?')})"


def _split_usable(
    clips: Sequence[Mapping[str, Any]], num_templates: int
) -> tuple[list[int], list[tuple[int, str]]]:
    """Indices of the clips that can be rolled out, and (index, reason) of the others."""
    usable, skipped = [], []
    for i, clip in enumerate(clips):
        reason = _check_clip(clip)
        if reason is None and len(clip["template_images"]) != num_templates:
            reason = f"{len(clip['template_images'])} templates, the network has {num_templates} slots"
        if reason is None:
            usable.append(i)
        else:
            skipped.append((i, f"{_clip_label(clip, i)}: {reason}"))
    return usable, skipped


def _template_tensor(clip: Mapping[str, Any], params: RolloutParams, device) -> Tensor:
    """The clip's template crops around their GT boxes, normalised: (T, 3, h, w)."""
    crops = []
    for frame, box in zip(clip["template_images"], np.asarray(clip["template_annos"], np.float64).reshape(-1, 4)):
        side = crop_side(box[2], box[3], params.template_factor)
        center = (box[0] + box[2] / 2, box[1] + box[3] / 2)
        crops.append(subwindow_crop(frame, center, side, params.template_size, channel_mean(frame)))
    return crops_to_tensor(np.stack(crops), params.mean, params.std, device)


class _ClipRecorder:
    """Accumulates what the rollout records for one clip, frame by frame."""

    def __init__(self, index: int, templates: Tensor, annos: np.ndarray) -> None:
        self.index, self.templates, self.annos = index, templates, annos
        self.state = annos[0].copy()
        self.search: list[Tensor] = []
        self.boxes: list[np.ndarray] = []
        self.keep: list[Tensor] = []
        self.iou: list[float] = []
        self.pred: list[np.ndarray] = []
        self.centers: list[tuple[float, float]] = []
        self.sides: list[int] = []

    def search_geometry(self, factor: float) -> tuple[tuple[float, float], int]:
        """Centre and side of the next search crop, from the current (predicted) state."""
        x, y, w, h = self.state
        return (x + w / 2, y + h / 2), crop_side(w, h, factor)

    def record(self, t, search, keep, norm_xyxy, center, side, image_hw, params: RolloutParams) -> None:
        gt = self.annos[t]
        pred = decode_to_image(norm_xyxy, center, side, image_hw, params.min_size)
        self.search.append(search)
        self.boxes.append(box_in_crop(gt, center, side, params.search_size, params.absent_sum))
        self.keep.append(keep)
        self.iou.append(_iou_xywh(pred, gt))
        self.pred.append(pred)
        self.centers.append(center)
        self.sides.append(side)
        self.state = pred

    def result(self, device) -> ClipRollout:
        return ClipRollout(
            index=self.index,
            templates=self.templates,
            search=torch.stack(self.search),
            crop_boxes=torch.tensor(np.stack(self.boxes), dtype=torch.float32, device=device),
            keep=torch.stack(self.keep),
            iou=torch.tensor(self.iou, dtype=torch.float32),
            pred_xywh=np.stack(self.pred),
            search_centers=np.array(self.centers, dtype=np.float64),
            search_sides=np.array(self.sides, dtype=np.int64),
        )


@torch.no_grad()
def rollout(
    net: FARTrackNet,
    clips: Sequence[Mapping[str, Any]],
    params: RolloutParams,
    device: torch.device | str = "cpu",
) -> RolloutResult:
    """Roll every usable clip of a batch out with ``net`` in eval mode (restored afterwards), no gradients.

    All usable clips advance together, one batched forward per frame index; clips may have different
    lengths (a clip stops at its last frame).
    """
    device = torch.device(device)
    cfg = net.cfg
    if not cfg.sparse:
        raise ValueError("the stage-3 rollout needs a sparse model (MODEL.SPARSE.ENABLED: true)")
    if cfg.prenum > 0:
        raise ValueError("stage-3 training with trajectory tokens (MODEL.PRENUM > 0) is not implemented")
    depth = cfg.depth if params.depth is None else params.depth
    num_pruned = params.sparsify.num_pruned(cfg.template_tokens)
    template_len = cfg.num_templates * cfg.template_tokens
    n_tokens = template_len + cfg.search_tokens + 4
    usable, skipped = _split_usable(clips, cfg.num_templates)
    recorders = [
        _ClipRecorder(i, _template_tensor(clips[i], params, device),
                      np.asarray(clips[i]["search_annos"], np.float64).reshape(-1, 4))
        for i in usable
    ]
    lengths = [len(clips[i]["search_images"]) for i in usable]
    keep_all: Optional[Tensor] = None  # (clips, n_tokens), computed once at the first tracked frame

    was_training = net.training
    net.eval()
    try:
        for t in range(1, max(lengths, default=1)):
            active = [c for c in range(len(usable)) if t < lengths[c]]
            frames = [clips[usable[c]]["search_images"][t] for c in active]
            geometry = [recorders[c].search_geometry(params.search_factor) for c in active]
            crops = [
                subwindow_crop(frame, center, side, params.search_size, channel_mean(frame))
                for frame, (center, side) in zip(frames, geometry)
            ]
            search = crops_to_tensor(np.stack(crops), params.mean, params.std, device)
            idx = torch.tensor(active, device=device)
            templates = torch.stack([recorders[c].templates for c in active])
            if keep_all is None:
                probe = plan_probe(
                    params.sparsify, template_len, cfg.search_grid, slice(0, template_len),
                    template_len + cfg.search_tokens, device,
                )
                out = net(templates, search, depth=depth, probe_rows=probe.rows, exits=())
                scores = template_scores(out.probe_attention, probe).reshape(len(active), cfg.num_templates, -1)
                keep_all = torch.ones(len(usable), n_tokens, dtype=torch.bool, device=device)
                keep_all[idx] = clip_keep_mask(scores, num_pruned, n_tokens)
                used = torch.ones(len(active), n_tokens, dtype=torch.bool, device=device)
            else:
                used = keep_all.index_select(0, idx)
                out = net(templates, search, key_keep=used, depth=depth, exits=())
            norm = decode_argmax(out.logits, cfg.bins, cfg.range).double().cpu().numpy()
            for row, c in enumerate(active):
                center, side = geometry[row]
                recorders[c].record(t, search[row], used[row], norm[row], center, side, frames[row].shape[:2], params)
    finally:
        net.train(was_training)

    results = [r.result(device) for r in recorders]
    ious = [v for r in recorders for v in r.iou]
    return RolloutResult(results, skipped, float(np.mean(ious)) if ious else float("nan"))
