"""Benchmark readers: the test sequences of each benchmark, read from the files the datasets ship.

Each reader turns a dataset root (from ``lib/test/evaluation/local.py`` or an explicit path) into a list
of :class:`Sequence` (frames in order, GT boxes, visibility flags where the dataset has them). What each
reader expects on disk is in :data:`LAYOUTS`; a missing or malformed dataset raises :class:`DatasetError`
naming the path (and line) at fault and that layout.

Sequence lists are data-driven:

* ``got10k_val`` / ``got10k_test`` / ``synthetic``: ``<split>/list.txt``; frames are all images in the
  sequence folder sorted by their integer name. ``got10k_test`` knows only GT row 0.
* ``lasot`` / ``lasot_extension_subset`` / ``vasttrack``: the toolkit's ``testing_set.txt`` at the root when
  present, else every ``<Class>/<Class>-<k>`` folder. A LaSOT class folder with more than 4 sequences means
  the full (train + test) download; then ``testing_set.txt`` is required so training videos are not scored.
* ``trackingnet``: the files in ``TEST/anno``; frames ``TEST/frames/<seq>/<i>.jpg`` are 0-based.
* ``nfs``: the files ``anno/nfs_<Seq>.txt`` (pytracking-converted, tab-delimited); frames 1..N.
* ``uav``: the files in ``anno/UAV123``; a sequence with its own ``data_seq/UAV123/<seq>`` folder uses frames
  1..N. The split sequences (``bird1_1``, ``bird1_2``, ... sharing one folder) take their start and end
  frames from the UAV123 toolkit's ``configSeqs.m`` placed at the dataset root; without it they are an error.
* ``otb``: every ``<Seq>/groundtruth_rect[.k].txt`` (two GT files give ``<Seq>_1``, ``<Seq>_2``); frames
  from ``<Seq>/img``, 1..N except for the OTB-100 sequences in :data:`OTB_FIRST_FRAME`.

Frames may be ``.jpg``, ``.jpeg`` or ``.png``. GT rows with fewer or more than 4 numbers are an error naming
the file and line; ``NaN`` rows are accepted only for UAV123 (the target is out of view there).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

__all__ = [
    "BENCHMARKS",
    "LAYOUTS",
    "OTB_FIRST_FRAME",
    "DatasetError",
    "Sequence",
    "benchmark_root",
    "list_sequences",
    "load_benchmark",
    "load_sequence",
    "read_box_file",
]

PathLike = Union[str, "os.PathLike[str]"]

BENCHMARKS: Tuple[str, ...] = (
    "got10k_val",
    "got10k_test",
    "lasot",
    "lasot_extension_subset",
    "trackingnet",
    "nfs",
    "uav",
    "otb",
    "vasttrack",
    "synthetic",
)

#: The local-settings key holding each benchmark's root.
SETTING_KEYS: Dict[str, str] = {
    "got10k_val": "got10k_path",
    "got10k_test": "got10k_path",
    "lasot": "lasot_path",
    "lasot_extension_subset": "lasot_extension_subset_path",
    "trackingnet": "trackingnet_path",
    "nfs": "nfs_path",
    "uav": "uav_path",
    "otb": "otb_path",
    "vasttrack": "vasttrack_path",
    "synthetic": "synthetic_path",
}

#: Expected on-disk layout of each benchmark (quoted in every error message).
LAYOUTS: Dict[str, str] = {
    "got10k_val": "<root>/val/list.txt and <root>/val/<seq>/{00000001.jpg.., groundtruth.txt[, absence.label, "
    "cover.label]}",
    "got10k_test": "<root>/test/list.txt and <root>/test/<seq>/{00000001.jpg.., groundtruth.txt (first row)}",
    "lasot": "<root>/<class>/<class>-<k>/{img/00000001.jpg.., groundtruth.txt, full_occlusion.txt, "
    "out_of_view.txt} [+ <root>/testing_set.txt]",
    "lasot_extension_subset": "<root>/<class>/<class>-<k>/{img/00000001.jpg.., groundtruth.txt, "
    "full_occlusion.txt, out_of_view.txt} [+ <root>/testing_set.txt]",
    "trackingnet": "<root>/TEST/anno/<seq>.txt and <root>/TEST/frames/<seq>/{0.jpg, 1.jpg, ..}",
    "nfs": "<root>/anno/nfs_<Seq>.txt (tab-delimited) and <root>/sequences/<Seq>/{00001.jpg, ..}",
    "uav": "<root>/anno/UAV123/<seq>.txt and <root>/data_seq/UAV123/<folder>/{000001.jpg, ..} "
    "[+ <root>/configSeqs.m for the split sequences]",
    "otb": "<root>/<Seq>/{img/0001.jpg.., groundtruth_rect.txt}",
    "vasttrack": "<root>/<Class>/<Class>-<k>/{imgs/00001.jpg.., Groundtruth.txt} [+ <root>/testing_set.txt]",
    "synthetic": "<root>/val/list.txt and <root>/val/<seq>/{00000001.jpg.., groundtruth.txt} (GOT-10k layout)",
}

#: OTB-100 sequences whose annotation starts later than image 1 (image number of GT row 0); every other
#: sequence starts at image 1 and uses as many images as its GT has rows (``Football1``, ``Freeman3``,
#: ``Freeman4`` and ``Diving`` ship more images than GT rows). ``Tiger1``: the pytracking lineage omits the
#: first 5 annotated frames, so its GT rows 5.. are used with images 6.. (see :func:`_read_otb`).
OTB_FIRST_FRAME: Dict[str, int] = {"David": 300, "BlurCar1": 247, "BlurCar3": 3, "BlurCar4": 18}
OTB_OMIT_ROWS: Dict[str, int] = {"Tiger1": 5}

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LASOT_TEST_PER_CLASS = 4

_SEPARATORS = re.compile(r"[,\t ;]+")


class DatasetError(ValueError):
    """A benchmark is missing or malformed; the message names the path (and line) and the layout expected."""


@dataclass
class Sequence:
    """One test sequence: frames in order and GT boxes ``(N, 4)`` x,y,w,h (``NaN`` rows where unknown)."""

    name: str
    dataset: str
    frames: List[Path]
    ground_truth: np.ndarray
    target_visible: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)
    _size: Optional[Tuple[int, int]] = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def init_box(self) -> np.ndarray:
        """The box the tracker starts from (GT row 0)."""
        return self.ground_truth[0]

    def image_size(self) -> Tuple[int, int]:
        """(width, height) of the first frame (read once, then cached)."""
        if self._size is None:
            from fartrack.evaluation.video import read_image

            height, width = read_image(self.frames[0]).shape[:2]
            self._size = (int(width), int(height))
        return self._size


# ------------------------------------------------------------------------------------------------ file helpers
def _error(name: str, message: str) -> DatasetError:
    return DatasetError(f"{message} (benchmark {name!r} expects {LAYOUTS[name]})")


def _required_box_file(gt_file: Path, name: str) -> np.ndarray:
    """The boxes of ``gt_file`` (see :func:`read_box_file`); a missing file is named with the expected layout."""
    if not gt_file.is_file():
        raise _error(name, f"ground-truth file {gt_file} not found")
    return read_box_file(gt_file, dataset=name)


def read_box_file(path: PathLike, *, allow_nan: bool = False, dataset: Optional[str] = None) -> np.ndarray:
    """Read a GT box file (one ``x,y,w,h`` row per line; comma, tab, space or semicolon separated).

    Blank lines are skipped. A row without exactly 4 numbers, a non-number, ``NaN`` (unless ``allow_nan``)
    or an empty file raises :class:`DatasetError` naming the file and line.
    """
    path = Path(path)
    suffix = f" (benchmark {dataset!r} expects {LAYOUTS[dataset]})" if dataset else ""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise DatasetError(f"cannot read ground-truth file {path}: {exc.strerror or exc}{suffix}") from exc
    rows: List[List[float]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = [p for p in _SEPARATORS.split(line) if p]
        if len(parts) != 4:
            raise DatasetError(
                f"{path}:{lineno}: expected 4 numbers (x,y,w,h), got {len(parts)}: {line[:80]!r}{suffix}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: not a number in {line[:80]!r}{suffix}") from None
        if not allow_nan and not all(np.isfinite(values)):
            raise DatasetError(f"{path}:{lineno}: NaN/Inf in ground truth {line[:80]!r}{suffix}")
        rows.append(values)
    if not rows:
        raise DatasetError(f"ground-truth file {path} is empty{suffix}")
    return np.asarray(rows, dtype=np.float64)


def _read_flags(path: Path, count: int, name: str) -> np.ndarray:
    """Integer flags (one per frame; comma, whitespace or newline separated) from ``path``."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise _error(name, f"cannot read {path}: {exc.strerror or exc}") from exc
    values = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        for part in _SEPARATORS.split(line.strip()):
            if not part:
                continue
            try:
                values.append(int(float(part)))
            except ValueError:
                raise _error(name, f"{path}:{lineno}: expected integer flags, got {part!r}") from None
    if len(values) != count:
        raise _error(name, f"{path} has {len(values)} flags but the sequence has {count} frames")
    return np.asarray(values, dtype=np.int64)


def _indexed_images(folder: Path, name: str) -> Dict[int, Path]:
    """``{integer file name: path}`` of the images in ``folder`` (other files are ignored)."""
    if not folder.is_dir():
        raise _error(name, f"frame folder {folder} not found")
    out: Dict[int, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() in IMAGE_SUFFIXES and stem.isdigit():
                index = int(stem)
                if index in out:
                    raise _error(name, f"{folder} holds two images numbered {index}: {out[index].name}, {entry.name}")
                out[index] = Path(entry.path)
    return out


def _all_frames(folder: Path, name: str) -> List[Path]:
    images = _indexed_images(folder, name)
    if not images:
        raise _error(name, f"no .jpg/.png frames with integer names in {folder}")
    return [images[i] for i in sorted(images)]


def _frame_range(folder: Path, first: int, count: int, name: str, digits: int) -> List[Path]:
    """The images numbered ``first .. first + count - 1`` in ``folder``; a gap is an error naming the frame."""
    images = _indexed_images(folder, name)
    frames = []
    for index in range(first, first + count):
        if index not in images:
            raise _error(
                name,
                f"frame {folder / (str(index).zfill(digits) + '.jpg')} (or .png) not found; the ground truth "
                f"needs frames {first}..{first + count - 1}",
            )
        frames.append(images[index])
    return frames


def _read_list(path: Path, name: str) -> List[str]:
    if not path.is_file():
        raise _error(name, f"sequence list {path} not found")
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise _error(name, f"sequence list {path} is empty")
    return names


def _class_folders(root: Path, name: str) -> List[str]:
    """Names of ``<root>/<Class>/<Class>-<k>`` folders, sorted by class then ``k``."""
    found = []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for seq in cls.iterdir():
            prefix, _, number = seq.name.rpartition("-")
            if seq.is_dir() and prefix == cls.name and number.isdigit():
                found.append((cls.name, int(number), seq.name))
    if not found:
        raise _error(name, f"no <Class>/<Class>-<k> sequence folders in {root}")
    return [seq for _, _, seq in sorted(found)]


def _class_of(seq_name: str) -> str:
    return seq_name.rpartition("-")[0] or seq_name


# ------------------------------------------------------------------------------------------------ GOT-10k layout
def _got10k_split(root: Path, name: str) -> Path:
    return root / ("test" if name == "got10k_test" else "val")


def _list_got10k(root: Path, name: str) -> List[str]:
    return _read_list(_got10k_split(root, name) / "list.txt", name)


def _object_class(meta_file: Path) -> Optional[str]:
    if not meta_file.is_file():
        return None
    for line in meta_file.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "object_class":
            return value.strip()
    return None


def _read_got10k(root: Path, name: str, seq: str) -> Sequence:
    folder = _got10k_split(root, name) / seq
    frames = _all_frames(folder, name)
    gt_file = folder / "groundtruth.txt"
    gt = _required_box_file(gt_file, name)
    n = len(frames)
    meta: Dict[str, Any] = {}
    visible = None
    if name == "got10k_test":
        if len(gt) > n:
            raise _error(name, f"{gt_file} has {len(gt)} rows but {folder} has {n} frames")
        full = np.full((n, 4), np.nan)
        full[: len(gt)] = gt
        gt = full
    else:
        if len(gt) != n:
            raise _error(name, f"{gt_file} has {len(gt)} rows but {folder} has {n} frames")
        for label in ("absence", "cover", "cut_by_image"):
            path = folder / f"{label}.label"
            if path.is_file():
                meta[label] = _read_flags(path, n, name)
        if "absence" in meta:
            visible = meta["absence"] == 0
    object_class = _object_class(folder / "meta_info.ini")
    if object_class:
        meta["object_class"] = object_class
    return Sequence(seq, name, frames, gt, visible, meta)


# ------------------------------------------------------------------------------------------------ LaSOT / VastTrack
def _list_class_layout(root: Path, name: str) -> List[str]:
    listing = root / "testing_set.txt"
    if listing.is_file():
        return _read_list(listing, name)
    names = _class_folders(root, name)
    if name == "lasot":
        per_class: Dict[str, int] = {}
        for seq in names:
            per_class[_class_of(seq)] = per_class.get(_class_of(seq), 0) + 1
        crowded = [c for c, k in per_class.items() if k > LASOT_TEST_PER_CLASS]
        if crowded:
            raise _error(
                name,
                f"{root / crowded[0]} holds {per_class[crowded[0]]} sequences, more than the {LASOT_TEST_PER_CLASS} "
                f"test sequences per class: this looks like the full LaSOT (train + test). Put the toolkit's "
                f"test list at {listing} (one name per line, e.g. airplane-1) so only test videos are run",
            )
    return names


def _read_lasot(root: Path, name: str, seq: str) -> Sequence:
    folder = root / _class_of(seq) / seq
    gt = _required_box_file(folder / "groundtruth.txt", name)
    n = len(gt)
    frames = _frame_range(folder / "img", 1, n, name, 8)
    meta: Dict[str, Any] = {"object_class": _class_of(seq)}
    visible = None
    occ_file, oov_file = folder / "full_occlusion.txt", folder / "out_of_view.txt"
    if occ_file.is_file() and oov_file.is_file():
        meta["full_occlusion"] = _read_flags(occ_file, n, name)
        meta["out_of_view"] = _read_flags(oov_file, n, name)
        visible = (meta["full_occlusion"] == 0) & (meta["out_of_view"] == 0)
    elif occ_file.is_file() or oov_file.is_file():
        missing = oov_file if occ_file.is_file() else occ_file
        raise _error(name, f"{missing} not found (LaSOT ships full_occlusion.txt and out_of_view.txt together)")
    return Sequence(seq, name, frames, gt, visible, meta)


def _read_vasttrack(root: Path, name: str, seq: str) -> Sequence:
    folder = root / _class_of(seq) / seq
    gt = _required_box_file(folder / "Groundtruth.txt", name)
    frames = _frame_range(folder / "imgs", 1, len(gt), name, 5)
    visible = np.any(gt != 0, axis=1)
    return Sequence(seq, name, frames, gt, visible, {"object_class": _class_of(seq)})


# ------------------------------------------------------------------------------------------------ TrackingNet
def _list_trackingnet(root: Path, name: str) -> List[str]:
    anno = root / "TEST" / "anno"
    if not anno.is_dir():
        raise _error(name, f"annotation folder {anno} not found")
    names = sorted(p.stem for p in anno.iterdir() if p.suffix == ".txt" and p.is_file())
    if not names:
        raise _error(name, f"no <seq>.txt files in {anno}")
    return names


def _read_trackingnet(root: Path, name: str, seq: str) -> Sequence:
    gt = read_box_file(root / "TEST" / "anno" / f"{seq}.txt", dataset=name)
    frames = _all_frames(root / "TEST" / "frames" / seq, name)
    full = np.full((len(frames), 4), np.nan)
    full[: min(len(gt), len(frames))] = gt[: len(frames)]
    return Sequence(seq, name, frames, full)


# ------------------------------------------------------------------------------------------------ NfS
def _list_nfs(root: Path, name: str) -> List[str]:
    anno = root / "anno"
    if not anno.is_dir():
        raise _error(name, f"annotation folder {anno} not found")
    names = sorted(p.stem for p in anno.glob("nfs_*.txt") if p.is_file())
    if not names:
        raise _error(name, f"no nfs_<Seq>.txt files in {anno}")
    return names


def _read_nfs(root: Path, name: str, seq: str) -> Sequence:
    gt = read_box_file(root / "anno" / f"{seq}.txt", dataset=name)
    frames = _frame_range(root / "sequences" / seq[len("nfs_"):], 1, len(gt), name, 5)
    return Sequence(seq, name, frames, gt)


# ------------------------------------------------------------------------------------------------ UAV123
_UAV_STRUCT = re.compile(r"struct\s*\((.*?)\)", re.S)
_UAV_FIELD = re.compile(r"'(\w+)'\s*,\s*('([^']*)'|[-\d.]+)")


def _uav_table(root: Path, name: str) -> Dict[str, Tuple[str, int, int]]:
    """``{seq: (folder, start, end)}`` from ``<root>/configSeqs.m`` (empty when the file is absent)."""
    path = root / "configSeqs.m"
    if not path.is_file():
        return {}
    table = {}
    for match in _UAV_STRUCT.finditer(path.read_text(encoding="utf-8-sig", errors="replace")):
        fields = {m.group(1): (m.group(3) if m.group(3) is not None else m.group(2))
                  for m in _UAV_FIELD.finditer(match.group(1))}
        try:
            folder = [p for p in re.split(r"[\\/]", fields["path"]) if p][-1]
            table[fields["name"]] = (folder, int(fields["startFrame"]), int(fields["endFrame"]))
        except (KeyError, IndexError, ValueError):
            raise _error(name, f"{path}: cannot read name/path/startFrame/endFrame of entry {match.group(0)[:80]!r}")
    return table


def _list_uav(root: Path, name: str) -> List[str]:
    anno = root / "anno" / "UAV123"
    if not anno.is_dir():
        raise _error(name, f"annotation folder {anno} not found")
    names = sorted("uav_" + p.stem for p in anno.iterdir() if p.suffix == ".txt" and p.is_file())
    if not names:
        raise _error(name, f"no <seq>.txt files in {anno}")
    return names


def _read_uav(root: Path, name: str, seq: str, table: Dict[str, Tuple[str, int, int]]) -> Sequence:
    stem = seq[len("uav_"):]
    gt_file = root / "anno" / "UAV123" / f"{stem}.txt"
    gt = read_box_file(gt_file, allow_nan=True, dataset=name)
    data = root / "data_seq" / "UAV123"
    if stem in table:
        folder, start, end = table[stem]
        if end - start + 1 != len(gt):
            raise _error(name, f"{root / 'configSeqs.m'} gives {stem} frames {start}..{end} but {gt_file} has "
                               f"{len(gt)} rows")
    elif (data / stem).is_dir():
        folder, start = stem, 1
    else:
        raise _error(
            name,
            f"no frame folder {data / stem} for {gt_file}; sequences sharing a folder (e.g. bird1_1 in bird1) "
            f"need their start/end frames from the UAV123 toolkit's configSeqs.m at {root / 'configSeqs.m'}",
        )
    frames = _frame_range(data / folder, start, len(gt), name, 6)
    return Sequence(seq, name, frames, gt)


# ------------------------------------------------------------------------------------------------ OTB
_OTB_GT = re.compile(r"^groundtruth_rect(?:\.(\d+))?\.txt$")


def _otb_entries(root: Path, name: str) -> Dict[str, Tuple[str, str]]:
    """``{seq name: (folder, GT file name)}`` of every OTB sequence under ``root``."""
    entries: Dict[str, Tuple[str, str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        gts = sorted((m.group(1), f.name) for f in folder.iterdir() if (m := _OTB_GT.match(f.name)))
        for index, file_name in gts:
            entries[folder.name if index is None else f"{folder.name}_{index}"] = (folder.name, file_name)
    if not entries:
        raise _error(name, f"no <Seq>/groundtruth_rect.txt files in {root}")
    return entries


def _read_otb(root: Path, name: str, seq: str, entries: Dict[str, Tuple[str, str]]) -> Sequence:
    folder, gt_name = entries[seq]
    gt = read_box_file(root / folder / gt_name, dataset=name)
    omit = OTB_OMIT_ROWS.get(folder, 0)
    gt = gt[omit:]
    first = OTB_FIRST_FRAME.get(folder, 1) + omit
    frames = _frame_range(root / folder / "img", first, len(gt), name, 4)
    return Sequence(seq, name, frames, gt)


# ------------------------------------------------------------------------------------------------ public API
def benchmark_root(name: str, settings: Any = None) -> Path:
    """The root folder of benchmark ``name`` from the test settings (``lib/test/evaluation/local.py``)."""
    _check_name(name)
    if settings is None:
        from fartrack.config import load_test_settings

        settings = load_test_settings()
    return Path(getattr(settings, SETTING_KEYS[name]))


def _check_name(name: str) -> None:
    if name not in BENCHMARKS:
        close = difflib.get_close_matches(str(name), BENCHMARKS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DatasetError(f"unknown benchmark {name!r}{hint}; choose one of {', '.join(BENCHMARKS)}")


def _reader(name: str, root: Path) -> Tuple[Callable[[], List[str]], Callable[[str], Sequence]]:
    """(list the sequence names, read one sequence) for benchmark ``name`` at ``root``."""
    if name in ("got10k_val", "got10k_test", "synthetic"):
        return (lambda: _list_got10k(root, name)), (lambda s: _read_got10k(root, name, s))
    if name in ("lasot", "lasot_extension_subset"):
        return (lambda: _list_class_layout(root, name)), (lambda s: _read_lasot(root, name, s))
    if name == "vasttrack":
        return (lambda: _list_class_layout(root, name)), (lambda s: _read_vasttrack(root, name, s))
    if name == "trackingnet":
        return (lambda: _list_trackingnet(root, name)), (lambda s: _read_trackingnet(root, name, s))
    if name == "nfs":
        return (lambda: _list_nfs(root, name)), (lambda s: _read_nfs(root, name, s))
    if name == "uav":
        table = _uav_table(root, name)
        return (lambda: _list_uav(root, name)), (lambda s: _read_uav(root, name, s, table))
    entries = _otb_entries(root, name)
    return (lambda: list(entries)), (lambda s: _read_otb(root, name, s, entries))


def _resolve_root(name: str, root: Optional[PathLike]) -> Path:
    _check_name(name)
    path = Path(root) if root is not None else benchmark_root(name)
    if not path.is_dir():
        raise _error(name, f"dataset folder {path} not found")
    return path


def list_sequences(name: str, root: Optional[PathLike] = None) -> List[str]:
    """The sequence names of benchmark ``name`` in order, without reading any annotation."""
    path = _resolve_root(name, root)
    return _reader(name, path)[0]()


def load_sequence(name: str, seq: str, root: Optional[PathLike] = None) -> Sequence:
    """One sequence of benchmark ``name`` (its GT and frames are read now; errors name the file at fault)."""
    path = _resolve_root(name, root)
    return _reader(name, path)[1](seq)


def load_benchmark(
    name: str,
    root: Optional[PathLike] = None,
    *,
    sequences: Optional[SequenceABC[str]] = None,
) -> List[Sequence]:
    """The test sequences of benchmark ``name`` (root from the test settings unless given).

    ``sequences`` restricts the result to those names (in the benchmark's order); an unknown name is a
    :class:`DatasetError` suggesting the closest one.
    """
    path = _resolve_root(name, root)
    list_names, read = _reader(name, path)
    names = list_names()
    if sequences is not None:
        wanted = list(sequences)
        known = set(names)
        for seq in wanted:
            if seq not in known:
                close = difflib.get_close_matches(seq, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DatasetError(f"benchmark {name!r} at {path} has no sequence {seq!r}{hint}")
        selected = set(wanted)
        names = [n for n in names if n in selected]
    return [read(seq) for seq in names]
