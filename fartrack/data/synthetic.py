"""Generated video sequences that need no download: a textured target moving over a textured background.

Two entry points:

* :func:`moving_box_sequence` -- one quick smooth-motion sequence as arrays (tests and benchmarks use it).
* :func:`render_sequence` -- one sequence of the synthetic benchmark: a short video with exact labels;
  :mod:`fartrack.data.synthetic_writer` writes many of them in the GOT-10k layout (or the LaSOT layout) so
  that the training dataset ``SYNTHETIC`` and the ``synthetic`` benchmark of ``tracking/test.py`` read them
  like real data.

Scene
    A background texture (optionally panned by a moving camera), a target (a textured rectangle or an
    ellipse-masked patch) moving smoothly and changing its size, aspect ratio and brightness, and -- from
    ``medium`` on -- distractor objects and occluders. Textures are procedural (fractal value noise, linear
    and radial gradients, stripes, checkerboards, random ellipses/polygons, smooth colour fields, with random
    colours); with ``photos`` some backgrounds and targets are crops of the user's own pictures.

Difficulty levels (:data:`DIFFICULTIES`, one frozen :class:`DifficultySpec` each)

    ==========  ==================================================================================
    ``easy``    smooth motion at moderate speed, size within ~0.75x-1.33x of the first frame, fixed
                aspect and brightness, a target whose colours and texture contrast with a smooth,
                low-saturation background; no distractors, no occlusion, always inside the frame.
    ``medium``  + size 0.5x-2x, aspect and brightness changes, a slowly panning camera, 1-2 distractor
                objects (some with the target's texture family and colours) and a bar that crosses
                in front of the target (partial occlusion).
    ``hard``    + a large static occluder that hides the target completely for some frames (labelled
                absent), partial exits from the frame, 2-4 distractors (half of them look like the
                target, some pass in front of it), faster and more frequent speed changes, target
                and background colours drawn independently.
    ==========  ==================================================================================

Labels (per frame, computed from the rendered pixels)
    ``box``: the tight box ``[x, y, w, h]`` of the target's pixels inside the frame, occluded or not (the
    full extent, clipped to the image). ``cover``: the visible eighths of the target's area, ``ceil(8 *
    visible / area)`` where ``area`` counts every pixel of the target (outside the frame too), so 0 means no
    visible pixel. ``absent``: no visible pixel (fully occluded or outside the frame); the box is still the
    true one. Frame 0 always shows the whole target, unoccluded.

Determinism
    Sequence ``index`` of ``seed`` draws everything from ``numpy.random.SeedSequence([seed, index])``, so it
    does not depend on how many sequences are made or by which process; the same parameters give
    byte-identical files. In the writer, train sequence ``k`` (1-based) is index ``k - 1`` and
    val sequence ``k`` is index ``VAL_INDEX_OFFSET + k - 1`` (disjoint).
"""

from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "DIFFICULTIES",
    "VAL_INDEX_OFFSET",
    "DifficultySpec",
    "SyntheticDataError",
    "SyntheticSequence",
    "moving_box_sequence",
    "render_sequence",
]

PathLike = Union[str, "os.PathLike[str]"]


def moving_box_sequence(
    num_frames: int = 60,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-motion sequence: ``frames`` (T, H, W, 3) uint8 RGB and ``boxes`` (T, 4) float64 [x, y, w, h].

    The target is a high-contrast noise patch (about a sixth of the frame) whose centre follows a slow
    Lissajous path and whose size breathes by +/-15 %, over a low-frequency noise background.
    Deterministic for a given seed.
    """
    if num_frames < 1 or height < 16 or width < 16:
        raise ValueError(f"need num_frames >= 1 and a frame of at least 16x16, got {num_frames}, {height}x{width}")
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    background = np.kron(coarse, np.ones((8, 8, 1), dtype=np.float32))[:height, :width]
    texture = rng.integers(0, 256, size=(height, width, 3)).astype(np.uint8)
    base_w, base_h = width / 6.0, height / 5.0
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    boxes = np.empty((num_frames, 4), dtype=np.float64)
    for t in range(num_frames):
        phase = 2 * np.pi * t / max(num_frames, 2)
        scale = 1.0 + 0.15 * np.sin(phase)
        w, h = base_w * scale, base_h * scale
        cx = width / 2 + width / 5 * np.sin(phase)
        cy = height / 2 + height / 6 * np.sin(2 * phase)
        x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
        x1, y1 = int(round(cx + w / 2)), int(round(cy + h / 2))
        frame = background.astype(np.uint8)
        frame[y0:y1, x0:x1] = texture[: y1 - y0, : x1 - x0]
        frames[t] = frame
        boxes[t] = (x0, y0, x1 - x0, y1 - y0)
    return frames, boxes


# ================================================================================================ difficulty
@dataclass(frozen=True)
class DifficultySpec:
    """What one difficulty level enables (see the module docstring for the levels).

    Speeds are in target sizes (``sqrt(w * h)``) per frame; ``*_changes`` count the random knots of a smooth
    curve per 80 frames (more knots = faster changes).

    Attributes:
        name: level name.
        target_size: first-frame target size range, as a fraction of ``min(width, height)``.
        speed: target speed range.
        speed_changes: knots of the speed and turning curves.
        turn: largest heading change per frame (radians).
        scale: range of the target size relative to frame 0.
        aspect: range of the aspect-ratio change relative to frame 0.
        brightness: largest relative brightness change of the target.
        distractors: (min, max) number of other moving textured objects.
        similar_distractors: probability that a distractor copies the target's texture family and colours.
        front_distractors: probability that a distractor passes in front of the target.
        crossing_bar: a bar narrower than the target crosses in front of it (partial occlusion).
        full_occluder: a static object larger than the target hides it completely for some frames.
        exit_margin: how far (in target sizes) the target may leave the frame: 0 keeps it inside, 0.5 lets
            its centre reach the border.
        camera_pan: largest background pan in pixels per frame.
        distinct_target: target colours and texture chosen to contrast with a smooth background.
    """

    name: str
    target_size: Tuple[float, float]
    speed: Tuple[float, float]
    speed_changes: int
    turn: float
    scale: Tuple[float, float]
    aspect: Tuple[float, float]
    brightness: float
    distractors: Tuple[int, int]
    similar_distractors: float
    front_distractors: float
    crossing_bar: bool
    full_occluder: bool
    exit_margin: float
    camera_pan: float
    distinct_target: bool


DIFFICULTIES: Mapping[str, DifficultySpec] = {
    "easy": DifficultySpec(
        name="easy", target_size=(0.15, 0.3), speed=(0.03, 0.15), speed_changes=3, turn=0.06,
        scale=(0.75, 1.33), aspect=(1.0, 1.0), brightness=0.0, distractors=(0, 0), similar_distractors=0.0,
        front_distractors=0.0, crossing_bar=False, full_occluder=False, exit_margin=0.0, camera_pan=0.0,
        distinct_target=True,
    ),
    "medium": DifficultySpec(
        name="medium", target_size=(0.1, 0.25), speed=(0.03, 0.25), speed_changes=5, turn=0.12,
        scale=(0.5, 2.0), aspect=(0.75, 1.33), brightness=0.25, distractors=(1, 2), similar_distractors=0.3,
        front_distractors=0.0, crossing_bar=True, full_occluder=False, exit_margin=0.0, camera_pan=1.0,
        distinct_target=True,
    ),
    "hard": DifficultySpec(
        name="hard", target_size=(0.1, 0.25), speed=(0.0, 0.4), speed_changes=8, turn=0.25,
        scale=(0.5, 2.0), aspect=(0.67, 1.5), brightness=0.35, distractors=(2, 4), similar_distractors=0.5,
        front_distractors=0.3, crossing_bar=True, full_occluder=True, exit_margin=0.5, camera_pan=2.0,
        distinct_target=False,
    ),
}

#: Index of val sequence 1 in :func:`render_sequence` (train sequence ``k`` is index ``k - 1``).
VAL_INDEX_OFFSET = 1_000_000

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
_REFERENCE_FRAMES = 80  # the *_changes knots of a DifficultySpec are per this many frames


class SyntheticDataError(ValueError):
    """Bad generator parameters or an output folder that cannot be used; the message names it."""


@dataclass
class SyntheticSequence:
    """One rendered sequence and its labels.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB.
        boxes: (T, 4) float64 ``[x, y, w, h]``: tight box of the target's pixels in the frame (occluded or not).
        absent: (T,) bool, no visible target pixel.
        cover: (T,) int, visible eighths of the target's area, 0..8.
        target_masks: (T, H, W) bool, the visible target pixels.
        target_area: (T,) int, the target's pixel count at full extent (outside the frame and occluded too).
        in_frame_area: (T,) int, the target's pixels inside the frame, occluded or not.
        description: what the target looks like (e.g. ``"stripes ellipse"``).
    """

    frames: np.ndarray
    boxes: np.ndarray
    absent: np.ndarray
    cover: np.ndarray
    target_masks: np.ndarray
    target_area: np.ndarray
    in_frame_area: np.ndarray
    description: str = ""

    def __len__(self) -> int:
        return len(self.frames)


# ================================================================================================ textures
def _smooth_curve(rng: np.random.Generator, num_frames: int, knots: int, lo: float, hi: float,
                  start: Optional[float] = None) -> np.ndarray:
    """``num_frames`` values in ``[lo, hi]`` through ``knots + 1`` random knots, cosine-interpolated."""
    knots = max(1, int(knots))
    values = rng.uniform(lo, hi, size=knots + 1)
    if start is not None:
        values[0] = start
    pos = np.linspace(0.0, knots, num_frames) if num_frames > 1 else np.zeros(1)
    i = np.minimum(np.floor(pos).astype(np.int64), knots - 1)
    w = (1.0 - np.cos(np.pi * (pos - i))) / 2.0
    return values[i] * (1.0 - w) + values[i + 1] * w


def _knots(changes: int, num_frames: int) -> int:
    return max(1, int(round(changes * num_frames / _REFERENCE_FRAMES)))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))) * 255.0


@dataclass(frozen=True)
class _Look:
    """Colour statistics of a texture: base hue, saturation and value ranges."""

    hue: float
    sat: Tuple[float, float]
    val: Tuple[float, float]
    hue_spread: float = 0.08


def _palette(rng: np.random.Generator, look: _Look, n: int) -> np.ndarray:
    """``n`` RGB colours (float32, 0..255) around ``look.hue``, values spread over ``look.val``."""
    vals = np.linspace(look.val[0], look.val[1], n) if n > 1 else np.array([np.mean(look.val)])
    vals = vals[rng.permutation(n)]
    cols = [_hsv(look.hue + rng.uniform(-look.hue_spread, look.hue_spread), rng.uniform(*look.sat), v) for v in vals]
    return np.asarray(cols, dtype=np.float32)


def _colourize(field_: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map a field in [0, 1] to colours, linearly through ``palette`` (k, 3); uint8 (h, w, 3)."""
    k = len(palette)
    pos = np.clip(field_, 0.0, 1.0) * (k - 1)
    i = np.minimum(pos.astype(np.int32), k - 2) if k > 1 else np.zeros(pos.shape, np.int32)
    f = (pos - i)[..., None] if k > 1 else np.zeros(pos.shape + (1,), np.float32)
    out = palette[i] * (1.0 - f) + palette[np.minimum(i + 1, k - 1)] * f
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _fractal(rng: np.random.Generator, h: int, w: int, feature: float, octaves: int = 4,
             persistence: float = 0.5) -> np.ndarray:
    """Multi-octave value noise in [0, 1], (h, w) float32; ``feature`` is the coarsest cell size in pixels."""
    import cv2

    acc = np.zeros((h, w), np.float32)
    amp = 1.0
    for o in range(octaves):
        cell = max(feature / (2 ** o), 2.0)
        grid = rng.random((int(h / cell) + 2, int(w / cell) + 2), dtype=np.float32)
        acc += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= persistence
    return _normalise(acc)


def _coords(h: int, w: int, angle: float) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by ``angle`` (float32 (h, w) each)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    return x * c + y * s, -x * s + y * c


def _tex_fractal(rng, h, w, look, feature):
    field_ = _fractal(rng, h, w, feature, int(rng.integers(3, 6)), rng.uniform(0.4, 0.65))
    return _colourize(field_, _palette(rng, look, int(rng.integers(2, 5))))


def _tex_gradient(rng, h, w, look, feature):
    if rng.random() < 0.5:
        u, _ = _coords(h, w, rng.uniform(0, 2 * np.pi))
        field_ = _normalise(u)
    else:
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        field_ = _normalise(np.hypot(x - cx, y - cy))
    field_ = 0.85 * field_ + 0.15 * _fractal(rng, h, w, feature, 3)
    return _colourize(field_, _palette(rng, look, int(rng.integers(2, 4))))


def _tex_stripes(rng, h, w, look, feature):
    u, _ = _coords(h, w, rng.uniform(0, np.pi))
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * u / max(feature, 3.0) + rng.uniform(0, 2 * np.pi))
    field_ = np.clip(0.5 + (wave - 0.5) * rng.uniform(1.0, 6.0), 0.0, 1.0)
    return _colourize(field_, _palette(rng, look, 2))


def _tex_checker(rng, h, w, look, feature):
    u, v = _coords(h, w, rng.uniform(0, np.pi / 2))
    cell = max(feature, 3.0)
    parity = (np.floor(u / cell) + np.floor(v / cell)) % 2
    field_ = 0.85 * parity + 0.15 * _fractal(rng, h, w, cell, 2)
    return _colourize(field_.astype(np.float32), _palette(rng, look, 2))


def _tex_shapes(rng, h, w, look, feature):
    import cv2

    colours = _palette(rng, look, int(rng.integers(3, 6)))
    image = np.empty((h, w, 3), np.uint8)
    image[:] = np.clip(colours[0], 0, 255).astype(np.uint8)
    count = int(np.clip(h * w / max(feature, 2.0) ** 2 * rng.uniform(0.5, 1.5), 3, 80))
    for _ in range(count):
        colour = tuple(float(c) for c in colours[int(rng.integers(1, len(colours)))])
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        radius = max(feature * rng.uniform(0.3, 1.0), 1.5)
        if rng.random() < 0.5:
            axes = (int(radius), int(max(radius * rng.uniform(0.4, 1.0), 1)))
            cv2.ellipse(image, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        else:
            k = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = radius * rng.uniform(0.5, 1.0, k)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).round().astype(np.int32)
            cv2.fillPoly(image, [pts], colour, cv2.LINE_AA)
    return image


def _tex_field(rng, h, w, look, feature):
    base = _hsv(look.hue, float(np.mean(look.sat)), float(np.mean(look.val)))
    spread = rng.uniform(40.0, 110.0)
    channels = [(_fractal(rng, h, w, feature * 2, 3) - 0.5) * spread for _ in range(3)]
    return np.clip(base[None, None, :] + np.stack(channels, -1) + 0.5, 0, 255).astype(np.uint8)


_TEXTURES: Dict[str, Callable[..., np.ndarray]] = {
    "fractal": _tex_fractal,
    "gradient": _tex_gradient,
    "stripes": _tex_stripes,
    "checker": _tex_checker,
    "shapes": _tex_shapes,
    "field": _tex_field,
}
_SMOOTH_FAMILIES = ("fractal", "gradient", "field")
_TARGET_FAMILIES = ("stripes", "checker", "shapes", "fractal")


def _texture(rng: np.random.Generator, family: str, h: int, w: int, look: _Look, feature: float) -> np.ndarray:
    """A (h, w, 3) uint8 RGB texture of ``family`` with colours from ``look``."""
    return _TEXTURES[family](rng, h, w, look, float(feature))


# ================================================================================================ photos
def _photo_files(photos: Union[None, PathLike, Sequence[PathLike]]) -> Tuple[str, ...]:
    """The image files of a ``photos`` folder (sorted, recursive) or of an explicit list; () for None."""
    if photos is None:
        return ()
    if isinstance(photos, (str, os.PathLike)):
        folder = Path(photos)
        if not folder.is_dir():
            raise SyntheticDataError(f"photos folder {os.fspath(folder)} not found")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        if not files:
            raise SyntheticDataError(f"photos folder {os.fspath(folder)} holds no .jpg/.jpeg/.png image")
        return tuple(os.fspath(p) for p in files)
    return tuple(os.fspath(p) for p in photos)


@lru_cache(maxsize=16)
def _load_photo(path: str) -> np.ndarray:
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None or image.size == 0 or min(image.shape[:2]) < 8:
        raise SyntheticDataError(f"photo {path} cannot be read as an image (or is smaller than 8x8)")
    image = np.ascontiguousarray(image[:, :, ::-1])
    image.setflags(write=False)
    return image


def _photo_crop(rng: np.random.Generator, photos: Tuple[str, ...], h: int, w: int,
                fraction: Tuple[float, float]) -> np.ndarray:
    """A random crop of a random photo with the aspect of (h, w), resized to it; ``fraction`` bounds the crop's
    share of the largest such crop."""
    import cv2

    photo = _load_photo(photos[int(rng.integers(0, len(photos)))])
    ph, pw = photo.shape[:2]
    biggest = min(pw / w, ph / h)
    s = biggest * rng.uniform(*fraction)
    cw, ch = max(1, min(pw, int(w * s))), max(1, min(ph, int(h * s)))
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if cw > w else cv2.INTER_LINEAR
    return cv2.resize(crop, (w, h), interpolation=interp)


# ================================================================================================ scene
@dataclass
class _Sprite:
    """An object drawn on every frame: texture at its largest drawn size, shape, per-frame integer box."""

    texture: np.ndarray
    ellipse: bool
    boxes: np.ndarray  # (T, 4) int64 x0, y0, w, h in frame pixels (may extend past the frame)
    brightness: Optional[np.ndarray] = None  # (T,) factor, None = unchanged


@dataclass
class _Scene:
    background: np.ndarray  # canvas (H + 2P, W + 2P, 3)
    offsets: np.ndarray  # (T, 2) int64 pan offsets (x, y) into the canvas
    width: int
    height: int
    target: _Sprite
    behind: List[_Sprite] = field(default_factory=list)
    front: List[_Sprite] = field(default_factory=list)
    description: str = ""


def _sizes(rng: np.random.Generator, num_frames: int, width: int, height: int, base_range: Tuple[float, float],
           scale: Tuple[float, float], aspect: Tuple[float, float], changes: int) -> np.ndarray:
    """(T, 2) float widths and heights: a random first size and aspect, then smooth scale / aspect changes."""
    knots = _knots(changes, num_frames)
    base = rng.uniform(*base_range) * min(width, height)
    ar0 = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    log_scale = _smooth_curve(rng, num_frames, knots, math.log(scale[0]), math.log(scale[1]), start=0.0)
    log_aspect = _smooth_curve(rng, num_frames, knots, math.log(aspect[0]), math.log(aspect[1]), start=0.0)
    size = base * np.exp(log_scale)
    ar = ar0 * np.exp(log_aspect)
    wh = np.stack([size * np.sqrt(ar), size / np.sqrt(ar)], 1)
    # keep every size within 85 % of the frame (shrinks the whole sequence uniformly, so ratios stay)
    fit = min(1.0, 0.85 * width / wh[:, 0].max(), 0.85 * height / wh[:, 1].max())
    return np.maximum(wh * fit, 6.0)


def _trajectory(rng: np.random.Generator, wh: np.ndarray, width: int, height: int, speed: Tuple[float, float],
                changes: int, turn: float, exit_margin: float) -> np.ndarray:
    """(T, 2) centres: heading and speed change smoothly, bouncing off the allowed area (frame 0 inside)."""
    num_frames = len(wh)
    knots = _knots(changes, num_frames)
    frame = np.array([width, height], np.float64)
    lo = np.maximum(wh / 2 - exit_margin * wh, 1.0)
    hi = np.minimum(frame - wh / 2 + exit_margin * wh, frame - 1.0)
    hi = np.maximum(hi, lo)
    size = np.sqrt(wh[:, 0] * wh[:, 1])
    speeds = _smooth_curve(rng, num_frames, knots, *speed) * size
    turns = _smooth_curve(rng, num_frames, knots, -turn, turn)
    theta = rng.uniform(0, 2 * np.pi)
    centre = np.array([rng.uniform(wh[0, 0] / 2, width - wh[0, 0] / 2),
                       rng.uniform(wh[0, 1] / 2, height - wh[0, 1] / 2)])
    out = np.empty((num_frames, 2))
    out[0] = centre
    for t in range(1, num_frames):
        theta += turns[t]
        centre = centre + speeds[t] * np.array([math.cos(theta), math.sin(theta)])
        for a in (0, 1):
            if centre[a] < lo[t, a] or centre[a] > hi[t, a]:
                edge = lo[t, a] if centre[a] < lo[t, a] else hi[t, a]
                centre[a] = min(max(2 * edge - centre[a], lo[t, a]), hi[t, a])
                theta = (np.pi - theta) if a == 0 else -theta
        out[t] = centre
    return out


def _int_boxes(centres: np.ndarray, wh: np.ndarray, width: int, height: int, inside: bool) -> np.ndarray:
    """(T, 4) int64 boxes; ``inside`` keeps them within the frame."""
    w = np.maximum(np.round(wh[:, 0]), 4).astype(np.int64)
    h = np.maximum(np.round(wh[:, 1]), 4).astype(np.int64)
    x = np.round(centres[:, 0] - w / 2).astype(np.int64)
    y = np.round(centres[:, 1] - h / 2).astype(np.int64)
    if inside:
        x = np.clip(x, 0, np.maximum(width - w, 0))
        y = np.clip(y, 0, np.maximum(height - h, 0))
    return np.stack([x, y, w, h], 1)


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two integer xywh boxes intersect."""
    return bool(a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])


def _looks(rng: np.random.Generator, spec: DifficultySpec) -> Tuple[_Look, _Look]:
    """(background look, target look): contrasting hues and statistics when ``spec.distinct_target``."""
    hue = rng.random()
    if spec.distinct_target:
        background = _Look(hue, (0.1, 0.45), (0.35, 0.75))
        target = _Look(hue + rng.uniform(0.3, 0.7), (0.6, 1.0), (0.2, 1.0), 0.05)
    else:
        background = _Look(hue, (0.1, 0.9), (0.15, 0.95))
        target = _Look(rng.random(), (0.1, 0.95), (0.15, 1.0))
    return background, target


def _object_texture(rng: np.random.Generator, family: str, wh: np.ndarray, look: _Look,
                    photos: Tuple[str, ...], photo_chance: float) -> np.ndarray:
    """Texture of a moving object at its largest drawn size (features scale with the object)."""
    w, h = int(math.ceil(wh[:, 0].max())), int(math.ceil(wh[:, 1].max()))
    if photos and rng.random() < photo_chance:
        return _photo_crop(rng, photos, h, w, (0.1, 0.4))
    return _texture(rng, family, h, w, look, rng.uniform(0.15, 0.45) * min(w, h))


def _pan_offsets(rng: np.random.Generator, spec: DifficultySpec, num_frames: int, width: int,
                 height: int) -> Tuple[int, np.ndarray]:
    """(margin P, (T, 2) int offsets in [0, 2P]) of a smoothly panning camera."""
    margin = int(min(spec.camera_pan * num_frames / 4.0, 0.2 * min(width, height)))
    if margin <= 0:
        return 0, np.zeros((num_frames, 2), np.int64)
    curves = [_smooth_curve(rng, num_frames, 2, 0.0, 2.0 * margin, start=float(margin)) for _ in range(2)]
    return margin, np.round(np.stack(curves, 1)).astype(np.int64)


def _crossing_bar(rng: np.random.Generator, target: np.ndarray, num_frames: int, look: _Look) -> Optional[_Sprite]:
    """A bar narrower than the target crossing it at a random frame (None when no frame fits)."""
    for _ in range(12):
        tc = int(rng.integers(num_frames // 4, max(num_frames * 3 // 4, num_frames // 4 + 1)))
        x, y, w, h = (float(v) for v in target[tc])
        vertical = rng.random() < 0.5
        thick = (w if vertical else h) * rng.uniform(0.25, 0.55)
        length = (h if vertical else w) * rng.uniform(1.8, 3.0)
        bw, bh = (thick, length) if vertical else (length, thick)
        speed = rng.uniform(0.06, 0.15) * math.sqrt(w * h) * (1 if rng.random() < 0.5 else -1)
        t = np.arange(num_frames) - tc
        cx = x + w / 2 + (speed * t if vertical else rng.uniform(-0.3, 0.3) * speed * t)
        cy = y + h / 2 + (rng.uniform(-0.3, 0.3) * speed * t if vertical else speed * t)
        boxes = np.stack([np.round(cx - bw / 2), np.round(cy - bh / 2),
                          np.full(num_frames, round(bw)), np.full(num_frames, round(bh))], 1).astype(np.int64)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 2)
        if not _overlaps(boxes[0], target[0]):
            texture = _texture(rng, str(rng.choice(list(_TEXTURES))), int(boxes[0, 3]), int(boxes[0, 2]), look,
                               rng.uniform(0.3, 1.0) * float(min(boxes[0, 2:])))
            return _Sprite(texture, False, boxes)
    return None


def _full_occluder(rng: np.random.Generator, target: np.ndarray, offsets: np.ndarray, look: _Look,
                   photos: Tuple[str, ...]) -> Optional[_Sprite]:
    """A static object (moving with the background) centred on the target at a random frame and larger
    than it, so the target is hidden there (None when no frame fits)."""
    num_frames = len(target)
    for _ in range(12):
        tc = int(rng.integers(num_frames // 4, max(num_frames * 3 // 4, num_frames // 4 + 1)))
        x, y, w, h = (int(v) for v in target[tc])
        ellipse = bool(rng.random() < 0.3)
        grow = (1.6, 2.0) if ellipse else (1.3, 1.9)  # an ellipse needs > sqrt(2) to cover the target's corners
        ow, oh = int(math.ceil(w * rng.uniform(*grow))) + 2, int(math.ceil(h * rng.uniform(*grow))) + 2
        ox, oy = x + w // 2 - ow // 2, y + h // 2 - oh // 2
        shift = offsets[tc] - offsets  # background motion relative to frame tc
        boxes = np.stack([ox + shift[:, 0], oy + shift[:, 1], np.full(num_frames, ow), np.full(num_frames, oh)], 1)
        if not _overlaps(boxes[0], target[0]):
            texture = _object_texture(rng, str(rng.choice(list(_TEXTURES))),
                                      np.array([[ow, oh]], np.float64), look, photos, 0.5)
            return _Sprite(texture, ellipse, boxes.astype(np.int64))
    return None


def _plan(seed: int, index: int, spec: DifficultySpec, num_frames: int, width: int, height: int,
          photos: Tuple[str, ...]) -> _Scene:
    """Every random choice of one sequence: textures, trajectories, occluders."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    bg_look, target_look = _looks(rng, spec)
    margin, offsets = _pan_offsets(rng, spec, num_frames, width, height)
    ch, cw = height + 2 * margin, width + 2 * margin
    bg_families = _SMOOTH_FAMILIES if spec.distinct_target else tuple(_TEXTURES)
    if photos and rng.random() < 0.5:
        background = _photo_crop(rng, photos, ch, cw, (0.5, 1.0))
    else:
        background = _texture(rng, str(rng.choice(bg_families)), ch, cw, bg_look,
                              rng.uniform(0.05, 0.25) * min(width, height))

    # target
    families = [f for f in _TARGET_FAMILIES if f != "fractal"] if spec.distinct_target else list(_TEXTURES)
    family = str(rng.choice(families))
    ellipse = bool(rng.random() < 0.5)
    wh = _sizes(rng, num_frames, width, height, spec.target_size, spec.scale, spec.aspect, spec.speed_changes)
    centres = _trajectory(rng, wh, width, height, spec.speed, spec.speed_changes, spec.turn, spec.exit_margin)
    target_boxes = _int_boxes(centres, wh, width, height, inside=spec.exit_margin == 0)
    brightness = None
    if spec.brightness > 0:
        brightness = _smooth_curve(rng, num_frames, _knots(spec.speed_changes, num_frames),
                                   1 - spec.brightness, 1 + spec.brightness, start=1.0)
    texture = _object_texture(rng, family, target_boxes[:, 2:].astype(np.float64), target_look, photos, 0.3)
    target = _Sprite(texture, ellipse, target_boxes, brightness)
    scene = _Scene(background, offsets, width, height, target,
                   description=f"{family} {'ellipse' if ellipse else 'rectangle'}")

    # distractors: other moving objects, some with the target's look; some pass in front of it
    for _ in range(int(rng.integers(spec.distractors[0], spec.distractors[1] + 1))):
        similar = rng.random() < spec.similar_distractors
        d_family = family if similar else str(rng.choice(list(_TEXTURES)))
        d_look = _Look(target_look.hue + rng.uniform(-0.05, 0.05), target_look.sat, target_look.val, 0.05) \
            if similar else _Look(rng.random(), (0.1, 0.95), (0.15, 1.0))
        d_wh = _sizes(rng, num_frames, width, height, spec.target_size, (0.8, 1.25), spec.aspect, 3)
        d_centres = _trajectory(rng, d_wh, width, height, spec.speed, spec.speed_changes, spec.turn, 0.5)
        d_boxes = _int_boxes(d_centres, d_wh, width, height, inside=False)
        d_texture = _object_texture(rng, d_family, d_boxes[:, 2:].astype(np.float64), d_look, photos, 0.3)
        sprite = _Sprite(d_texture, bool(rng.random() < 0.5), d_boxes)
        in_front = rng.random() < spec.front_distractors and not _overlaps(d_boxes[0], target_boxes[0])
        (scene.front if in_front else scene.behind).append(sprite)

    occluder_look = _Look(rng.random(), (0.1, 0.9), (0.15, 0.95))
    if spec.full_occluder:
        occluder = _full_occluder(rng, target_boxes, offsets, occluder_look, photos)
        if occluder is not None:
            scene.front.append(occluder)
    if spec.crossing_bar:
        bar = _crossing_bar(rng, target_boxes, num_frames, occluder_look)
        if bar is not None:
            scene.front.append(bar)
    return scene


# ================================================================================================ rendering
@lru_cache(maxsize=512)
def _ellipse_mask(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    mask = ((x + 0.5 - w / 2) / (w / 2)) ** 2 + ((y + 0.5 - h / 2) / (h / 2)) ** 2 <= 1.0
    mask.setflags(write=False)
    return mask


def _sprite_pixels(sprite: _Sprite, t: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(patch (h, w, 3) uint8, mask (h, w) bool or None for a full rectangle) of ``sprite`` at frame ``t``."""
    import cv2

    _, _, w, h = (int(v) for v in sprite.boxes[t])
    th, tw = sprite.texture.shape[:2]
    interp = cv2.INTER_AREA if (w < tw and h < th) else cv2.INTER_LINEAR
    patch = cv2.resize(sprite.texture, (w, h), interpolation=interp)
    if sprite.brightness is not None and sprite.brightness[t] != 1.0:
        patch = cv2.convertScaleAbs(patch, alpha=float(sprite.brightness[t]))
    return patch, (_ellipse_mask(w, h) if sprite.ellipse else None)


def _clip(box: np.ndarray, width: int, height: int) -> Optional[Tuple[slice, slice, slice, slice]]:
    """(frame rows, frame cols, patch rows, patch cols) of the part of ``box`` inside the frame, or None."""
    x, y, w, h = (int(v) for v in box)
    fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return slice(fy0, fy1), slice(fx0, fx1), slice(fy0 - y, fy1 - y), slice(fx0 - x, fx1 - x)


def _draw(frame: np.ndarray, sprite: _Sprite, t: int, coverage: Optional[np.ndarray] = None) -> None:
    """Draw ``sprite`` at frame ``t`` into ``frame`` and mark its pixels in ``coverage`` (when given)."""
    region = _clip(sprite.boxes[t], frame.shape[1], frame.shape[0])
    if region is None:
        return
    fr, fc, pr, pc = region
    patch, mask = _sprite_pixels(sprite, t)
    if mask is None:
        frame[fr, fc] = patch[pr, pc]
        if coverage is not None:
            coverage[fr, fc] = True
        return
    m = mask[pr, pc]
    np.copyto(frame[fr, fc], patch[pr, pc], where=m[..., None])
    if coverage is not None:
        coverage[fr, fc] |= m


@dataclass
class _FrameLabels:
    box: Optional[np.ndarray]  # tight box of the in-frame target pixels (None when none is in the frame)
    visible: np.ndarray  # (H, W) bool visible target pixels
    area: int
    in_frame: int


def _target_labels(scene: _Scene, t: int, front: np.ndarray) -> _FrameLabels:
    """The target's labels at frame ``t`` given the pixels covered by objects in front of it."""
    target = scene.target
    _, _, w, h = (int(v) for v in target.boxes[t])
    full = _ellipse_mask(w, h) if target.ellipse else None
    area = int(full.sum()) if full is not None else w * h
    visible = np.zeros((scene.height, scene.width), bool)
    region = _clip(target.boxes[t], scene.width, scene.height)
    if region is None:
        return _FrameLabels(None, visible, area, 0)
    fr, fc, pr, pc = region
    inside = full[pr, pc] if full is not None else np.ones((fr.stop - fr.start, fc.stop - fc.start), bool)
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    if len(rows) == 0:
        return _FrameLabels(None, visible, area, 0)
    box = np.array([fc.start + cols[0], fr.start + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1],
                   np.float64)
    visible[fr, fc] = inside & ~front[fr, fc]
    return _FrameLabels(box, visible, area, int(inside.sum()))


def _frames(scene: _Scene, draw_target: bool = True) -> Iterator[Tuple[np.ndarray, _FrameLabels]]:
    """(frame (H, W, 3) uint8 RGB, labels) for every frame of ``scene``."""
    W, H = scene.width, scene.height
    for t in range(len(scene.offsets)):
        ox, oy = (int(v) for v in scene.offsets[t])
        frame = scene.background[oy:oy + H, ox:ox + W].copy()
        for sprite in scene.behind:
            _draw(frame, sprite, t)
        if draw_target:
            _draw(frame, scene.target, t)
        front = np.zeros((H, W), bool)
        for sprite in scene.front:
            _draw(frame, sprite, t, front)
        yield frame, _target_labels(scene, t, front)


def _cover(visible: int, area: int) -> int:
    """Visible eighths, rounded up: 0 only when nothing is visible, 8 above 7/8."""
    return 0 if visible <= 0 else min(8, (8 * visible + area - 1) // area)


def _spec(difficulty: str) -> DifficultySpec:
    if difficulty not in DIFFICULTIES:
        raise SyntheticDataError(f"unknown difficulty {difficulty!r}; choose one of {', '.join(DIFFICULTIES)}")
    return DIFFICULTIES[difficulty]


def _check_size(num_frames: int, size: Tuple[int, int]) -> Tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SyntheticDataError(f"size must be (width, height), got {size!r}") from None
    if width < 32 or height < 32:
        raise SyntheticDataError(f"frame size must be at least 32x32, got {width}x{height}")
    if int(num_frames) < 1:
        raise SyntheticDataError(f"num_frames must be >= 1, got {num_frames}")
    return width, height


def _iter_sequence(seed: int, index: int, difficulty: str, num_frames: int, size: Tuple[int, int],
                   photos: Tuple[str, ...], draw_target: bool = True):
    """(target description, iterator of (frame, box, absent, cover, labels) per frame); a frame with no
    target pixel inside the image repeats the previous box."""
    width, height = _check_size(num_frames, size)
    scene = _plan(seed, index, _spec(difficulty), int(num_frames), width, height, photos)

    def frames():
        last = None
        for frame, labels in _frames(scene, draw_target):
            box = labels.box if labels.box is not None else last
            if box is None:  # cannot happen (frame 0 shows the whole target); keep a valid row anyway
                box = np.array([0.0, 0.0, 1.0, 1.0])
            last = box
            visible = int(labels.visible.sum())
            yield frame, box, visible == 0, _cover(visible, labels.area), labels

    return scene.description, frames()


def render_sequence(
    seed: int,
    index: int,
    difficulty: str = "easy",
    num_frames: int = 80,
    size: Tuple[int, int] = (320, 240),
    photos: Union[None, PathLike, Sequence[PathLike]] = None,
    *,
    draw_target: bool = True,
) -> SyntheticSequence:
    """Sequence ``index`` of ``seed`` at ``difficulty``: frames and exact labels (see the module docstring).

    ``size`` is (width, height); ``photos`` a folder (or list) of pictures to crop some backgrounds and
    targets from. ``draw_target=False`` renders the very same scene without the target (labels unchanged),
    which shows what lies under it.
    """
    description, frames = _iter_sequence(seed, index, difficulty, num_frames, size, _photo_files(photos),
                                         draw_target)
    out: Dict[str, list] = {k: [] for k in ("frames", "boxes", "absent", "cover", "masks", "area", "in_frame")}
    for frame, box, absent, cover, labels in frames:
        out["frames"].append(frame)
        out["boxes"].append(box)
        out["absent"].append(absent)
        out["cover"].append(cover)
        out["masks"].append(labels.visible)
        out["area"].append(labels.area)
        out["in_frame"].append(labels.in_frame)
    return SyntheticSequence(
        frames=np.stack(out["frames"]),
        boxes=np.stack(out["boxes"]).astype(np.float64),
        absent=np.asarray(out["absent"], bool),
        cover=np.asarray(out["cover"], np.int64),
        target_masks=np.stack(out["masks"]),
        target_area=np.asarray(out["area"], np.int64),
        in_frame_area=np.asarray(out["in_frame"], np.int64),
        description=description,
    )


