"""Run an exported FARTrack model with ONNX Runtime and numpy only (no PyTorch, no OpenCV).

Usage::

    from fartrack.export.standalone import OnnxTracker
    tracker = OnnxTracker("model.onnx", threads=2)     # model.template.onnx must sit next to it
    tracker.initialize(first_frame_rgb_uint8, [x, y, w, h])
    box = tracker.track(next_frame_rgb_uint8)          # [x, y, w, h] floats, image pixels

The pre/post-processing helpers are usable on their own:

- :func:`crop_around_box` -- the reference square crop (zero padding, asymmetric right/bottom pad) and an
  OpenCV-compatible bilinear resize (:func:`resize_bilinear`, bit-exact with ``cv2.resize`` INTER_LINEAR on
  uint8 images for OpenCV 5.0, the version of the golden fixtures);
- :func:`normalize` -- uint8 HWC crop -> float32 (1, 3, H, W), ``((x / 255) - mean) / std``;
- :func:`decode` -- logits (4, V) -> normalised xyxy crop box (``mean`` or ``argmax`` rule);
- :func:`map_box_to_image` and :func:`clip_box` -- crop box -> image box, clipped with a margin.

All settings (sizes, factors, mean/std, decode rule, schedule, pruning count) come from the model's
metadata, written by ``tracking/export_onnx.py``. The template memory reuses the pure-Python
``fartrack/tracker/schedule.py`` (schedule and bounded store; loaded by path, so PyTorch is not imported).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "OnnxTracker",
    "crop_around_box",
    "resize_bilinear",
    "normalize",
    "decode",
    "map_box_to_image",
    "clip_box",
]

_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS


def _axis_coefficients(src: int, dst: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and 11-bit weights (w0, w1) of one axis, as OpenCV computes them."""
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    f = f - i0.astype(np.float32)
    if clamp:  # the horizontal pass clamps the weights at the borders; the vertical pass only the rows
        low = i0 < 0
        f[low], i0[low] = 0, 0
        high = i0 >= src - 1
        f[high], i0[high] = 0, src - 1
    w0 = np.round((np.float32(1.0) - f) * np.float32(1 << _COEF_BITS)).astype(np.int32)
    w1 = (1 << _COEF_BITS) - w0
    return np.clip(i0, 0, src - 1), np.clip(i0 + 1, 0, src - 1), w0, w1


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an H x W x C uint8 image to ``size`` x ``size`` like ``cv2.resize`` (INTER_LINEAR, fixed point)."""
    height, width, channels = image.shape
    cols0, cols1, a0, a1 = _column_plan(width, size, channels)
    rows, top, bottom, b0, b1 = _row_plan(height, size)
    flat = image.reshape(height, width * channels)[rows]  # only the source rows the output reads
    horizontal = np.take(flat, cols0, axis=1).astype(np.int32) * a0
    horizontal += np.take(flat, cols1, axis=1).astype(np.int32) * a1
    horizontal >>= 4
    out = ((b0 * horizontal[top]) >> 16) + ((b1 * horizontal[bottom]) >> 16)
    out += 2
    out >>= 2
    return np.clip(out, 0, 255).astype(np.uint8).reshape(size, size, channels)


@lru_cache(maxsize=32)
def _column_plan(width: int, size: int, channels: int):
    """Flattened (column * channels + channel) source indices and weights of the horizontal pass."""
    x0, x1, a0, a1 = _axis_coefficients(width, size, clamp=True)
    offsets = np.arange(channels)
    cols0 = (x0[:, None] * channels + offsets).ravel()
    cols1 = (x1[:, None] * channels + offsets).ravel()
    return cols0, cols1, np.repeat(a0, channels), np.repeat(a1, channels)


@lru_cache(maxsize=32)
def _row_plan(height: int, size: int):
    """Distinct source rows read by the vertical pass, each output row's two of them, and the weights."""
    y0, y1, b0, b1 = _axis_coefficients(height, size, clamp=False)
    rows, inverse = np.unique(np.concatenate([y0, y1]), return_inverse=True)
    return rows, inverse[:size], inverse[size:], b0[:, None], b1[:, None]


def _axis_span(start: int, size: int, limit: int) -> tuple[int, int, int]:
    """In-image slice [lo, hi) of one crop axis and the zero padding before it (reference rule)."""
    end = start + size
    pad_before = max(0, -start)
    pad_after = max(end - limit + 1, 0)
    lo, hi = start + pad_before, end - pad_after
    if hi <= lo:
        return 0, 0, 0
    return lo, hi, pad_before


def crop_around_box(image: np.ndarray, box: Sequence[float], factor: float, size: int) -> tuple[np.ndarray, float]:
    """Square crop of side ``ceil(sqrt(w*h) * factor)`` centred on ``box`` [x, y, w, h], resized to ``size``.

    Same geometry as the PyTorch tracker (``fartrack/tracker/crop.py``, MODEL.md §8.1). Returns the uint8
    crop and ``resize_factor = size / crop_side``.
    """
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"crop box must be finite with positive width and height, got {[x, y, w, h]}")
    side = math.ceil(math.sqrt(w * h) * factor)
    if side < 1:
        raise ValueError(f"crop side ceil(sqrt({w}*{h})*{factor}) = {side} is below 1 pixel")
    x1 = round(x + 0.5 * w - side * 0.5)
    y1 = round(y + 0.5 * h - side * 0.5)
    col_lo, col_hi, pad_left = _axis_span(x1, side, image.shape[1])
    row_lo, row_hi, pad_top = _axis_span(y1, side, image.shape[0])
    region = np.zeros((side, side, image.shape[2]), dtype=np.uint8)
    if col_hi > col_lo and row_hi > row_lo:
        region[pad_top : pad_top + row_hi - row_lo, pad_left : pad_left + col_hi - col_lo] = image[
            row_lo:row_hi, col_lo:col_hi
        ]
    return resize_bilinear(region, size), size / side


def normalize(crop: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 H x W x 3 crop -> float32 (1, 3, H, W): ``((x / 255) - mean) / std`` in float32 (reference order)."""
    pixels = crop.astype(np.float32) / np.float32(255.0)
    values = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(values.transpose(2, 0, 1)[None])


def decode(logits: np.ndarray, bins: int = 300, range_: int = 2, rule: str = "mean") -> np.ndarray:
    """Logits (4, V) -> normalised xyxy crop box, float32 (4,).

    ``argmax``: ``id / (bins - 1) - offset`` (stage-1 / distill); ``mean``: the mean of the half-bin argmax
    and the soft-argmax over the ``bins * range_`` coordinate ids (sparse); ``soft``: the soft-argmax only.
    """
    offset = np.float32(0.5 * (range_ - 1))
    ids = logits.argmax(axis=-1).astype(np.float32)
    if rule == "argmax":
        return ids / np.float32(bins - 1) - offset
    n = bins * range_
    coords = logits[..., :n].astype(np.float32)
    probs = np.exp(coords - coords.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    grid = np.array([-0.5 * (range_ - 1) + k * (1.0 / bins) for k in range(n)], dtype=np.float64).astype(np.float32)
    soft = (probs * grid).sum(axis=-1, dtype=np.float32)
    if rule == "soft":
        return soft
    if rule != "mean":
        raise ValueError(f"decode rule must be argmax, mean or soft, got {rule!r}")
    hard = (ids + np.float32(0.5)) / np.float32(bins - 1) - offset
    return (soft + hard) / np.float32(2)


def map_box_to_image(box: np.ndarray, state: Sequence[float], resize_factor: float, search_size: int) -> list[float]:
    """Normalised xyxy crop box -> image box [x, y, w, h] around the previous state (MODEL.md §5.3)."""
    x0, y0, x1, y1 = (np.float32(v) for v in box)
    w, h = x1 - x0, y1 - y0
    cxcywh = np.array([x0 + w / np.float32(2), y0 + h / np.float32(2), w, h], dtype=np.float32)
    cx, cy, w_img, h_img = (cxcywh * np.float32(search_size) / np.float32(resize_factor)).tolist()
    half = 0.5 * search_size / resize_factor
    cx_img = cx + (float(state[0]) + 0.5 * float(state[2]) - half)
    cy_img = cy + (float(state[1]) + 0.5 * float(state[3]) - half)
    return [cx_img - 0.5 * w_img, cy_img - 0.5 * h_img, w_img, h_img]


def clip_box(box: Sequence[float], image_hw: Sequence[int], margin: int = 10) -> list[float]:
    """Clip [x, y, w, h] to the image, keeping at least ``margin`` pixels (MODEL.md §5.3 step 4)."""
    height, width = int(image_hw[0]), int(image_hw[1])
    x, y, w, h = (float(v) for v in box)
    x1, y1 = min(max(0, x), width - margin), min(max(0, y), height - margin)
    x2, y2 = min(max(margin, x + w), width), min(max(margin, y + h), height)
    return [float(x1), float(y1), float(max(margin, x2 - x1)), float(max(margin, y2 - y1))]


def _schedule_module():
    """``fartrack/tracker/schedule.py`` loaded by path (pure Python; importing the package would load torch)."""
    name = "_fartrack_standalone_schedule"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tracker" / "schedule.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def template_path_for(model_path: str | os.PathLike) -> Path:
    """Where the template graph of ``model.onnx`` lives: ``model.template.onnx`` next to it."""
    path = Path(model_path)
    return path.with_name(path.stem + ".template" + path.suffix)


def open_sessions(model_path: str | os.PathLike, threads: Optional[int] = None, spinning: bool = True):
    """ONNX Runtime sessions (CPU) of an exported model: the per-frame graph and its template graph.

    The per-frame graph gets ``threads`` intra-op threads (None: ONNX Runtime's choice). With ``spinning``
    its workers busy-wait between the operators of one call (a worker wake-up costs about as much as a small
    operator) and stop at the end of every call (``session.force_spinning_stop``), so they never compete
    with the caller's pre/post-processing between frames; measured 5-7 % faster per frame than no spinning
    (pico and tiny, 2 threads, interleaved runs). The template graph (one small convolution) runs on the
    calling thread only, with no worker pool to wake or to compete with the per-frame graph's.
    """
    import onnxruntime as ort

    path = Path(model_path)
    template_path = template_path_for(path)
    for file in (path, template_path):
        if not file.is_file():
            raise FileNotFoundError(f"ONNX model not found: {file}")

    def options(intra_threads: Optional[int], spin: bool):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        if intra_threads is not None:
            opts.intra_op_num_threads = int(intra_threads)
        return opts

    sessions = []
    for file, opts in ((path, options(threads, spinning)), (template_path, options(1, False))):
        try:
            sessions.append(ort.InferenceSession(str(file), opts, providers=["CPUExecutionProvider"]))
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError(f"{file}: not a loadable ONNX model ({err})") from err
    return sessions[0], sessions[1]


class _Template:
    """A stored template: its tokens (1, tz, C) and, once computed, its keep-mask (tz,) bool."""

    __slots__ = ("tokens", "keep")

    def __init__(self, tokens: np.ndarray) -> None:
        self.tokens = tokens
        self.keep: Optional[np.ndarray] = None


class OnnxTracker:
    """The FARTrack tracker loop around the exported graphs, in numpy + ONNX Runtime.

    ``template_cap`` bounds the template memory as in the PyTorch tracker (``None``: unbounded).
    """

    def __init__(self, model_path: str | os.PathLike, threads: Optional[int] = None, template_cap: Optional[int] = 256):
        path = Path(model_path)
        self.frame, self.template = open_sessions(path, threads)
        meta = self.frame.get_modelmeta().custom_metadata_map
        if "fartrack.depth" not in meta:
            raise ValueError(f"{path}: no fartrack metadata; export it with tracking/export_onnx.py")
        self.settings = {k[len("fartrack.") :]: json.loads(v) for k, v in meta.items() if k.startswith("fartrack.")}
        s = self.settings
        if s["prenum"] > 0:
            raise ValueError(f"{path}: the trajectory-token variant (PRENUM > 0) is not supported by this helper")
        self.template_cap = template_cap
        self.tz, self.slots = s["template_tokens"], s["num_templates"]
        self._feeds = {"slot_tokens": np.zeros((1, self.slots * self.tz, s["embed_dim"]), dtype=np.float32)}
        if s["sparse"]:
            self._feeds["slot_keep"] = np.ones(self.slots * self.tz, dtype=np.bool_)
        self.last_logits: Optional[np.ndarray] = None

    def initialize(self, image: np.ndarray, box: Sequence[float]) -> None:
        """Start a sequence on an H x W x 3 uint8 RGB ``image`` with box [x, y, w, h]."""
        _check_frame(image)
        schedule_module = _schedule_module()
        s = self.settings
        self.schedule = schedule_module.TemplateSchedule(self.slots, s["schedule"], s["warmup"])
        self.memory = schedule_module.TemplateStore(self.schedule, self.template_cap)
        self.state = [float(v) for v in box]
        self.memory.reset(self._make_template(image, self.state))

    def track(self, image: np.ndarray) -> list[float]:
        """Track one frame; returns [x, y, w, h] in image pixels."""
        if not hasattr(self, "memory"):
            raise RuntimeError("call initialize(frame, box) before track(frame)")
        _check_frame(image)
        s, tz = self.settings, self.tz
        crop, resize_factor = crop_around_box(image, self.state, s["search_factor"], s["search_size"])
        slots = self.schedule.slots(self.memory.count)
        stored = [self.memory[k] for k in slots]
        keep = self._feeds.get("slot_keep")
        for i, template in enumerate(stored):
            self._feeds["slot_tokens"][:, i * tz : (i + 1) * tz] = template.tokens
            if keep is not None:
                pruned = i != len(slots) - 1 and template.keep is not None
                keep[i * tz : (i + 1) * tz] = template.keep if pruned else True
        self._feeds["search"] = normalize(crop, s["mean"], s["std"])
        outputs = self.frame.run(None, self._feeds)
        logits = outputs[0][0]
        if keep is not None and stored[-1].keep is None:
            stored[-1].keep = _keep_from_scores(outputs[1][0], s["num_pruned"])
        box = map_box_to_image(decode(logits, s["bins"], s["range"], s["decode"]), self.state, resize_factor, s["search_size"])
        box = clip_box(box, image.shape[:2], s["clip_margin"])
        self.state = box
        self.memory.add(self._make_template(image, box))
        self.last_logits = logits
        return list(box)

    def _make_template(self, image: np.ndarray, box: Sequence[float]) -> _Template:
        s = self.settings
        crop, _ = crop_around_box(image, box, s["template_factor"], s["template_size"])
        return _Template(self.template.run(None, {"template": normalize(crop, s["mean"], s["std"])})[0])


def _keep_from_scores(scores: np.ndarray, num_pruned: int) -> np.ndarray:
    """Keep-mask (tz,) that prunes the ``num_pruned`` lowest scores (stable sort: ties prune the lower index)."""
    keep = np.ones(scores.shape[-1], dtype=np.bool_)
    if num_pruned > 0:
        keep[np.argsort(scores, kind="stable")[:num_pruned]] = False
    return keep


def _check_frame(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"frame must be an H x W x 3 uint8 RGB numpy array, got {type(image).__name__} "
            f"{getattr(image, 'dtype', '')} {tuple(getattr(image, 'shape', ()))}"
        )
