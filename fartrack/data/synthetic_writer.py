"""Write the synthetic benchmark to disk in the GOT-10k or LaSOT layout (:func:`write_synthetic`); resumable.

Sequences come from :func:`fartrack.data.synthetic.render_sequence` (see that module for scenes, difficulty
levels, labels and determinism).

On disk (:func:`write_synthetic`)
    GOT-10k layout: ``<out>/{train,val}/list.txt`` and ``<out>/{train,val}/SYN_<split>_%06d/{00000001.jpg..,
    groundtruth.txt, absence.label, cover.label, cut_by_image.label, meta_info.ini}``. LaSOT layout:
    ``<out>/<class>/<class>-<k>/{img/00000001.jpg.., groundtruth.txt, full_occlusion.txt, out_of_view.txt,
    nlp.txt}`` with classes ``syntrain`` / ``synval``, plus ``<out>/testing_set.txt`` (the val sequences, read
    by the ``lasot`` benchmark), ``<out>/training_set.txt`` and ``<out>/lasot_train_split.txt`` (the train
    sequences; the latter is the split file training with ``LASOT`` needs in ``DATA.SPLITS_DIR``).
    ``<out>/synthetic.json`` records the parameters. Each sequence is written to a hidden temporary folder
    and renamed into place when complete; the list files come last. A rerun with the same parameters
    completes what is missing (or does nothing); other parameters, or a folder holding other files, are
    refused -- nothing is ever deleted except this module's own temporary folders.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from fartrack.data.synthetic import (VAL_INDEX_OFFSET, SyntheticDataError, _check_size, _iter_sequence,
                                     _photo_files, _spec)

__all__ = ["LAYOUTS", "write_synthetic"]

PathLike = Union[str, "os.PathLike[str]"]

#: On-disk layouts :func:`write_synthetic` writes.
LAYOUTS: Tuple[str, ...] = ("got10k", "lasot")

JPEG_QUALITY = 90
FORMAT_VERSION = 1
STAMP_NAME = "synthetic.json"


@dataclass(frozen=True)
class _Job:
    """One sequence to write: its split, 1-based number, name, generator index and final folder."""

    split: str
    number: int
    name: str
    index: int
    folder: str


def _jpeg(frame: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError("OpenCV could not encode a JPEG frame")
    return buf.tobytes()


def _box_text(boxes: Sequence[np.ndarray]) -> str:
    return "".join(",".join(f"{v:.4f}" for v in box) + "\n" for box in boxes)


def _meta_info(job: _Job, params: Mapping[str, Any], description: str) -> str:
    width, height = params["size"]
    adverb = {"easy": "slowly", "medium": "moderately", "hard": "fast"}[params["difficulty"]]
    return (
        "[METAINFO]\n"
        f"url: synthetic://seed={params['seed']}/index={job.index}/difficulty={params['difficulty']}\n"
        "begin_time: 0\n"
        f"end_time: {params['num_frames']}\n"
        "anno_fps: 10Hz\n"
        f"object_class: {description.replace(' ', '_')}\n"
        "motion_class: gliding\n"
        "major_class: synthetic_object\n"
        "root_class: object\n"
        f"motion_adverb: {adverb}\n"
        f"resolution: ({width}, {height})\n"
    )


def _write_job(job: _Job, params: Mapping[str, Any], photos: Tuple[str, ...]) -> int:
    """Render ``job`` into a temporary folder next to its final one, then rename it into place; returns the
    number of frames written (0 when another run finished it first)."""
    final = Path(job.folder)
    if final.exists():
        return 0
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    lasot = params["layout"] == "lasot"
    image_dir = tmp / "img" if lasot else tmp
    image_dir.mkdir(parents=True)
    description, frames = _iter_sequence(params["seed"], job.index, params["difficulty"], params["num_frames"],
                                         params["size"], photos)
    boxes, absent, cover, out_of_view, cut = [], [], [], [], []
    for t, (frame, box, is_absent, cov, labels) in enumerate(frames):
        (image_dir / f"{t + 1:08d}.jpg").write_bytes(_jpeg(frame))
        boxes.append(box)
        absent.append(int(is_absent))
        cover.append(cov)
        out_of_view.append(int(labels.in_frame == 0))
        cut.append(int(labels.in_frame < labels.area))
    (tmp / "groundtruth.txt").write_text(_box_text(boxes))
    if lasot:
        full_occlusion = [int(a and not o) for a, o in zip(absent, out_of_view)]
        (tmp / "full_occlusion.txt").write_text(",".join(map(str, full_occlusion)) + "\n")
        (tmp / "out_of_view.txt").write_text(",".join(map(str, out_of_view)) + "\n")
        (tmp / "nlp.txt").write_text(f"the {description}\n")
    else:
        (tmp / "absence.label").write_text("".join(f"{v}\n" for v in absent))
        (tmp / "cover.label").write_text("".join(f"{v}\n" for v in cover))
        (tmp / "cut_by_image.label").write_text("".join(f"{v}\n" for v in cut))
        (tmp / "meta_info.ini").write_text(_meta_info(job, params, description))
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp)  # another run renamed the same sequence into place first
        return 0
    return len(boxes)


def _jobs(out: Path, params: Mapping[str, Any]) -> List[_Job]:
    """Every sequence of the dataset, train first."""
    jobs = []
    for split, count, offset in (("train", params["train_sequences"], 0),
                                 ("val", params["val_sequences"], VAL_INDEX_OFFSET)):
        for k in range(1, count + 1):
            if params["layout"] == "lasot":
                cls = f"syn{split}"
                name = f"{cls}-{k}"
                folder = out / cls / name
            else:
                name = f"SYN_{split}_{k:06d}"
                folder = out / split / name
            jobs.append(_Job(split, k, name, offset + k - 1, os.fspath(folder)))
    return jobs


def _list_files(out: Path, params: Mapping[str, Any], jobs: Sequence[_Job]) -> Dict[Path, str]:
    """{path: content} of the sequence lists, written once every sequence is in place."""
    names = {split: "".join(j.name + "\n" for j in jobs if j.split == split) for split in ("train", "val")}
    if params["layout"] == "lasot":
        return {out / "training_set.txt": names["train"], out / "lasot_train_split.txt": names["train"],
                out / "testing_set.txt": names["val"]}
    return {out / split / "list.txt": text for split, text in names.items() if text}


def _stamp_text(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), indent=2, sort_keys=True) + "\n"


def _prepare_out_dir(out: Path, params: Mapping[str, Any]) -> None:
    """Check that ``out`` is new, empty or made with the same parameters (possibly incomplete); write the
    stamp when new."""
    from fartrack.utils.io import atomic_write_text

    stamp = out / STAMP_NAME
    if out.exists() and not out.is_dir():
        raise SyntheticDataError(f"output {os.fspath(out)} exists and is not a folder")
    if stamp.is_file():
        try:
            existing = json.loads(stamp.read_text())
        except (OSError, ValueError) as exc:
            raise SyntheticDataError(f"{os.fspath(stamp)} is not a readable generator stamp ({exc}); choose "
                                     f"another output folder") from None
        wanted = json.loads(_stamp_text(params))
        if existing != wanted:
            keys = sorted(set(existing) | set(wanted))
            diffs = [f"{k}: {existing.get(k)!r} there, {wanted.get(k)!r} now" for k in keys
                     if existing.get(k) != wanted.get(k)]
            raise SyntheticDataError(
                f"output folder {os.fspath(out)} holds synthetic data made with other parameters "
                f"({'; '.join(diffs)}); choose another --out folder or remove that one yourself"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise SyntheticDataError(
            f"output folder {os.fspath(out)} exists and holds other files (no {STAMP_NAME}); choose a new or "
            f"empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, _stamp_text(params))


def _remove_partials(jobs: Sequence[_Job]) -> None:
    """Delete the temporary folders an interrupted run left (only this module's ``.<seq>.partial-*``)."""
    parents = {Path(j.folder).parent for j in jobs}
    names = {Path(j.folder).name for j in jobs}
    for parent in parents:
        if not parent.is_dir():
            continue
        for entry in parent.iterdir():
            stem, sep, _ = entry.name.partition(".partial-")
            if sep and entry.is_dir() and stem.startswith(".") and stem[1:] in names:
                shutil.rmtree(entry)


def _run_jobs(jobs: Sequence[_Job], params: Mapping[str, Any], photos: Tuple[str, ...], workers: int,
              progress: Optional[Callable[[int, int], None]]) -> int:
    """Write ``jobs`` (in ``workers`` processes when > 1); returns the number of frames written."""
    frames = 0
    total = len(jobs)
    if workers <= 1 or total <= 1:
        for done, job in enumerate(jobs, start=1):
            frames += _write_job(job, params, photos)
            if progress is not None:
                progress(done, total)
        return frames
    with ProcessPoolExecutor(max_workers=min(workers, total), mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(_write_job, job, params, photos) for job in jobs}
        done = 0
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    frames += future.result()
                    done += 1
                    if progress is not None:
                        progress(done, total)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return frames


def write_synthetic(
    out_dir: PathLike,
    *,
    train_sequences: int = 200,
    val_sequences: int = 20,
    seed: int = 0,
    difficulty: str = "easy",
    num_frames: int = 80,
    size: Tuple[int, int] = (320, 240),
    layout: str = "got10k",
    photos: Optional[PathLike] = None,
    workers: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, Any]:
    """Write a synthetic dataset to ``out_dir`` in ``layout`` (see the module docstring); resumable.

    ``progress(done, total)`` is called after each sequence written. Returns a summary: ``out_dir``,
    ``layout``, ``up_to_date`` (nothing had to be written), ``generated`` (sequences written now),
    ``sequences`` (total), ``frames_written``, ``seconds``, ``frames_per_second``.

    Raises:
        SyntheticDataError: bad parameters, or ``out_dir`` holds other files or data made with other
            parameters (nothing is deleted).
    """
    from fartrack.utils.io import atomic_write_text

    start = time.perf_counter()
    width, height = _check_size(num_frames, size)
    _spec(difficulty)
    if layout not in LAYOUTS:
        raise SyntheticDataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if train_sequences < 0 or val_sequences < 0 or train_sequences + val_sequences < 1:
        raise SyntheticDataError(f"need at least one sequence, got {train_sequences} train and "
                                 f"{val_sequences} val")
    if int(workers) < 1:
        raise SyntheticDataError(f"workers must be >= 1, got {workers}")
    photo_files = _photo_files(photos)
    root = Path(photos) if photos is not None else None
    params = {
        "generator": "fartrack.data.synthetic",
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "difficulty": difficulty,
        "num_frames": int(num_frames),
        "size": [width, height],
        "train_sequences": int(train_sequences),
        "val_sequences": int(val_sequences),
        "layout": layout,
        "photos": [Path(p).relative_to(root).as_posix() for p in photo_files] if root is not None else None,
    }
    out = Path(out_dir)
    _prepare_out_dir(out, params)
    jobs = _jobs(out, params)
    lists = _list_files(out, params, jobs)
    todo = [j for j in jobs if not Path(j.folder).is_dir()]
    lists_ok = all(p.is_file() and p.read_text() == text for p, text in lists.items())
    written = 0
    if todo or not lists_ok:
        _remove_partials(jobs)
        for job in todo:
            Path(job.folder).parent.mkdir(parents=True, exist_ok=True)
        written = _run_jobs(todo, params, photo_files, int(workers), progress)
        for path, text in lists.items():
            if not (path.is_file() and path.read_text() == text):
                atomic_write_text(path, text)
    seconds = time.perf_counter() - start
    return {
        "out_dir": os.fspath(out),
        "layout": layout,
        "up_to_date": not todo and lists_ok,
        "generated": len(todo),
        "sequences": len(jobs),
        "frames_written": written,
        "seconds": seconds,
        "frames_per_second": written / seconds if written and seconds > 0 else 0.0,
    }
