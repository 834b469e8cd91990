"""Per-stage training logic: what one batch contributes to the gradient (TRAINING_AND_EVAL.md §9).

A :class:`Stage` turns a batch into one or more :class:`LossItem` s; the trainer calls ``backward`` on each
item's loss and syncs DDP gradients only on the item flagged ``last``. Stages never modify the batch.

* ``frame`` (stage 1, script ``fartrack``): CE + SIoU (+ L1) on the output at ``MODEL.LAYERS``. With
  ``MODEL.LAYERS`` < 12 + ``EXTENSION`` this trains a shallow model from scratch (paper Table 12 baseline).
* ``distill`` (stage 2, ``fartrack_distill``, any non-empty ``MODEL.EXITS``): every exit (and the final
  output at ``MODEL.LAYERS``) goes through the shared norm and head, each with CE + SIoU; plus KL terms with
  the deeper output as the detached teacher. ``TRAIN.DISTILL_MODE`` ``adjacent`` (reference: each exit learns
  from the next deeper one) or ``deep_to_shallow`` (each exit learns from the final output). With
  ``TRAIN.REMOVE_LAYERS`` (paper Table 4 baseline, cross-layer distillation): the student is the network with
  those layers skipped, trained with CE + SIoU on its final output and KL from the full-depth output of the
  same weights (no gradient), ``MODEL.EXITS`` must then list only ``MODEL.LAYERS``.
* ``sparse`` (stage 3, ``MODEL.SPARSE.ENABLED``): a no-gradient rollout over each clip
  (:mod:`fartrack.train.rollout`), then a loss pass per clip (or per ``TRAIN.CLIP_CHUNK`` frames) with the
  recorded crops and masks: GIOU_WEIGHT * SIoU + L1_WEIGHT * L1 + CE_WEIGHT * CE, continuous targets.
  Clip losses are summed over the batch, not averaged (reference).

Loss weights come from ``TRAIN.GIOU_WEIGHT``, ``CE_WEIGHT``, ``L1_WEIGHT``, ``KL_WEIGHT`` and
``CE_SPECIAL_TOKEN_WEIGHT``.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from fartrack.models.checkpoint import _unwrap_model
from fartrack.models.encoder import FARTrackNet
from fartrack.models.vocab import Vocabulary
from fartrack.train.losses import (
    adjacent_kl,
    frame_targets,
    kl_divergence,
    l1_loss,
    sequence_targets,
    siou_loss,
    soft_argmax,
    weighted_cross_entropy,
)
from fartrack.train.rollout import RolloutParams, rollout

logger = logging.getLogger(__name__)

__all__ = [
    "LossItem",
    "LossWeights",
    "Stage",
    "FrameStage",
    "DistillStage",
    "SparseStage",
    "build_stage",
    "unwrap",
    "skip_layers",
]


@dataclass
class LossItem:
    """One backward unit of a batch.

    ``loss`` is the weighted scalar to call ``backward`` on; ``stats`` holds python floats. Batch-level stats
    are carried by the ``last`` item only (earlier items of a multi-item batch carry an empty dict), so the
    trainer can log ``stats`` of the last item as the batch's values.
    """

    loss: Tensor
    stats: dict[str, float]
    last: bool


@dataclass(frozen=True)
class LossWeights:
    """Loss weights of a stage (``TRAIN.*_WEIGHT``)."""

    giou: float = 2.0
    ce: float = 2.0
    l1: float = 0.0
    kl: float = 0.01
    special: float = 0.1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "LossWeights":
        train = cfg["TRAIN"]
        return cls(
            giou=float(train["GIOU_WEIGHT"]),
            ce=float(train["CE_WEIGHT"]),
            l1=float(train["L1_WEIGHT"]),
            kl=float(train["KL_WEIGHT"]),
            special=float(train["CE_SPECIAL_TOKEN_WEIGHT"]),
        )


def unwrap(net: nn.Module) -> FARTrackNet:
    """The plain :class:`FARTrackNet` inside a DDP / DataParallel / compiled wrapper."""
    return _unwrap_model(net)


class Stage:
    """Base class: ``name``, the batch kind it needs (``data_mode``) and :meth:`losses`."""

    name: str = ""
    data_mode: str = "frame"

    def losses(self, net: nn.Module, batch: Any, *, device: torch.device | str) -> Iterator[LossItem]:
        """Yield the batch's loss items. Call ``backward`` on each item before requesting the next one: a
        sparse model renormalises its command-token embedding rows in place at every training forward, which
        invalidates the autograd graph of an earlier item that has not been back-propagated yet."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------------------
# Frame-level batches (stages 1 and 2)
# ---------------------------------------------------------------------------------------------------------------


def _frame_inputs(batch: Mapping[str, Any], device) -> tuple[Tensor, Tensor, Tensor]:
    """(templates, search, search_anno) of a frame-level batch on ``device``; the batch is not modified."""
    for key in ("template_images", "search_images", "search_anno"):
        if key not in batch:
            raise KeyError(f"frame-level batch has no {key!r} (keys: {sorted(batch)})")
    templates, search, anno = batch["template_images"], batch["search_images"], batch["search_anno"]
    if templates.dim() != 5:
        raise ValueError(f"template_images must be (B, T, 3, H, W), got {tuple(templates.shape)}")
    if search.dim() != 4:
        raise ValueError(f"search_images must be (B, 3, H, W), got {tuple(search.shape)}")
    if anno.dim() != 2 or anno.shape != (search.shape[0], 4):
        raise ValueError(f"search_anno must be ({search.shape[0]}, 4) normalised xywh, got {tuple(anno.shape)}")
    return templates.to(device), search.to(device), anno.to(device)


def _box_terms(logits: Tensor, targets, vocab: Vocabulary, weights: LossWeights) -> dict[str, Tensor]:
    """CE, SIoU (batch mean), IoU (mean) and L1 of one logit set (B, 4, V)."""
    ce = weighted_cross_entropy(logits, targets.tokens, weights.special)
    decoded = soft_argmax(logits, vocab)
    siou, iou = siou_loss(decoded, targets.box_xyxy)
    return {"ce": ce, "siou": siou.mean(), "iou": iou.detach().mean(), "l1": l1_loss(decoded, targets.box_xyxy)}


class FrameStage(Stage):
    """Stage 1: ``CE_WEIGHT * CE + GIOU_WEIGHT * SIoU + L1_WEIGHT * L1`` on the output at ``depth``."""

    name = "frame"
    data_mode = "frame"

    def __init__(self, weights: LossWeights, depth: Optional[int] = None) -> None:
        self.weights = weights
        self.depth = depth

    def losses(self, net: nn.Module, batch: Mapping[str, Any], *, device) -> Iterator[LossItem]:
        templates, search, anno = _frame_inputs(batch, device)
        vocab = unwrap(net).vocab
        out = net(templates, search, depth=self.depth, exits=())
        terms = _box_terms(out.logits, frame_targets(anno, vocab), vocab, self.weights)
        w = self.weights
        total = w.giou * terms["siou"] + w.ce * terms["ce"] + w.l1 * terms["l1"]
        stats = {
            "Loss/total": total.item(),
            "Loss/giou": terms["siou"].item(),
            "Loss/l1": terms["l1"].item(),
            "Loss/location": terms["ce"].item(),
            "IoU": terms["iou"].item(),
        }
        yield LossItem(total, stats, True)


@contextmanager
def skip_layers(net: FARTrackNet, removed: Sequence[int]):
    """While active, the layers with 1-based indices ``removed`` pass their input through unchanged.

    Implemented with forward hooks, so the forward still goes through any DDP wrapper; the skipped layers
    receive no gradient (DDP needs ``find_unused_parameters``).
    """
    layers = net.backbone.layers(net.cfg.depth)
    handles = []
    for index in removed:
        if not 1 <= index <= len(layers):
            raise ValueError(f"TRAIN.REMOVE_LAYERS: layer {index} is out of range 1..{len(layers)}")
        handles.append(layers[index - 1].register_forward_hook(lambda _m, args, out: (args[0], out[1])))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class DistillStage(Stage):
    """Stage 2: CE + SIoU on every exit through the shared head, plus KL from deeper to shallower outputs."""

    name = "distill"
    data_mode = "frame"

    def __init__(
        self,
        weights: LossWeights,
        exits: Sequence[int],
        depth: int,
        mode: str = "adjacent",
        remove_layers: Sequence[int] = (),
        search_pos_first: bool = True,
    ) -> None:
        if mode not in ("adjacent", "deep_to_shallow"):
            raise ValueError(f"TRAIN.DISTILL_MODE must be 'adjacent' or 'deep_to_shallow', got {mode!r}")
        beyond = [e for e in exits if not 1 <= e <= depth]
        if beyond:
            raise ValueError(f"MODEL.EXITS {beyond} lie outside 1..MODEL.LAYERS ({depth})")
        self.weights = weights
        self.depth = depth
        self.exits = tuple(e for e in exits if e < depth)
        self.mode = mode
        self.remove_layers = tuple(remove_layers)
        self.search_pos_first = search_pos_first
        if self.remove_layers and self.exits:
            raise ValueError(
                "TRAIN.REMOVE_LAYERS (cross-layer distillation) trains one student output: MODEL.EXITS must list "
                f"only MODEL.LAYERS ({depth}), got exits {list(exits)}"
            )

    def losses(self, net: nn.Module, batch: Mapping[str, Any], *, device) -> Iterator[LossItem]:
        templates, search, anno = _frame_inputs(batch, device)
        model = unwrap(net)
        vocab = model.vocab
        targets = frame_targets(anno, vocab)
        w = self.weights
        if self.remove_layers:
            yield self._cross_layer(net, model, templates, search, targets)
            return
        out = net(templates, search, depth=self.depth, exits=self.exits, search_pos_first=self.search_pos_first)
        outputs = list(out.exit_logits) + [out.logits]
        per_exit = [_box_terms(logits, targets, vocab, w) for logits in outputs]
        if self.mode == "adjacent":
            kls = adjacent_kl(outputs, vocab.num_coordinate_bins)
        else:
            kls = [kl_divergence(logits, outputs[-1], vocab.num_coordinate_bins) for logits in outputs[:-1]]
        ce = torch.stack([t["ce"] for t in per_exit])
        siou = torch.stack([t["siou"] for t in per_exit])
        total = w.giou * siou.mean() + w.ce * ce.mean()
        kl_mean = torch.stack(kls).mean() if kls else None
        if kl_mean is not None:
            total = total + w.kl * kl_mean
        if w.l1:
            total = total + w.l1 * per_exit[-1]["l1"]
        stats = {"Loss/total": total.item(), "Loss/l1": per_exit[-1]["l1"].item(), "IoU": per_exit[-1]["iou"].item()}
        for i, t in enumerate(per_exit):
            stats[f"Loss/giou_{i}"] = t["siou"].item()
        stats["Loss/giou_mean"] = siou.mean().item()
        for i, t in enumerate(per_exit):
            stats[f"Loss/location_{i}"] = t["ce"].item()
        stats["Loss/location_mean"] = ce.mean().item()
        for i, kl in enumerate(kls):
            stats[f"Loss/KL_{i}"] = kl.item()
        if kl_mean is not None:
            stats["Loss/KL_mean"] = kl_mean.item()
        yield LossItem(total, stats, True)

    def _cross_layer(self, net, model: FARTrackNet, templates, search, targets) -> LossItem:
        w, vocab = self.weights, model.vocab
        with torch.no_grad():
            teacher = net(templates, search, depth=self.depth, exits=(), search_pos_first=self.search_pos_first).logits
        with skip_layers(model, self.remove_layers):
            student = net(templates, search, depth=self.depth, exits=(), search_pos_first=self.search_pos_first).logits
        terms = _box_terms(student, targets, vocab, w)
        kl = kl_divergence(student, teacher, vocab.num_coordinate_bins)
        total = w.giou * terms["siou"] + w.ce * terms["ce"] + w.kl * kl + w.l1 * terms["l1"]
        stats = {
            "Loss/total": total.item(),
            "Loss/giou": terms["siou"].item(),
            "Loss/l1": terms["l1"].item(),
            "Loss/location": terms["ce"].item(),
            "Loss/KL": kl.item(),
            "IoU": terms["iou"].item(),
        }
        return LossItem(total, stats, True)


# ---------------------------------------------------------------------------------------------------------------
# Stage 3
# ---------------------------------------------------------------------------------------------------------------


class SparseStage(Stage):
    """Stage 3: rollout without gradients, then one loss pass per clip (or chunk of frames) with gradients."""

    name = "sparse"
    data_mode = "clip"

    def __init__(self, weights: LossWeights, params: RolloutParams, chunk: int = 0) -> None:
        self.weights = weights
        self.params = params
        self.chunk = int(chunk)

    def losses(self, net: nn.Module, batch: Sequence[Mapping[str, Any]], *, device) -> Iterator[LossItem]:
        if not isinstance(batch, (list, tuple)):
            raise TypeError(f"a stage-3 batch is a list of clip dicts, got {type(batch).__name__}")
        model = unwrap(net)
        result = rollout(model, batch, self.params, device)
        vocab = model.vocab
        w = self.weights
        units = []  # (clip, frame slice, share of the clip's frames)
        for clip in result.clips:
            n = clip.search.shape[0]
            step = n if self.chunk <= 0 else self.chunk
            for start in range(0, n, step):
                stop = min(start + step, n)
                units.append((clip, slice(start, stop), (stop - start) / n))
        sums = {"Loss/total": 0.0, "Loss/giou": 0.0, "Loss/l1": 0.0, "Loss/location": 0.0, "IoU": 0.0}
        num_clips = max(len(result.clips), 1)
        batch_stats = {
            "mIoU": result.mean_iou,
            "clips": float(len(result.clips)),
            "skipped_clips": float(len(result.skipped)),
        }
        for _, reason in result.skipped:
            logger.warning("stage 3: skipped %s", reason)
        if not units:
            # keep DDP ranks in step: one zero-valued item through the network (no loss statistics to report)
            yield LossItem(self._zero_loss(net, model, device), {"clips": 0.0, "skipped_clips": float(len(result.skipped))}, True)
            return
        for k, (clip, frames, share) in enumerate(units):
            search = clip.search[frames]
            n = search.shape[0]
            templates = clip.templates.unsqueeze(0).expand(n, *clip.templates.shape)
            out = net(templates, search, key_keep=clip.keep[frames], depth=self.params.depth, exits=())
            targets = sequence_targets(clip.crop_boxes[frames], self.params.search_size, vocab)
            terms = _box_terms(out.logits, targets, vocab, w)
            clip_loss = w.giou * terms["siou"] + w.l1 * terms["l1"] + w.ce * terms["ce"]
            loss = clip_loss * share if share != 1.0 else clip_loss
            for key, value in (
                ("Loss/total", clip_loss), ("Loss/giou", terms["siou"]), ("Loss/l1", terms["l1"]),
                ("Loss/location", terms["ce"]), ("IoU", terms["iou"]),
            ):
                sums[key] += value.item() * share / num_clips
            last = k == len(units) - 1
            yield LossItem(loss, {**sums, **batch_stats} if last else {}, last)

    @staticmethod
    def _zero_loss(net: nn.Module, model: FARTrackNet, device) -> Tensor:
        cfg = model.cfg
        templates = torch.zeros(1, cfg.num_templates, 3, cfg.template_size, cfg.template_size, device=device)
        search = torch.zeros(1, 3, cfg.search_size, cfg.search_size, device=device)
        return net(templates, search, exits=()).logits.sum() * 0.0


# ---------------------------------------------------------------------------------------------------------------
# Selection from the config
# ---------------------------------------------------------------------------------------------------------------


def build_stage(cfg: Mapping[str, Any]) -> Stage:
    """The stage a resolved config describes: sparse if ``MODEL.SPARSE.ENABLED``, distill if ``MODEL.EXITS``
    is non-empty or ``TRAIN.REMOVE_LAYERS`` is set, else frame-level."""
    model, train = cfg["MODEL"], cfg["TRAIN"]
    if int(model["PRENUM"]) > 0:
        raise ValueError(
            "MODEL.PRENUM > 0 (trajectory tokens, paper variant): training with trajectory tokens is not "
            "implemented; the reference trains and tracks without them (MODEL.PRENUM: 0)"
        )
    weights = LossWeights.from_config(cfg)
    depth = int(model["LAYERS"])
    if model["SPARSE"]["ENABLED"]:
        return SparseStage(weights, RolloutParams.from_config(cfg), int(train["CLIP_CHUNK"]))
    remove = list(train["REMOVE_LAYERS"])
    exits = list(model["EXITS"])
    if exits or remove:
        return DistillStage(weights, exits, depth, str(train["DISTILL_MODE"]), remove)
    return FrameStage(weights, depth)
