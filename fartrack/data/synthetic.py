"""Generated video sequences that need no download: a textured target moving over a textured background."""

from __future__ import annotations

import numpy as np


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
