"""Frame-level training processing (stages 1 and 2): joint augmentation, jittered crops, per-crop transforms.

Reproduces the reference's STARK-style processing in mode "sequence" (TRAINING_AND_EVAL.md §6.2), with
every random draw taken from the generators passed in (:class:`SampleRng`) in the reference order, so a
sample seeded like the reference's global generators is identical to it:

1. joint transform on the full frames, one roll for all frames: grayscale (``py.random() < p_gray``), then
   horizontal flip (``py.random() < 0.5``);
2. per crop family (templates, then the search frame, then ``target_in_search``): jitter every box
   (``torch.randn(2)`` then ``torch.rand(2)`` per box), check the crop sides, crop every frame around its
   jittered box (:func:`fartrack.tracker.crop.crop_with_info`), transform every crop (train:
   ``np.uniform(0.8, 1.2)`` brightness then ``py.random() < 0.5`` crop flip; val: none), then check the
   padding maps.

``target_in_search`` is never used by the model, so its crop is not built; its four draws (and, in
train mode, its two transform draws) are still taken so the random streams stay those of the reference.
Its crop-side check is kept; its padding-map check is not (it could only fail when the search-frame box lies
entirely outside the frame, in which case the jittered search crop is almost surely rejected as well).
A sample is *invalid* (``None`` is returned with the reason) when a crop side is below 1 pixel or a padding
map is entirely padding, at full size or nearest-downsampled to ``output_size // 16``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fartrack.tracker.crop import crop_with_info, normalize_crop

__all__ = [
    "CropFamily",
    "FrameProcessing",
    "ProcessResult",
    "SampleRng",
    "box_in_crop",
    "crop_with_padding_map",
    "flip_box_horizontal",
    "jitter_box",
    "make_sample_rng",
]


@dataclass
class SampleRng:
    """The three generators one training sample draws from (never the global ones)."""

    py: random.Random
    np: np.random.RandomState
    torch: torch.Generator

    @classmethod
    def from_seed(cls, seed: int) -> "SampleRng":
        """All three seeded with ``seed``: the same streams as the reference's ``init_seeds(seed)``."""
        gen = torch.Generator()
        gen.manual_seed(int(seed))
        return cls(random.Random(int(seed)), np.random.RandomState(int(seed) % (2**32)), gen)


def make_sample_rng(seed: int, epoch: int, index: int) -> SampleRng:
    """Generators of sample ``index`` of ``epoch`` for base ``seed``: a pure function of the three numbers."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(2, dtype=np.uint32)
    return SampleRng.from_seed(int(state[0]) << 32 | int(state[1]))


# ----------------------------------------------------------------------------------------------- box maths
def flip_box_horizontal(box: torch.Tensor, extent: float, flip: bool) -> torch.Tensor:
    """Box ``xywh`` (float32) mirrored in ``[0, extent]`` through its corners when ``flip``.

    The reference passes the box through corner form either way, so without a flip the result is
    ``(x, y, (x + w) - x, (y + h) - y)`` (not always bitwise ``w``, ``h``). Frames use ``extent = W - 1``,
    normalised crops ``extent = 1``.
    """
    x1, y1 = box[0], box[1]
    x2, y2 = box[0] + box[2], box[1] + box[3]
    if flip:
        x1, x2 = extent - x2, extent - x1
    return torch.stack([x1, y1, x2 - x1, y2 - y1])


def jitter_box(box: torch.Tensor, scale_jitter: float, center_jitter: float, gen: torch.Generator) -> torch.Tensor:
    """Jittered box: ``size = wh * exp(randn(2) * scale_jitter)``; the centre moves by up to
    ``sqrt(size_w * size_h) * center_jitter / 2`` per axis (``rand(2)``). float32, reference op order."""
    size = box[2:4] * torch.exp(torch.randn(2, generator=gen) * scale_jitter)
    max_offset = size.prod().sqrt() * torch.tensor(center_jitter, dtype=torch.float32)
    center = box[0:2] + 0.5 * box[2:4] + max_offset * (torch.rand(2, generator=gen) - 0.5)
    return torch.cat((center - 0.5 * size, size), dim=0)


def box_in_crop(
    box_in: torch.Tensor, box_extract: torch.Tensor, resize_factor: float, crop_size: int, normalize: bool = True
) -> torch.Tensor:
    """Box ``box_in`` (image ``xywh``) in the coordinates of a crop of side ``crop_size`` taken around
    ``box_extract``: centre ``(crop_size - 1) / 2 + (c_in - c_extract) * resize_factor``, size
    ``wh * resize_factor``; divided by ``crop_size`` when ``normalize``."""
    size = torch.tensor([crop_size, crop_size], dtype=torch.float32)
    center_extract = box_extract[0:2] + 0.5 * box_extract[2:4]
    center_in = box_in[0:2] + 0.5 * box_in[2:4]
    center_out = (size - 1) / 2 + (center_in - center_extract) * resize_factor
    wh_out = box_in[2:4] * resize_factor
    out = torch.cat((center_out - 0.5 * wh_out, wh_out))
    return out / size[0] if normalize else out


def crop_with_padding_map(
    image: np.ndarray, box: Sequence[float], factor: float, output_size: int
) -> Tuple[np.ndarray, np.ndarray, float]:
    """``(uint8 crop, bool padding map (True = padding), resize_factor)`` of the reference crop.

    The crop is :func:`fartrack.tracker.crop.crop_with_info`; the padding map marks the padded border of the
    unresized crop and is resized the same way (bilinear; any non-zero value counts as padding).
    Raises ValueError when the crop side is below 1 pixel.
    """
    result = crop_with_info(image, box, factor, output_size)
    side = result.crop_size
    pad_l, pad_t, pad_r, pad_b = result.padding_ltrb
    att = np.ones((side, side), dtype=np.float64)
    if pad_l + pad_r < side and pad_t + pad_b < side:
        att[pad_t : side - pad_b, pad_l : side - pad_r] = 0
    att = cv2.resize(att, (output_size, output_size)).astype(bool)
    return result.crop, att, result.resize_factor


def _all_padding(att: np.ndarray, output_size: int) -> bool:
    if att.all():
        return True
    feat = output_size // 16
    if feat < 1:
        return False
    down = F.interpolate(torch.from_numpy(att)[None, None].float(), size=feat).to(torch.bool)
    return bool(down.all())


# ------------------------------------------------------------------------------------------- processing
@dataclass(frozen=True)
class CropFamily:
    """Crop parameters of one family (templates or search)."""

    factor: float
    size: int
    center_jitter: float
    scale_jitter: float


@dataclass
class ProcessResult:
    """Output of a valid processing call (templates first; float32 normalised CHW images)."""

    template_images: torch.Tensor  # (T, 3, Ht, Wt)
    template_anno: torch.Tensor  # (T, 4) normalised xywh
    search_images: torch.Tensor  # (S, 3, Hs, Ws)
    search_anno: torch.Tensor  # (S, 4)
    trace: Dict[str, Any]


class FrameProcessing:
    """The reference processing with the crop families of a config (``DATA.TEMPLATE`` / ``DATA.SEARCH``)."""

    def __init__(
        self,
        template: CropFamily,
        search: CropFamily,
        mode: str = "train",
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        grayscale_prob: float = 0.05,
        brightness_jitter: float = 0.2,
        keep_trace: bool = False,
    ):
        if mode not in ("train", "val"):
            raise ValueError(f"processing mode must be 'train' or 'val', got {mode!r}")
        self.template, self.search, self.mode = template, search, mode
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)
        self._mean_list, self._std_list = tuple(mean), tuple(std)
        self.grayscale_prob = grayscale_prob
        self.brightness_jitter = brightness_jitter
        self.keep_trace = keep_trace

    @classmethod
    def from_config(cls, cfg: Any, mode: str = "train", keep_trace: bool = False) -> "FrameProcessing":
        """Processing for ``cfg.DATA`` (template / search factor, size and jitter; mean and std)."""
        t, s = cfg.DATA.TEMPLATE, cfg.DATA.SEARCH
        return cls(
            CropFamily(float(t.FACTOR), int(t.SIZE), float(t.CENTER_JITTER), float(t.SCALE_JITTER)),
            CropFamily(float(s.FACTOR), int(s.SIZE), float(s.CENTER_JITTER), float(s.SCALE_JITTER)),
            mode=mode,
            mean=cfg.DATA.MEAN,
            std=cfg.DATA.STD,
            keep_trace=keep_trace,
        )

    # per-crop transforms -------------------------------------------------------------------------
    def _transform(self, crop: np.ndarray, box: torch.Tensor, rng: SampleRng) -> Tuple[torch.Tensor, torch.Tensor, bool]:
        if self.mode == "val":
            image = normalize_crop(crop, self._mean_list, self._std_list)[0].contiguous()
            return image, box, False
        lo, hi = 1.0 - self.brightness_jitter, 1.0 + self.brightness_jitter
        factor = rng.np.uniform(lo, hi)
        flip = rng.py.random() < 0.5
        scale = torch.tensor(factor / 255.0, dtype=torch.float32)
        pixels = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).contiguous()
        image = (pixels.float() * scale).clamp(0.0, 1.0)
        box = flip_box_horizontal(box, 1.0, flip)
        if flip:
            image = image.flip(2)
        image = (image - self.mean) / self.std
        return image, box, flip

    def _family(
        self,
        name: str,
        family: CropFamily,
        frames: List[np.ndarray],
        boxes: List[torch.Tensor],
        rng: SampleRng,
        trace: Dict[str, Any],
        build: bool = True,
    ) -> Tuple[Optional[Tuple[torch.Tensor, torch.Tensor]], str]:
        jittered = [jitter_box(b, family.scale_jitter, family.center_jitter, rng.torch) for b in boxes]
        stacked = torch.stack(jittered)
        crop_sz = torch.ceil(torch.sqrt(stacked[:, 2] * stacked[:, 3]) * family.factor)
        if (crop_sz < 1).any():
            return None, f"{name} crop side below 1 pixel (jittered boxes {stacked.tolist()})"
        if not build:  # the reference's unused target_in_search family: draws only
            if self.mode == "train":
                for _ in boxes:
                    rng.np.uniform(1.0 - self.brightness_jitter, 1.0 + self.brightness_jitter)
                    rng.py.random()
            return (None, None), ""
        images, annos, atts, crops, crop_boxes = [], [], [], [], []
        for frame, box, jit in zip(frames, boxes, jittered):
            crop, att, factor = crop_with_padding_map(frame, jit.tolist(), family.factor, family.size)
            crop_boxes.append(box_in_crop(box, jit, factor, family.size, normalize=True))
            crops.append(crop)
            atts.append(att)
        for crop, cbox in zip(crops, crop_boxes):
            image, anno, flip = self._transform(crop, cbox, rng)
            images.append(image)
            annos.append(anno)
            if flip:
                atts[len(images) - 1] = np.ascontiguousarray(atts[len(images) - 1][:, ::-1])
        if self.keep_trace:
            trace[name] = {"jitter_box_in": torch.stack(boxes), "jitter_box_out": stacked, "crops": crops,
                           "crop_boxes": torch.stack(crop_boxes), "atts": atts}
        for att in atts:
            if _all_padding(att, family.size):
                return None, f"{name} crop lies entirely in the padding"
        return (torch.stack(images), torch.stack(annos)), ""

    def __call__(
        self,
        template_frames: Sequence[np.ndarray],
        template_boxes: np.ndarray,
        search_frames: Sequence[np.ndarray],
        search_boxes: np.ndarray,
        rng: SampleRng,
    ) -> Tuple[Optional[ProcessResult], str]:
        """Process one sample; returns ``(result, "")`` or ``(None, reason)`` when the sample is invalid.

        Frames are ``H x W x 3`` uint8 RGB; boxes are ``(n, 4)`` xywh pixels (converted to float32).
        """
        gray = rng.py.random() < self.grayscale_prob
        flip = rng.py.random() < 0.5
        frames_t, frames_s = list(template_frames), list(search_frames)
        if gray:
            frames_t = [_to_gray(f) for f in frames_t]
            frames_s = [_to_gray(f) for f in frames_s]
        if flip:
            frames_t = [np.ascontiguousarray(f[:, ::-1]) for f in frames_t]
            frames_s = [np.ascontiguousarray(f[:, ::-1]) for f in frames_s]
        boxes_t = [flip_box_horizontal(torch.as_tensor(b, dtype=torch.float32), f.shape[1] - 1, flip)
                   for b, f in zip(np.asarray(template_boxes, dtype=np.float32), template_frames)]
        boxes_s = [flip_box_horizontal(torch.as_tensor(b, dtype=torch.float32), f.shape[1] - 1, flip)
                   for b, f in zip(np.asarray(search_boxes, dtype=np.float32), search_frames)]
        trace: Dict[str, Any] = {"grayscale": gray, "joint_flip": flip}
        templates, reason = self._family("template", self.template, frames_t, boxes_t, rng, trace)
        if templates is None:
            return None, reason
        search, reason = self._family("search", self.search, frames_s, boxes_s, rng, trace)
        if search is None:
            return None, reason
        in_search = CropFamily(self.template.factor, self.template.size, self.template.center_jitter,
                               self.template.scale_jitter)
        done, reason = self._family("target_in_search", in_search, frames_s, boxes_s, rng, trace, build=False)
        if done is None:
            return None, reason
        return ProcessResult(templates[0], templates[1], search[0], search[1], trace), ""


def _to_gray(frame: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)
