"""Write tiny benchmarks in the real on-disk layouts (test helper, shared by the evaluation tests).

Every ``make_*`` function writes small frames (a textured box moving over a textured background, from
:func:`fartrack.data.synthetic.moving_box_sequence`) plus the annotation files exactly where and how the
real dataset ships them, and returns ``{sequence name as the reader reports it: full GT (N, 4) float64}``.
The GT returned is the truth: for ``got10k_test`` and TrackingNet TEST only row 0 is written to disk,
and for UAV the rows listed in ``nan_rows`` are written as ``NaN`` (and are NaN in the returned array).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from fartrack.data.synthetic import moving_box_sequence

Lengths = Union[int, Sequence[int]]
Made = Dict[str, np.ndarray]

HEIGHT, WIDTH = 48, 64


def _lengths(n_seq: int, n_frames: Lengths) -> list[int]:
    if isinstance(n_frames, int):
        return [n_frames] * n_seq
    if len(n_frames) != n_seq:
        raise ValueError(f"n_frames has {len(n_frames)} entries for {n_seq} sequences")
    return list(n_frames)


def write_frames(folder: Path, n_frames: int, pattern: str, *, first: int = 1, seed: int = 0,
                 height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Write ``n_frames`` frames named ``pattern % index`` (index from ``first``); return their GT boxes."""
    folder.mkdir(parents=True, exist_ok=True)
    frames, boxes = moving_box_sequence(n_frames, height, width, seed=seed)
    for i, frame in enumerate(frames):
        path = folder / (pattern % (first + i))
        if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
    return boxes.astype(np.float64)


def write_rows(path: Path, rows: np.ndarray, sep: str = ",", fmt: str = "{:.4f}") -> None:
    """Write a box table, one ``x<sep>y<sep>w<sep>h`` row per line (``NaN`` for non-finite values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in np.asarray(rows, dtype=np.float64):
        lines.append(sep.join("NaN" if not np.isfinite(v) else fmt.format(v) for v in row))
    path.write_text("\n".join(lines) + "\n")


def corrupt_file(path: Path) -> None:
    """Overwrite an image with bytes no decoder accepts (keeps the name, so the layout stays valid)."""
    Path(path).write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")


def _flags(n: int, indices: Optional[Iterable[int]]) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    for i in indices or ():
        out[i] = 1
    return out


# ------------------------------------------------------------------------------------------------ GOT-10k
def make_got10k(root: Path, split: str = "val", n_seq: int = 2, n_frames: Lengths = 6, *, ext: str = "jpg",
                absent: Optional[Mapping[str, Iterable[int]]] = None, seed: int = 0) -> Made:
    """``<root>/<split>/list.txt`` + ``GOT-10k_<Split>_%06d/{%08d.jpg, groundtruth.txt, *.label, meta_info.ini}``.

    ``split`` is ``val`` (full GT, ``absence.label``/``cover.label``; frames in ``absent`` get absence 1 and
    cover 0) or ``test`` (GT row 0 only; no label files). Names come out as ``GOT-10k_Val_000001`` etc.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be val or test, got {split!r}")
    base = Path(root) / split
    made: Made = {}
    for k, n in enumerate(_lengths(n_seq, n_frames)):
        name = f"GOT-10k_{split.capitalize()}_{k + 1:06d}"
        folder = base / name
        gt = write_frames(folder, n, f"%08d.{ext}", seed=seed + k)
        write_rows(folder / "groundtruth.txt", gt if split == "val" else gt[:1])
        (folder / "meta_info.ini").write_text(
            "[METAINFO]\nurl: https://example.invalid\nbegin_time: 0\nend_time: 1\n"
            f"anno_fps: 10Hz\nobject_class: testclass{k}\nmotion_class: moving\nmajor_class: thing\n"
            "root_class: object\nmotion_adverb: slowly\nresolution: (64, 48)\n"
        )
        if split == "val":
            absence = _flags(n, (absent or {}).get(name))
            (folder / "absence.label").write_text("".join(f"{v}\n" for v in absence))
            cover = np.where(absence == 1, 0, 8)
            (folder / "cover.label").write_text("".join(f"{v}\n" for v in cover))
            (folder / "cut_by_image.label").write_text("".join("0\n" for _ in range(n)))
        made[name] = gt
    (base / "list.txt").write_text("".join(f"{name}\n" for name in made))
    return made


# ------------------------------------------------------------------------------------------------ LaSOT
def make_lasot(root: Path, classes: Sequence[str] = ("airplane", "cat"), per_class: int = 2,
               n_frames: Lengths = 6, *, occluded: Optional[Mapping[str, Iterable[int]]] = None,
               out_of_view: Optional[Mapping[str, Iterable[int]]] = None, testing_set: bool = False,
               ext: str = "jpg", seed: int = 0) -> Made:
    """``<root>/<class>/<class>-<k>/{img/%08d.jpg, groundtruth.txt, full_occlusion.txt, out_of_view.txt, nlp.txt}``.

    The flag files are one comma-separated line, as LaSOT ships them. With ``testing_set`` the list file
    ``<root>/testing_set.txt`` (the toolkit's) names all sequences written. LaSOT_ext uses the same layout.
    """
    names = [f"{c}-{k + 1}" for c in classes for k in range(per_class)]
    made: Made = {}
    for i, (name, n) in enumerate(zip(names, _lengths(len(names), n_frames))):
        folder = Path(root) / name.rsplit("-", 1)[0] / name
        gt = np.round(write_frames(folder / "img", n, f"%08d.{ext}", seed=seed + i))
        write_rows(folder / "groundtruth.txt", gt, fmt="{:.0f}")
        for fname, marks in (("full_occlusion.txt", occluded), ("out_of_view.txt", out_of_view)):
            flags = _flags(n, (marks or {}).get(name))
            (folder / fname).write_text(",".join(str(v) for v in flags) + "\n")
        (folder / "nlp.txt").write_text(f"the {name} in the middle\n")
        made[name] = gt
    if testing_set:
        (Path(root) / "testing_set.txt").write_text("".join(f"{name}\n" for name in names))
    return made


# ------------------------------------------------------------------------------------------------ TrackingNet
def make_trackingnet_test(root: Path, n_seq: int = 2, n_frames: Lengths = 6, *, seed: int = 0) -> Made:
    """``<root>/TEST/anno/<v>.txt`` (one GT row) + ``<root>/TEST/frames/<v>/<i>.jpg`` with 0-based ``i``.

    The first name starts with ``-`` (YouTube ids do) to catch argument-parsing slips.
    """
    made: Made = {}
    for k, n in enumerate(_lengths(n_seq, n_frames)):
        name = f"-vid{k:02d}Xy_{k}" if k == 0 else f"vid{k:02d}Xy_{k}"
        gt = write_frames(Path(root) / "TEST" / "frames" / name, n, "%d.jpg", first=0, seed=seed + k)
        write_rows(Path(root) / "TEST" / "anno" / f"{name}.txt", gt[:1], fmt="{:.2f}")
        made[name] = gt
    return made


# ------------------------------------------------------------------------------------------------ NfS
def make_nfs(root: Path, seqs: Sequence[str] = ("Gymnastics", "Basketball_2"), n_frames: Lengths = 6,
             *, seed: int = 0) -> Made:
    """``<root>/sequences/<Seq>/%05d.jpg`` + ``<root>/anno/nfs_<Seq>.txt`` (tab-delimited, pytracking-converted).

    Names come out as ``nfs_<Seq>`` (the lineage's result-file names).
    """
    made: Made = {}
    for k, (seq, n) in enumerate(zip(seqs, _lengths(len(seqs), n_frames))):
        gt = write_frames(Path(root) / "sequences" / seq, n, "%05d.jpg", seed=seed + k)
        write_rows(Path(root) / "anno" / f"nfs_{seq}.txt", gt, sep="\t", fmt="{:.2f}")
        made[f"nfs_{seq}"] = gt
    return made


# ------------------------------------------------------------------------------------------------ UAV123
def make_uav(root: Path, seqs: Sequence[str] = ("bike1", "boat3"), n_frames: Lengths = 6, *,
             nan_rows: Optional[Mapping[str, Iterable[int]]] = None, split: Optional[Mapping[str, tuple]] = None,
             seed: int = 0) -> Made:
    """``<root>/data_seq/UAV123/<seq>/%06d.jpg`` + ``<root>/anno/UAV123/<seq>.txt`` (comma, ``NaN`` rows).

    ``nan_rows`` maps a folder name to GT rows written as ``NaN,NaN,NaN,NaN`` (target out of view).
    ``split`` adds sequences that share a folder, as UAV123's ``bird1_1``..: ``{"bird1": (total_frames,
    [(start, end), ...])}``; their frame ranges are written to ``<root>/configSeqs.m`` (the UAV123 toolkit's
    sequence table). Names come out as ``uav_<seq>``.
    """
    nan_rows = nan_rows or {}
    made: Made = {}
    data, anno = Path(root) / "data_seq" / "UAV123", Path(root) / "anno" / "UAV123"
    for k, (seq, n) in enumerate(zip(seqs, _lengths(len(seqs), n_frames))):
        gt = write_frames(data / seq, n, "%06d.jpg", seed=seed + k)
        for r in nan_rows.get(seq, ()):
            gt[r] = np.nan
        write_rows(anno / f"{seq}.txt", gt, fmt="{:.0f}")
        made[f"uav_{seq}"] = gt
    entries = []
    for j, (folder, (total, ranges)) in enumerate((split or {}).items()):
        gt_all = write_frames(data / folder, total, "%06d.jpg", seed=seed + 100 + j)
        for part, (start, end) in enumerate(ranges, start=1):
            name = f"{folder}_{part}"
            gt = gt_all[start - 1 : end]
            write_rows(anno / f"{name}.txt", gt, fmt="{:.0f}")
            made[f"uav_{name}"] = gt
            entries.append(f"struct('name','{name}','path','D:\\data_seq\\UAV123\\{folder}\\','startFrame',{start},"
                           f"'endFrame',{end},'nz',6,'ext','jpg','init_rect',[0,0,0,0])")
    if entries:
        (Path(root) / "configSeqs.m").write_text(
            "function seqs=configSeqs\n\nseqUAV123={" + ",...\n    ".join(entries) + "};\n\nseqs=seqUAV123;\n"
        )
    (anno / "att").mkdir(parents=True, exist_ok=True)  # UAV123 ships attribute files here; not sequences
    return made


# ------------------------------------------------------------------------------------------------ OTB
def make_otb(root: Path, seqs: Sequence[str] = ("Basketball", "Car4"), n_frames: Lengths = 6, *,
             seed: int = 0) -> Made:
    """``<root>/<Seq>/img/%04d.jpg`` + ``<root>/<Seq>/groundtruth_rect.txt`` (first comma-, second tab-delimited)."""
    made: Made = {}
    for k, (seq, n) in enumerate(zip(seqs, _lengths(len(seqs), n_frames))):
        gt = np.round(write_frames(Path(root) / seq / "img", n, "%04d.jpg", seed=seed + k))
        write_rows(Path(root) / seq / "groundtruth_rect.txt", gt, sep="," if k % 2 == 0 else "\t", fmt="{:.0f}")
        made[seq] = gt
    return made


# ------------------------------------------------------------------------------------------------ VastTrack
def make_vasttrack(root: Path, classes: Sequence[str] = ("Aardvark", "Zebra"), per_class: int = 1,
                   n_frames: Lengths = 6, *, invisible: Optional[Mapping[str, Iterable[int]]] = None,
                   seed: int = 0) -> Made:
    """``<root>/<Class>/<Class>-<k>/{imgs/%05d.jpg, Groundtruth.txt}``; invisible frames have GT ``0,0,0,0``."""
    names = [f"{c}-{k + 1}" for c in classes for k in range(per_class)]
    made: Made = {}
    for i, (name, n) in enumerate(zip(names, _lengths(len(names), n_frames))):
        folder = Path(root) / name.rsplit("-", 1)[0] / name
        gt = np.round(write_frames(folder / "imgs", n, "%05d.jpg", seed=seed + i))
        for r in (invisible or {}).get(name, ()):
            gt[r] = 0.0
        write_rows(folder / "Groundtruth.txt", gt, fmt="{:.0f}")
        made[name] = gt
    return made
