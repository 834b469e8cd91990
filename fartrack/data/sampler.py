"""Samplers: which frames of which sequence form a training sample (stages 1-2) or clip (stage 3).

Both samplers follow the reference rules (TRAINING_AND_EVAL.md §6.1 and §8.1) and draw only from the
python generator they are given, in the reference order, so a generator seeded like the reference's
global ``random`` reproduces its frame choices exactly. The torch datasets at the bottom
(:class:`FrameSampleDataset`, :class:`ClipSampleDataset`) build a sample as a pure function of
``(seed, epoch, index)`` (:func:`fartrack.data.processing.make_sample_rng`).

Deliberate difference from the reference (its defect §13 #20): the reference retries forever, silently,
whenever loading or processing fails. Here only *unusable samples* are retried -- invalid crops, frames
that cannot be read or decoded, sequences without a usable frame window -- each one logged with the
dataset, sequence and frames; after ``DATA.SAMPLE_RETRY_LIMIT`` consecutive unusable samples a
:class:`SampleError` stops training with the last reason. Malformed annotation files raise at once.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from fartrack.data.datasets.base import TrackingDataset
from fartrack.data.image_io import FrameReadError
from fartrack.data.processing import FrameProcessing, make_sample_rng

__all__ = [
    "ClipSampleDataset",
    "FrameChoice",
    "FrameSampleDataset",
    "SampleError",
    "UnusableSample",
    "choose_dataset",
    "choose_sequence",
    "sample_clip_ids",
    "sample_frame_ids",
    "sample_visible_ids",
]

logger = logging.getLogger(__name__)

#: Sequence draws per sample before a dataset is declared to have no usable sequence.
MAX_SEQUENCE_DRAWS = 10000
#: Base-frame redraws per frame-level sample before the sequence counts as unusable.
MAX_WINDOW_DRAWS = 1000


class SampleError(RuntimeError):
    """Too many consecutive unusable samples; the message names the dataset, sequence and frames."""


class UnusableSample(Exception):
    """One sample cannot be used (the caller draws another one)."""


@dataclass
class FrameChoice:
    """Frames chosen for one sample: dataset index, sequence id, template and search frame ids (0-based)."""

    dataset: int
    seq_id: int
    template_ids: List[int]
    search_ids: List[int]


def sample_visible_ids(
    visible: np.ndarray, rng: random.Random, num_ids: int = 1, min_id: Optional[int] = None,
    max_id: Optional[int] = None,
) -> Optional[List[int]]:
    """``num_ids`` visible frames drawn with replacement from ``[min_id, max_id)`` (clamped to the sequence),
    or ``None`` (without drawing) when the window holds no visible frame."""
    if num_ids == 0:
        return []
    lo = 0 if min_id is None or min_id < 0 else min_id
    hi = len(visible) if max_id is None or max_id > len(visible) else max_id
    candidates = [i for i in range(lo, hi) if visible[i]]
    if not candidates:
        return None
    return rng.choices(candidates, k=num_ids)


def choose_dataset(datasets: Sequence[TrackingDataset], weights: Sequence[float], rng: random.Random) -> int:
    """Index of a dataset drawn with probability ``weights / sum(weights)`` (one python draw)."""
    total = float(sum(weights))
    return rng.choices(range(len(datasets)), [w / total for w in weights])[0]


def choose_sequence(dataset: TrackingDataset, rng: random.Random, min_visible: int, min_length: int):
    """``(seq_id, info)`` of a sequence with more than ``min_visible`` visible frames and at least
    ``min_length`` frames (any sequence of an image dataset); ``randint`` draws until one is accepted.

    Raises :class:`SampleError` when :data:`MAX_SEQUENCE_DRAWS` draws find none.
    """
    for _ in range(MAX_SEQUENCE_DRAWS):
        seq_id = rng.randint(0, len(dataset) - 1)
        info = dataset.sequence_info(seq_id)
        if not dataset.is_video:
            return seq_id, info
        if int(info.visible.sum()) > min_visible and len(info.visible) >= min_length:
            return seq_id, info
    raise SampleError(
        f"{dataset.name}: no sequence with more than {min_visible} visible frames and at least {min_length} "
        f"frames found in {MAX_SEQUENCE_DRAWS} draws ({len(dataset)} sequences); the dataset is too short "
        f"for these sampler settings"
    )


def sample_frame_ids(
    datasets: Sequence[TrackingDataset], weights: Sequence[float], rng: random.Random, *, num_templates: int,
    num_search: int, max_gap: int,
) -> FrameChoice:
    """Causal frame-level sampling: slot 0 is a base frame, the other templates precede it within
    ``max_gap`` (+ growth), the search frame follows it; see TRAINING_AND_EVAL.md §6.1."""
    d = choose_dataset(datasets, weights, rng)
    dataset = datasets[d]
    seq_id, info = choose_sequence(dataset, rng, 2 * (num_search + num_templates), 20)
    if not dataset.is_video:
        return FrameChoice(d, seq_id, [0] * num_templates, [0] * num_search)
    visible = info.visible
    gap_increase = 0
    for _ in range(MAX_WINDOW_DRAWS):
        base = sample_visible_ids(visible, rng, 1, num_templates - 1, len(visible) - num_search)
        if base is None:
            raise UnusableSample(f"{_where(dataset, seq_id)}: no visible base frame in "
                                 f"[{num_templates - 1}, {len(visible) - num_search})")
        prev = sample_visible_ids(visible, rng, num_templates - 1, base[0] - max_gap - gap_increase, base[0])
        if prev is None:
            gap_increase += 5
            continue
        templates = base + prev
        search = sample_visible_ids(visible, rng, num_search, templates[0] + 1, templates[0] + max_gap + gap_increase)
        gap_increase += 5
        if search is not None:
            return FrameChoice(d, seq_id, templates, search)
    raise UnusableSample(
        f"{_where(dataset, seq_id)}: no template/search window with visible frames after {MAX_WINDOW_DRAWS} draws"
    )


def _where(dataset: TrackingDataset, seq_id: int) -> str:
    return f"dataset {dataset.name}, sequence {dataset.sequence_name(seq_id)}"


def _walk_forward(visible: np.ndarray, start: int, count: int) -> List[int]:
    """The first ``count`` visible frames from ``start``; past the end, the last frame is repeated (even if
    it is not visible, as the reference v3 sampler does)."""
    ids: List[int] = []
    f = start
    last = len(visible) - 1
    while len(ids) < count:
        if f >= last:
            ids.append(last)
            continue
        if visible[f]:
            ids.append(f)
        f += 1
    return ids


def sample_clip_ids(
    datasets: Sequence[TrackingDataset], weights: Sequence[float], rng: random.Random, *, num_templates: int,
    num_search: int, max_gap: int, interval_prob: float = 0.0, max_interval: int = 5,
) -> FrameChoice:
    """Sequence sampler "v3" (stage 3): sorted template frames, then ``num_search`` consecutive visible frames
    starting at most ``max_gap`` after the last template; see TRAINING_AND_EVAL.md §8.1.

    With probability ``interval_prob`` (reference default 0: never) the clip is sampled in random-interval
    mode instead -- our definition, the reference's unused mode is not reproduced: each search frame is a
    visible frame at most ``max_interval`` frames after the previous one.
    """
    d = choose_dataset(datasets, weights, rng)
    dataset = datasets[d]
    seq_id, info = choose_sequence(dataset, rng, 2 * (num_search + num_templates), num_search + num_templates)
    random_interval = rng.random() < interval_prob
    if not dataset.is_video:
        return FrameChoice(d, seq_id, [0] * num_templates, [0] * num_search)
    visible = info.visible
    limit = len(visible) - num_search
    templates = []
    for _ in range(num_templates):
        pick = sample_visible_ids(visible, rng, 1, 0, limit)
        if pick is None:
            raise UnusableSample(f"{_where(dataset, seq_id)}: no visible template frame in [0, {limit})")
        templates.append(pick[0])
    templates.sort()
    left = sample_visible_ids(visible, rng, 1, templates[-1], min(limit, templates[-1] + max_gap))
    if left is None:
        raise UnusableSample(
            f"{_where(dataset, seq_id)}: no visible clip start in [{templates[-1]}, "
            f"{min(limit, templates[-1] + max_gap)})"
        )
    if not random_interval:
        return FrameChoice(d, seq_id, templates, _walk_forward(visible, left[0], num_search))
    search = [left[0]]
    while len(search) < num_search:
        nxt = sample_visible_ids(visible, rng, 1, search[-1] + 1, search[-1] + 1 + max_interval)
        if nxt is None:
            search += _walk_forward(visible, search[-1] + 1, num_search - len(search))
            break
        search.append(nxt[0])
    return FrameChoice(d, seq_id, templates, search)


# ------------------------------------------------------------------------------------------ torch datasets
class _SampleDatasetBase(torch.utils.data.Dataset):
    """Common part: datasets, weights, length, seed/epoch and the bounded retry loop."""

    def __init__(self, datasets: Sequence[TrackingDataset], weights: Sequence[float], length: int, *, seed: int,
                 epoch: int = 0, retry_limit: int = 100):
        if len(datasets) != len(weights):
            raise ValueError(
                f"{len(datasets)} datasets but {len(weights)} weights (DATA.*.DATASETS_NAME and DATASETS_RATIO "
                f"must have the same length)"
            )
        if not datasets or sum(weights) <= 0:
            raise ValueError("at least one dataset with a positive weight (DATA.*.DATASETS_RATIO) is needed")
        self.datasets = list(datasets)
        self.weights = [float(w) for w in weights]
        self.length = int(length)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.retry_limit = int(retry_limit)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: samples are a function of ``(seed, epoch, index)``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _describe(self, choice: Optional[FrameChoice]) -> str:
        if choice is None:
            return "no frames chosen"
        ds = self.datasets[choice.dataset]
        return (f"dataset {ds.name}, sequence {ds.sequence_name(choice.seq_id)}, template frames "
                f"{choice.template_ids}, search frames {_short(choice.search_ids)}")

    def _choose(self, rng) -> FrameChoice:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build(self, choice: FrameChoice, frames: List[np.ndarray], rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index) -> Dict[str, Any]:
        """Sample ``index`` of the current epoch, or of ``epoch`` when ``index`` is ``(epoch, index)``."""
        epoch = self.epoch
        if isinstance(index, (tuple, list)):
            epoch, index = int(index[0]), int(index[1])
        rng = make_sample_rng(self.seed, epoch, index)
        reason = ""
        for _ in range(self.retry_limit):
            choice = None
            try:
                choice = self._choose(rng)
                ds = self.datasets[choice.dataset]
                frames = ds.get_frames(choice.seq_id, choice.template_ids + choice.search_ids)
                sample, reason = self._build(choice, frames, rng)
            except UnusableSample as exc:
                sample, reason = None, str(exc)
                logger.info("unusable sample, drawing another: %s", reason)
                continue
            except FrameReadError as exc:
                sample, reason = None, f"{self._describe(choice)}: unreadable frame: {exc}"
                logger.warning("skipping sample (%s): %s", self._describe(choice), exc)
                continue
            if sample is not None:
                return sample
            reason = f"{self._describe(choice)}: {reason}"
            logger.info("unusable sample, drawing another: %s", reason)
        raise SampleError(
            f"{self.retry_limit} consecutive unusable samples (DATA.SAMPLE_RETRY_LIMIT) at sample {index} of "
            f"epoch {epoch}; last: {reason}"
        )


def _short(ids: Sequence[int]) -> str:
    ids = list(ids)
    return str(ids) if len(ids) <= 6 else f"[{ids[0]}, {ids[1]}, ..., {ids[-1]}] ({len(ids)} frames)"


class FrameSampleDataset(_SampleDatasetBase):
    """Frame-level samples (stages 1-2): processed template and search crops, see the loader contract."""

    def __init__(self, datasets, weights, length, processing: FrameProcessing, *, num_templates: int,
                 max_gap: int, seed: int, epoch: int = 0, retry_limit: int = 100):
        super().__init__(datasets, weights, length, seed=seed, epoch=epoch, retry_limit=retry_limit)
        self.processing = processing
        self.num_templates = int(num_templates)
        self.max_gap = int(max_gap)

    def _choose(self, rng) -> FrameChoice:
        return sample_frame_ids(self.datasets, self.weights, rng.py, num_templates=self.num_templates,
                                num_search=1, max_gap=self.max_gap)

    def _build(self, choice: FrameChoice, frames, rng):
        ds = self.datasets[choice.dataset]
        t = len(choice.template_ids)
        boxes = ds.get_boxes(choice.seq_id, choice.template_ids + choice.search_ids)
        result, reason = self.processing(frames[:t], boxes[:t], frames[t:], boxes[t:], rng)
        if result is None:
            return None, reason
        return {
            "template_images": result.template_images,
            "template_anno": result.template_anno,
            "search_images": result.search_images[0],
            "search_anno": result.search_anno[0],
            "valid": True,
            "dataset": ds.name,
            "seq_name": ds.sequence_name(choice.seq_id),
        }, ""


class ClipSampleDataset(_SampleDatasetBase):
    """Raw-frame clips (stage 3): template frames, ``num_search`` search frames and their boxes.

    Each item: ``template_images`` list of uint8 RGB frames, ``template_annos`` float64 ``(T, 4)`` xywh
    pixels, ``search_images`` list, ``search_annos`` float64 ``(N, 4)`` -- the dataset's boxes as stored, also
    for frames where the target is not visible (the v3 padding may repeat an invisible last frame) --
    ``search_visible`` bool ``(N,)``, ``template_ids`` / ``search_ids``, ``dataset`` and ``seq_name``.
    """

    def __init__(self, datasets, weights, length, *, num_templates: int, num_search: int, max_gap: int,
                 seed: int, epoch: int = 0, retry_limit: int = 100, interval_prob: float = 0.0,
                 max_interval: int = 5):
        super().__init__(datasets, weights, length, seed=seed, epoch=epoch, retry_limit=retry_limit)
        self.num_templates, self.num_search, self.max_gap = int(num_templates), int(num_search), int(max_gap)
        self.interval_prob, self.max_interval = float(interval_prob), int(max_interval)

    def _choose(self, rng) -> FrameChoice:
        return sample_clip_ids(self.datasets, self.weights, rng.py, num_templates=self.num_templates,
                               num_search=self.num_search, max_gap=self.max_gap, interval_prob=self.interval_prob,
                               max_interval=self.max_interval)

    def _build(self, choice: FrameChoice, frames, rng):
        ds = self.datasets[choice.dataset]
        t = len(choice.template_ids)
        info = ds.sequence_info(choice.seq_id)
        boxes = ds.get_boxes(choice.seq_id, choice.template_ids + choice.search_ids).astype(np.float64)
        visible = info.visible[np.asarray(choice.search_ids)] if ds.is_video else info.visible[[0] * len(choice.search_ids)]
        return {
            "template_images": frames[:t],
            "template_annos": boxes[:t],
            "search_images": frames[t:],
            "search_annos": boxes[t:],
            "search_visible": np.asarray(visible, dtype=bool),
            "template_ids": list(choice.template_ids),
            "search_ids": list(choice.search_ids),
            "dataset": ds.name,
            "seq_name": ds.sequence_name(choice.seq_id),
        }, ""
