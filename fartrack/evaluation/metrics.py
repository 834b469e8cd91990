"""Tracking metrics, one pure function per protocol (arrays in, numbers and curves out, float64 throughout).

Protocols (ECOSYSTEM.md §3; TRAINING_AND_EVAL.md §11.6-§11.8):

* :func:`got10k_official` -- the GOT-10k toolkit (``got10k`` 0.1.3 ``ExperimentGOT10k``, val mode).
* :func:`otb_pytracking` -- the pytracking / OSTrack / FARTrack analysis used for LaSOT, LaSOT_ext, NfS,
  UAV123, OTB and VastTrack numbers in the lineage papers.
* :func:`lasot_toolkit` -- the official LaSOT MATLAB toolkit (``HengLan/LaSOT_Evaluation_Toolkit``).
* :func:`trackingnet_devkit` -- TrackingNet devkit-style areas (local sanity check only; submit TEST results).

Side by side (what each protocol does with the same per-frame boxes):

======================  =============================  ===============================  ===============================
aspect                  got10k_official                otb_pytracking                   lasot_toolkit
======================  =============================  ===============================  ===============================
frames scored           2..N with cover > 0            all N (frame 1 := GT)            all N (frame 1 := GT)
absent / invisible      dropped (num. and denom.)      kept in denominator: failure     removed from numerator only,
                                                                                        denominator stays N: failure
GT valid                --                             w, h > 0 (OSTrack/FARTrack);     all four values > 0
                                                       all4: all > 0 (pytracking)
invalid-GT IoU          --                             -1 (failure)                     -1 (failure)
invalid-GT centre err   --                             +Inf (failure); -1 (success)     -1 (success)
                                                       for uav
invalid-GT norm. err    --                             -1 (success); +Inf for the       -1 (success)
                                                       invisible frames of lasot,
                                                       vasttrack
bad predictions         --                             w or h == 0: previous box        NaN, w <= 0 or h <= 0:
                                                                                        previous box
IoU                     continuous (x + w), both       pixel-inclusive (x + w - 1)      pixel-inclusive (x + w - 1)
                        boxes clipped to the image
thresholds              101 (k/100), IoU >             21 (k/20), IoU >; 0..50 px       21 (k/20), IoU >; 0..50 px
                                                       and 0..0.50, error <=            and 0..0.50, error <=
aggregation             frames pooled over sequences   per-sequence curves averaged     per-sequence curves averaged
                                                                                        after dropping all-zero ones
scores                  AO = mean IoU,                 AUC = mean of the curve,         AUC = mean of the curve,
                        SR_t = mean(IoU > t)           OP50, OP75, P@20px, NP@0.20      OP50, OP75, P@20px, NP@0.20
======================  =============================  ===============================  ===============================

Scores are fractions in [0, 1]; callers multiply by 100 for display. Threshold grids are built as exact
``k/20`` and ``k/100`` values (no ``arange`` accumulation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

IOU_THRESHOLDS_21 = np.arange(21, dtype=np.float64) / 20.0
IOU_THRESHOLDS_101 = np.arange(101, dtype=np.float64) / 100.0
PIXEL_THRESHOLDS = np.arange(51, dtype=np.float64)
NORM_THRESHOLDS = np.arange(51, dtype=np.float64) / 100.0

# Datasets whose invisible frames count as failures in normalised precision too (lineage: ``'lasot'``;
# the VastTrack Python toolkit applies the same rule).
INVISIBLE_IS_FAILURE = frozenset({"lasot", "vasttrack"})
# Datasets whose invalid-GT frames count as successes in (pixel) precision (lineage: ``'uav'``).
INVALID_CENTER_IS_SUCCESS = frozenset({"uav"})


@dataclass
class SequenceScores:
    """Per-sequence curves of one protocol (success over IoU thresholds, precision, normalised precision)."""

    name: str
    success: np.ndarray
    precision: Optional[np.ndarray] = None
    norm_precision: Optional[np.ndarray] = None
    num_frames: int = 0
    extra: Dict[str, float] = field(default_factory=dict)


def _as_boxes(boxes: np.ndarray, what: str) -> np.ndarray:
    arr = np.array(boxes, dtype=np.float64, copy=True)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what} must have shape (N, 4), got {tuple(arr.shape)}")
    return arr


# ----------------------------------------------------------------------------------------------- IoU


def iou_continuous(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes with corners ``x + w`` (GOT-10k toolkit form: ``inter / (union + eps)``, clipped to [0,1])."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / (union + np.finfo(np.float64).eps), 0.0, 1.0)


def iou_pixel_inclusive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU with the +1 pixel convention (``br = x + w - 1``) of pytracking and the LaSOT MATLAB toolkit."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    tl = np.maximum(a[:, :2], b[:, :2])
    br = np.minimum(a[:, :2] + a[:, 2:] - 1.0, b[:, :2] + b[:, 2:] - 1.0)
    size = np.clip(br - tl + 1.0, 0.0, None)
    inter = size[:, 0] * size[:, 1]
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def clip_to_image(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """GOT-10k toolkit bounding: x, y clipped to [0, W] / [0, H], then w, h clipped to [0, W - x] / [0, H - y]."""
    out = _as_boxes(boxes, "boxes")
    out[:, 0] = np.clip(out[:, 0], 0.0, width)
    out[:, 1] = np.clip(out[:, 1], 0.0, height)
    out[:, 2] = np.clip(out[:, 2], 0.0, width - out[:, 0])
    out[:, 3] = np.clip(out[:, 3], 0.0, height - out[:, 1])
    return out


def center_errors(pred: np.ndarray, gt: np.ndarray, normalized: bool = False) -> np.ndarray:
    """Euclidean distance of box centres ``x + (w - 1) / 2``; ``normalized`` divides both centres by the GT w, h."""
    pc = pred[:, :2] + 0.5 * (pred[:, 2:] - 1.0)
    gc = gt[:, :2] + 0.5 * (gt[:, 2:] - 1.0)
    if normalized:
        with np.errstate(divide="ignore", invalid="ignore"):
            pc = pc / gt[:, 2:]
            gc = gc / gt[:, 2:]
    return np.sqrt(np.sum((pc - gc) ** 2, axis=1))


# ------------------------------------------------------------------------------------------ GOT-10k


def got10k_sequence_ious(pred: np.ndarray, gt: np.ndarray, image_size: Tuple[float, float],
                         cover: Optional[np.ndarray] = None,
                         absence: Optional[np.ndarray] = None) -> np.ndarray:
    """IoUs the GOT-10k toolkit keeps for one sequence: frames 2..N, boxes clipped to ``image_size`` (w, h).

    Frames are kept where ``cover > 0`` (the toolkit's rule); without ``cover``, where ``absence == 0``;
    without either, all frames 2..N are kept.
    """
    pred = _as_boxes(pred, "predicted boxes")
    gt = _as_boxes(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has {len(pred)} rows, ground truth {len(gt)}")
    width, height = float(image_size[0]), float(image_size[1])
    ious = iou_continuous(clip_to_image(pred[1:], width, height), clip_to_image(gt[1:], width, height))
    if cover is not None:
        keep = np.asarray(cover, dtype=np.float64).reshape(-1)[1:] > 0
    elif absence is not None:
        keep = np.asarray(absence, dtype=np.float64).reshape(-1)[1:] == 0
    else:
        keep = np.ones(len(ious), dtype=bool)
    if len(keep) != len(ious):
        raise ValueError(f"visibility labels have {len(keep) + 1} rows, ground truth {len(gt)}")
    return ious[keep]


def got10k_scores(ious: np.ndarray) -> Dict[str, object]:
    """AO, SR0.5, SR0.75 and the 101-point success curve of pooled IoUs.

    SR0.75 is not in the toolkit (the server reports it); it is computed exactly like the toolkit's SR0.5,
    ``mean(IoU > 0.75)`` over the same pooled frames.
    """
    ious = np.asarray(ious, dtype=np.float64).reshape(-1)
    if ious.size == 0:
        raise ValueError("no frames to score (every frame after the first is absent)")
    curve = np.mean(ious[:, None] > IOU_THRESHOLDS_101[None, :], axis=0)
    return {"AO": float(np.mean(ious)), "SR50": float(np.mean(ious > 0.5)),
            "SR75": float(np.mean(ious > 0.75)), "success_curve": curve, "num_frames": int(ious.size)}


def got10k_speed(times: Iterable[np.ndarray]) -> float:
    """Toolkit speed: mean of ``1 / t`` over all positive per-frame times (pooled); -1 when there are none."""
    pooled = [np.asarray(t, dtype=np.float64).reshape(-1) for t in times]
    allt = np.concatenate(pooled) if pooled else np.zeros(0)
    allt = allt[np.isfinite(allt) & (allt > 0)]
    return float(np.mean(1.0 / allt)) if allt.size else -1.0


def got10k_official(sequences: Sequence[dict]) -> Dict[str, object]:
    """GOT-10k official protocol over ``sequences``: dicts with ``name``, ``pred``, ``gt``, ``image_size`` (w, h)
    and optionally ``cover`` / ``absence`` / ``times``.

    IoUs of all kept frames of all sequences are pooled (frame-weighted), then AO = mean IoU,
    SR_t = mean(IoU > t), success curve over 101 thresholds ``k/100`` with ``>``.
    Returns the overall scores plus ``per_sequence`` scores and ``fps`` (toolkit definition).
    """
    if not sequences:
        raise ValueError("no sequences to score")
    per_seq: Dict[str, Dict[str, object]] = {}
    pooled: List[np.ndarray] = []
    for seq in sequences:
        ious = got10k_sequence_ious(seq["pred"], seq["gt"], seq["image_size"], seq.get("cover"),
                                    seq.get("absence"))
        pooled.append(ious)
        if ious.size:
            s = got10k_scores(ious)
            per_seq[seq["name"]] = {"AO": s["AO"], "SR50": s["SR50"], "SR75": s["SR75"],
                                    "num_frames": s["num_frames"]}
        else:
            per_seq[seq["name"]] = {"AO": float("nan"), "SR50": float("nan"), "SR75": float("nan"),
                                    "num_frames": 0}
    out = got10k_scores(np.concatenate(pooled))
    out["thresholds"] = IOU_THRESHOLDS_101
    out["fps"] = got10k_speed([s["times"] for s in sequences if s.get("times") is not None])
    out["per_sequence"] = per_seq
    return out


# --------------------------------------------------------------------------- OTB / pytracking lineage


def _fill_zero_size(pred: np.ndarray, gt_has_nan: np.ndarray) -> np.ndarray:
    """pytracking rule: a prediction with w or h == 0 takes the previous (already fixed) prediction."""
    bad = ((pred[:, 2] == 0.0) | (pred[:, 3] == 0.0)) & ~gt_has_nan
    for i in np.flatnonzero(bad[1:]) + 1:  # in order, so a run of bad boxes inherits the last good one
        pred[i] = pred[i - 1]
    return pred


def otb_pytracking_sequence(pred: np.ndarray, gt: np.ndarray, dataset: str,
                            target_visible: Optional[np.ndarray] = None, *, valid_rule: str = "wh",
                            name: str = "") -> SequenceScores:
    """Per-sequence curves of the pytracking / OSTrack / FARTrack analysis (``extract_results.py``).

    ``dataset`` selects the lineage's dataset-specific rules: ``uav`` (GT NaN rows allowed; invalid frames
    count as successes in pixel precision), ``lasot`` / ``vasttrack`` (invisible frames fail in every curve);
    for any other dataset invisible frames fail in success and precision but count as successes in
    normalised precision (as the lineage does, e.g. for LaSOT_ext). ``valid_rule`` is ``"wh"`` (GT w, h > 0:
    OSTrack/FARTrack) or ``"all4"`` (all four GT values > 0: original pytracking).
    Raises ``ValueError`` for NaN or negative-size predictions, NaN GT outside ``uav``, or length mismatch.
    """
    pred = _as_boxes(pred, "predicted boxes")
    gt = _as_boxes(gt, "ground truth")
    if len(pred) != len(gt):
        raise ValueError(f"{name}: prediction has {len(pred)} rows, ground truth {len(gt)}")
    if np.isnan(pred).any():
        raise ValueError(f"{name}: prediction contains NaN")
    if (pred[:, 2:] < 0).any():
        row = int(np.argwhere((pred[:, 2:] < 0).any(axis=1))[0, 0])
        raise ValueError(f"{name}: prediction of frame {row + 1} has a negative size")
    gt_nan = np.isnan(gt).any(axis=1)
    if gt_nan.any() and dataset not in INVALID_CENTER_IS_SUCCESS:
        raise ValueError(f"{name}: NaN in ground truth (allowed only for UAV123)")
    pred = _fill_zero_size(pred, gt_nan)
    pred[0] = gt[0]

    with np.errstate(invalid="ignore"):
        if valid_rule == "wh":
            valid = (gt[:, 2] > 0) & (gt[:, 3] > 0)
        elif valid_rule == "all4":
            valid = (gt > 0).all(axis=1)
        else:
            raise ValueError(f"valid_rule must be 'wh' or 'all4', got {valid_rule!r}")
    visible = np.ones(len(gt), dtype=bool)
    if target_visible is not None:
        visible = np.asarray(target_visible, dtype=bool).reshape(-1)
        if len(visible) != len(gt):
            raise ValueError(f"{name}: target_visible has {len(visible)} rows, ground truth {len(gt)}")
        valid &= visible

    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = iou_pixel_inclusive(pred, gt)
        err = center_errors(pred, gt)
        err_norm = center_errors(pred, gt, normalized=True)
    overlap[~valid] = -1.0
    err[~valid] = -1.0 if dataset in INVALID_CENTER_IS_SUCCESS else np.inf
    err_norm[~valid] = -1.0
    if dataset in INVISIBLE_IS_FAILURE:
        err[~visible] = np.inf
        err_norm[~visible] = np.inf
    if np.isnan(overlap).any():
        raise ValueError(f"{name}: NaN overlap (degenerate boxes)")

    scores = _threshold_curves(name, overlap, err, err_norm, len(gt))
    scores.extra["avg_overlap_valid"] = float(np.mean(overlap[valid])) if valid.any() else float("nan")
    return scores


def _threshold_curves(name: str, overlap: np.ndarray, err: np.ndarray, err_norm: np.ndarray,
                      num_frames: int) -> SequenceScores:
    """Success (IoU above each of 21 thresholds), precision and normalised-precision curves of per-frame
    ``overlap`` / ``err`` / ``err_norm``, each count divided by ``num_frames`` (more than the rows given where
    the LaSOT toolkit has dropped absent frames from the counts)."""
    n = float(num_frames)
    return SequenceScores(
        name=name,
        success=np.sum(overlap[:, None] > IOU_THRESHOLDS_21[None, :], axis=0) / n,
        precision=np.sum(err[:, None] <= PIXEL_THRESHOLDS[None, :], axis=0) / n,
        norm_precision=np.sum(err_norm[:, None] <= NORM_THRESHOLDS[None, :], axis=0) / n,
        num_frames=num_frames,
    )


def _summary_21(success: np.ndarray, precision: np.ndarray, norm_precision: np.ndarray) -> Dict[str, float]:
    return {"AUC": float(np.mean(success)), "OP50": float(success[10]), "OP75": float(success[15]),
            "P": float(precision[20]), "NP": float(norm_precision[20])}


def otb_pytracking(sequences: Sequence[dict], dataset: str, *, valid_rule: str = "wh") -> Dict[str, object]:
    """OTB/pytracking protocol over ``sequences`` (dicts with ``name``, ``pred``, ``gt``, optional
    ``target_visible``): per-sequence curves averaged over sequences; AUC = mean of the 21-point success
    curve, OP50/OP75 = success at 0.50/0.75, P = precision at 20 px, NP = normalised precision at 0.20.
    """
    if not sequences:
        raise ValueError("no sequences to score")
    scored = [otb_pytracking_sequence(s["pred"], s["gt"], dataset, s.get("target_visible"),
                                      valid_rule=valid_rule, name=s["name"]) for s in sequences]
    succ = np.mean([s.success for s in scored], axis=0)
    prec = np.mean([s.precision for s in scored], axis=0)
    nprec = np.mean([s.norm_precision for s in scored], axis=0)
    out: Dict[str, object] = dict(_summary_21(succ, prec, nprec))
    out.update({"success_curve": succ, "precision_curve": prec, "norm_precision_curve": nprec,
                "thresholds": IOU_THRESHOLDS_21, "pixel_thresholds": PIXEL_THRESHOLDS,
                "norm_thresholds": NORM_THRESHOLDS, "num_frames": int(sum(s.num_frames for s in scored)),
                "per_sequence": {s.name: _summary_21(s.success, s.precision, s.norm_precision)
                                 for s in scored}})
    return out


# ---------------------------------------------------------------------------------- LaSOT toolkit


def lasot_toolkit_sequence(pred: np.ndarray, gt: np.ndarray, absent: Optional[np.ndarray] = None, *,
                           name: str = "") -> SequenceScores:
    """Per-sequence curves of the LaSOT MATLAB toolkit (``calc_seq_err_robust.m`` + ``eval_tracker.m``).

    Predictions longer than the GT are truncated; an invalid prediction (NaN, w <= 0 or h <= 0) takes the
    previous box when the GT row is not NaN; frame 1 := GT; frames whose GT has any value <= 0 get
    overlap -1 and centre errors -1; absent frames are removed from the counts while the denominator
    stays the number of GT rows.
    """
    pred = _as_boxes(pred, "predicted boxes")
    gt = _as_boxes(gt, "ground truth")
    if len(pred) < len(gt):
        raise ValueError(f"{name}: prediction has {len(pred)} rows, ground truth {len(gt)}")
    pred = pred[: len(gt)]
    gt_nan = np.isnan(gt).any(axis=1)
    with np.errstate(invalid="ignore"):
        bad = (np.isnan(pred).any(axis=1) | (pred[:, 2] <= 0) | (pred[:, 3] <= 0)) & ~gt_nan
    for i in np.flatnonzero(bad[1:]) + 1:  # in order, so a run of bad boxes inherits the last good one
        pred[i] = pred[i - 1]
    pred[0] = gt[0]
    with np.errstate(invalid="ignore"):
        valid = (gt > 0).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.full(len(gt), -1.0)
        overlap[valid] = iou_pixel_inclusive(pred[valid], gt[valid])
        err = center_errors(pred, gt)
        err_norm = center_errors(pred, gt, normalized=True)
    err[~valid] = -1.0
    err_norm[~valid] = -1.0
    present = np.ones(len(gt), dtype=bool)
    if absent is not None:
        present = np.asarray(absent, dtype=np.float64).reshape(-1) == 0
        if len(present) != len(gt):
            raise ValueError(f"{name}: absent labels have {len(present)} rows, ground truth {len(gt)}")
    overlap, err, err_norm = overlap[present], err[present], err_norm[present]
    with np.errstate(invalid="ignore"):
        return _threshold_curves(name, overlap, err, err_norm, len(gt))


def _mean_nonzero_curves(curves: List[np.ndarray]) -> np.ndarray:
    """Average of the curves whose sum is > eps (``plot_draw_save.m`` drops all-zero sequences)."""
    stack = np.asarray(curves, dtype=np.float64)
    kept = stack[stack.sum(axis=1) > np.finfo(np.float64).eps]
    return kept.mean(axis=0) if len(kept) else np.zeros(stack.shape[1])


def lasot_toolkit(sequences: Sequence[dict]) -> Dict[str, object]:
    """LaSOT MATLAB toolkit protocol over ``sequences`` (dicts with ``name``, ``pred``, ``gt``, optional
    ``absent``): each curve type is averaged over the sequences whose curve is not all zero; AUC = mean of
    the success curve, P = value at 20 px, NP = value at 0.20, OP50/OP75 = success at 0.50/0.75.
    """
    if not sequences:
        raise ValueError("no sequences to score")
    scored = [lasot_toolkit_sequence(s["pred"], s["gt"], s.get("absent"), name=s["name"]) for s in sequences]
    succ = _mean_nonzero_curves([s.success for s in scored])
    prec = _mean_nonzero_curves([s.precision for s in scored])
    nprec = _mean_nonzero_curves([s.norm_precision for s in scored])
    out: Dict[str, object] = dict(_summary_21(succ, prec, nprec))
    out.update({"success_curve": succ, "precision_curve": prec, "norm_precision_curve": nprec,
                "thresholds": IOU_THRESHOLDS_21, "pixel_thresholds": PIXEL_THRESHOLDS,
                "norm_thresholds": NORM_THRESHOLDS, "num_frames": int(sum(s.num_frames for s in scored)),
                "dropped_zero_sequences": [s.name for s in scored if s.success.sum() <= np.finfo(float).eps],
                "per_sequence": {s.name: _summary_21(s.success, s.precision, s.norm_precision)
                                 for s in scored}})
    return out


# ------------------------------------------------------------------------------- TrackingNet devkit style

TN_IOU_THRESHOLDS = np.arange(21, dtype=np.float64) / 20.0
TN_PIXEL_THRESHOLDS = np.arange(21, dtype=np.float64) * 2.5
TN_NORM_THRESHOLDS = np.arange(21, dtype=np.float64) / 40.0


def _unit_area(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at equal steps, with the x range scaled to [0, 1]."""
    curve = np.asarray(curve, dtype=np.float64)
    return float((curve.sum() - 0.5 * (curve[0] + curve[-1])) / (len(curve) - 1))


def trackingnet_devkit(sequences: Sequence[dict]) -> Dict[str, object]:
    """TrackingNet-devkit-style scores (a local sanity check; the TrackingNet server is authoritative).

    Rules (ECOSYSTEM.md §3.7): GT and predictions rounded to integers, frame 1 := GT, pixel-inclusive IoU,
    success ``IoU >= t`` for ``t = k/20``; precision ``error <= d`` for ``d = 0, 2.5, .., 50`` px and
    normalised precision (the centre offset divided by the GT w, h) for ``0, 0.025, .., 0.5``; curves
    averaged over sequences; each score is the trapezoid area under its curve with x scaled to [0, 1]
    (so "P" and "NP" are areas, not values at 20 px / 0.20; ``P_at_20px`` is the curve value at 20 px).
    Frames whose IoU or error is undefined (degenerate GT) count as failures.
    """
    if not sequences:
        raise ValueError("no sequences to score")
    succ, prec, nprec, per_seq, frames = [], [], [], {}, 0
    for seq in sequences:
        pred = np.round(_as_boxes(seq["pred"], "predicted boxes"))
        gt = np.round(_as_boxes(seq["gt"], "ground truth"))
        if len(pred) != len(gt):
            raise ValueError(f"{seq['name']}: prediction has {len(pred)} rows, ground truth {len(gt)}")
        pred[0] = gt[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.nan_to_num(iou_pixel_inclusive(pred, gt), nan=-1.0)
            err = np.nan_to_num(center_errors(pred, gt), nan=np.inf)
            offset = (pred[:, :2] + 0.5 * pred[:, 2:]) - (gt[:, :2] + 0.5 * gt[:, 2:])
            err_norm = np.nan_to_num(np.sqrt(np.sum((offset / gt[:, 2:]) ** 2, axis=1)), nan=np.inf)
        s = np.mean(iou[:, None] >= TN_IOU_THRESHOLDS[None, :], axis=0)
        p = np.mean(err[:, None] <= TN_PIXEL_THRESHOLDS[None, :], axis=0)
        n = np.mean(err_norm[:, None] <= TN_NORM_THRESHOLDS[None, :], axis=0)
        succ.append(s), prec.append(p), nprec.append(n)
        frames += len(gt)
        per_seq[seq["name"]] = {"AUC": _unit_area(s), "P": _unit_area(p), "NP": _unit_area(n)}
    s, p, n = (np.mean(c, axis=0) for c in (succ, prec, nprec))
    return {"AUC": _unit_area(s), "P": _unit_area(p), "NP": _unit_area(n), "P_at_20px": float(p[8]),
            "success_curve": s, "precision_curve": p, "norm_precision_curve": n,
            "thresholds": TN_IOU_THRESHOLDS, "pixel_thresholds": TN_PIXEL_THRESHOLDS,
            "norm_thresholds": TN_NORM_THRESHOLDS, "num_frames": frames, "per_sequence": per_seq}
