"""Frame I/O for evaluation and the video demo: image files, video files or frame folders in, annotated video
and a CSV of boxes out.

Frames are returned as H x W x 3 RGB uint8 (what :class:`fartrack.tracker.FARTracker` takes). Reading
failures raise :class:`FrameReadError` naming the file (and the frame number for videos). Outputs are
written to a temporary file next to the target and renamed into place when complete.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from fartrack.utils.io import atomic_write_text

__all__ = [
    "FrameReadError",
    "FrameSource",
    "AnnotatedVideoWriter",
    "display_available",
    "draw_box",
    "format_box_csv",
    "open_frame_source",
    "read_image",
    "run_video_demo",
    "write_box_csv",
]

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class FrameReadError(ValueError):
    """An image or video frame could not be read or decoded; the message names the file."""


def read_image(path: PathLike) -> np.ndarray:
    """Decode an image file to H x W x 3 RGB uint8 (grayscale is replicated to 3 channels)."""
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise FrameReadError(f"cannot read frame {path}: {exc.strerror or exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FrameReadError(f"cannot decode frame {path} ({data.size} bytes): not a readable JPEG/PNG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class FrameSource:
    """Frames of a video file (read through OpenCV) or of a folder of images (natural name order).

    Iterating yields RGB uint8 frames. ``len()`` is exact for folders and OpenCV's frame-count estimate
    for videos (used for progress only). ``fps`` is the video's rate (30 for folders or when unknown).
    """

    def __init__(self, source: PathLike) -> None:
        self.path = Path(source)
        self.files: Optional[List[Path]] = None
        if self.path.is_dir():
            files = [p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            if not files:
                raise FrameReadError(f"no .jpg/.png frames in folder {self.path}")
            self.files = sorted(files, key=lambda p: _natural_key(p.name))
            self.fps = 30.0
            self._count = len(self.files)
        elif self.path.is_file():
            capture = cv2.VideoCapture(str(self.path))
            try:
                if not capture.isOpened():
                    raise FrameReadError(f"OpenCV cannot open video {self.path} (not a video file, or no codec)")
                fps = capture.get(cv2.CAP_PROP_FPS)
                self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else 30.0
                self._count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
            finally:
                capture.release()
        else:
            raise FrameReadError(f"video or frame folder {self.path} not found")

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files is not None:
            for path in self.files:
                yield read_image(path)
            return
        capture = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                if frame is None or frame.ndim != 3:
                    raise FrameReadError(f"{self.path}: frame {index + 1} could not be decoded")
                index += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if index == 0:
                raise FrameReadError(f"{self.path}: OpenCV decoded no frames (unsupported codec or empty video)")
        finally:
            capture.release()


def open_frame_source(source: PathLike) -> FrameSource:
    """A :class:`FrameSource` for a video file or a folder of frames."""
    return FrameSource(source)


def draw_box(frame_bgr: np.ndarray, box: Sequence[float], color: Tuple[int, int, int] = (0, 255, 0),
             label: Optional[str] = None) -> np.ndarray:
    """Draw an x,y,w,h rectangle (and an optional label) on a BGR frame in place; returns the frame."""
    x, y, w, h = (float(v) for v in box)
    if all(math.isfinite(v) for v in (x, y, w, h)):
        thickness = max(1, round(min(frame_bgr.shape[:2]) / 240))
        cv2.rectangle(frame_bgr, (round(x), round(y)), (round(x + w), round(y + h)), color, thickness)
    if label:
        scale = max(0.4, min(frame_bgr.shape[:2]) / 720)
        cv2.putText(frame_bgr, label, (5, int(20 * scale) + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1,
                    cv2.LINE_AA)
    return frame_bgr


class AnnotatedVideoWriter:
    """Write frames to an mp4 (``mp4v``) atomically: frames go to a hidden temporary file, renamed by ``close``.

    Use as a context manager; on an exception the temporary file is removed and the target left untouched.
    """

    def __init__(self, path: PathLike, fps: float, size: Tuple[int, int], fourcc: str = "mp4v") -> None:
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))  # (width, height)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4",
                                   dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps), self.size)
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise OSError(f"OpenCV cannot write {fourcc} video to {self.path} (codec unavailable?)")
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one BGR frame of the writer's size."""
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self.size:
            raise ValueError(f"frame size {frame_bgr.shape[1]}x{frame_bgr.shape[0]} differs from the video's "
                             f"{self.size[0]}x{self.size[1]}")
        self._writer.write(np.ascontiguousarray(frame_bgr))
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place (with the permissions a plain new file would get)."""
        self._writer.release()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        self._writer.release()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AnnotatedVideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def format_box_csv(boxes: Sequence[Sequence[float]]) -> str:
    """CSV text ``frame,x,y,w,h`` with one row per frame (frame numbers from 1, boxes with 3 decimals)."""
    lines = ["frame,x,y,w,h"]
    for i, box in enumerate(boxes, start=1):
        lines.append(f"{i}," + ",".join(f"{float(v):.3f}" for v in box))
    return "\n".join(lines) + "\n"


def write_box_csv(path: PathLike, boxes: Sequence[Sequence[float]]) -> Path:
    """Write :func:`format_box_csv` to ``path`` atomically."""
    return atomic_write_text(path, format_box_csv(boxes))


def display_available() -> bool:
    """Whether a window can be opened (an X/Wayland display on Linux; assumed on Windows and macOS)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def run_video_demo(
    tracker: object,
    source: PathLike,
    init_box: Sequence[float],
    out_video: PathLike,
    out_csv: Optional[PathLike] = None,
    *,
    show: bool = False,
    progress: bool = True,
) -> dict:
    """Track a video file or frame folder from ``init_box`` on frame 1; write an annotated mp4 and a CSV.

    The video has the source's size and frame rate, one output frame per input frame, the box drawn in
    green (frame 1 shows the init box). The CSV has ``frame,x,y,w,h`` rows, one per frame. ``show`` also
    displays the frames when a display exists (press q to stop early). Returns ``{"frames", "fps",
    "video", "csv", "shown"}``; ``fps`` is tracker frames per second (reading and drawing excluded).
    """
    frames = open_frame_source(source)
    iterator = iter(frames)
    try:
        first = next(iterator)
    except StopIteration:
        raise FrameReadError(f"{source}: no frames") from None
    height, width = first.shape[:2]
    box = [float(v) for v in init_box]
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"init box must be 4 finite numbers x y w h with w, h > 0, got {list(init_box)}")
    if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise ValueError(f"init box {box} lies outside the first frame ({width}x{height})")
    shown = show and display_available()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(frames) or None, desc="video", unit="frame", dynamic_ncols=True)
    boxes: List[List[float]] = []
    seconds = 0.0
    out_csv = Path(out_csv) if out_csv is not None else Path(out_video).with_suffix(".csv")
    try:
        with AnnotatedVideoWriter(out_video, frames.fps, (width, height)) as writer:
            for index, frame in enumerate(itertools.chain([first], iterator)):
                if frame.shape[:2] != (height, width):
                    raise FrameReadError(f"{source}: frame {index + 1} is {frame.shape[1]}x{frame.shape[0]}, "
                                         f"the first is {width}x{height}")
                start = time.perf_counter()
                if index == 0:
                    tracker.initialize(frame, box)
                    current = box
                else:
                    current = [float(v) for v in tracker.track(frame)]
                seconds += time.perf_counter() - start
                boxes.append(current)
                annotated = draw_box(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), current, label=f"#{index + 1}")
                writer.write(annotated)
                if bar is not None:
                    bar.update(1)
                if shown:
                    key = _show_frame(annotated)
                    if key is None:  # this OpenCV build has no GUI (e.g. opencv-python-headless)
                        shown = False
                    elif key == ord("q"):
                        break
    finally:
        if bar is not None:
            bar.close()
        if shown:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
    write_box_csv(out_csv, boxes)
    return {"frames": len(boxes), "fps": len(boxes) / seconds if seconds > 0 else float("nan"),
            "video": str(out_video), "csv": str(out_csv), "shown": shown}


def _show_frame(frame_bgr: np.ndarray) -> Optional[int]:
    """Display a frame; returns the key pressed (-1 for none), or None when no window can be opened."""
    try:
        cv2.imshow("FARTrack", frame_bgr)
        return cv2.waitKey(1) & 0xFF
    except cv2.error:
        return None
