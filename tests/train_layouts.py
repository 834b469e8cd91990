"""Write tiny training datasets in their real on-disk layouts (test helper; no downloads).

Every writer draws its frames from :func:`fartrack.data.synthetic.moving_box_sequence` (a textured box
moving over a textured background, so a network can actually learn from the data) and writes JPEG frames
plus the annotation files exactly where the real dataset keeps them:

- :func:`write_got10k`      ``<root>/list.txt`` + ``GOT-10k_Train_%06d/{%08d.jpg, groundtruth.txt,
  absence.label, cover.label, meta_info.ini}`` (frames from 00000001)
- :func:`write_lasot`       ``<root>/<class>/<class>-<k>/{img/%08d.jpg, groundtruth.txt,
  full_occlusion.txt, out_of_view.txt}``
- :func:`write_trackingnet` ``<root>/TRAIN_<s>/{anno/<video>.txt, frames/<video>/<n>.jpg}`` (0-based n)
- :func:`write_coco`        ``<root>/annotations/instances_train2017.json`` + ``images/train2017/*.jpg``
- :func:`write_vasttrack`   ``<root>/<Class>/<Class>-<k>/{imgs/%05d.jpg, Groundtruth.txt}``
- :func:`write_vid`         ImageNet-VID ``Annotations/VID/train/...xml`` + ``Data/VID/train/...JPEG``
- :func:`write_custom`      ``<root>/<seq>/{%06d.jpg, groundtruth.txt[, absence.txt]}``
- :func:`write_split_files` the reference split files (GOT-10k index lists, LaSOT names)
- :func:`folder_to_lmdb`, :func:`write_trackingnet_lmdb` the LMDB variants (keys = relative paths)
- :func:`write_settings`    a ``lib/train/admin/local.py`` pointing at those folders

Typical use in a test::

    data = tmp_path / "data"
    names = write_got10k(data / "got10k" / "train", num_sequences=3, num_frames=30)
    write_split_files(tmp_path / "splits", got10k_train=[0, 1], got10k_val=[2])
    settings = write_settings(tmp_path / "repo", data)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from fartrack.data.synthetic import moving_box_sequence

__all__ = [
    "DEFAULT_SIZE",
    "folder_to_lmdb",
    "frames_and_boxes",
    "write_coco",
    "write_custom",
    "write_got10k",
    "write_jpeg",
    "write_lasot",
    "write_settings",
    "write_split_files",
    "write_trackingnet",
    "write_trackingnet_lmdb",
    "write_vasttrack",
    "write_vid",
]

#: Default frame size (height, width) of the generated sequences.
DEFAULT_SIZE: Tuple[int, int] = (72, 96)


def frames_and_boxes(num_frames: int, size: Tuple[int, int] = DEFAULT_SIZE, seed: int = 0):
    """``(frames (T, H, W, 3) uint8 RGB, boxes (T, 4) float64 xywh)`` of one generated sequence."""
    return moving_box_sequence(num_frames=num_frames, height=size[0], width=size[1], seed=seed)


def write_jpeg(path: Path, image_rgb: np.ndarray, quality: int = 95) -> None:
    """Write an RGB uint8 image as a JPEG file (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image_rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok, path
    path.write_bytes(buf.tobytes())


def _box_lines(boxes: np.ndarray, delimiter: str = ",") -> str:
    return "".join(delimiter.join(f"{v:.4f}" for v in box) + "\n" for box in boxes)


def _flags(num_frames: int, frames: Optional[Iterable[int]]) -> np.ndarray:
    out = np.zeros(num_frames, dtype=np.int64)
    for f in frames or ():
        out[f] = 1
    return out


def _write_sequence(
    frame_path: Callable[[int], Path],
    gt_path: Optional[Path],
    num_frames: int,
    size: Tuple[int, int],
    seed: int,
) -> Tuple[np.ndarray, np.ndarray]:
    """Generate one sequence, write frame ``f`` (0-based) to ``frame_path(f)`` and, when ``gt_path`` is
    given, the boxes there (one comma-separated line per frame; parent folders are created). Returns
    ``(frames, boxes)`` as :func:`frames_and_boxes` does."""
    frames, boxes = frames_and_boxes(num_frames, size, seed)
    for f, frame in enumerate(frames):
        write_jpeg(frame_path(f), frame)
    if gt_path is not None:
        gt_path.parent.mkdir(parents=True, exist_ok=True)
        gt_path.write_text(_box_lines(boxes))
    return frames, boxes


def _class_sequences(classes: Sequence[str], per_class: int) -> Iterator[Tuple[int, str, str]]:
    """``(running index, class, sequence name "class-k")`` for ``k = 1..per_class`` of every class."""
    n = 0
    for cls in classes:
        for k in range(1, per_class + 1):
            yield n, cls, f"{cls}-{k}"
            n += 1


def write_got10k(
    root: Path,
    num_sequences: int = 3,
    num_frames: int = 30,
    *,
    size: Tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    absent: Optional[Dict[int, Sequence[int]]] = None,
    cover0: Optional[Dict[int, Sequence[int]]] = None,
    prefix: str = "GOT-10k_Train",
) -> List[str]:
    """A GOT-10k train (or val) folder: ``list.txt`` and one folder per sequence; returns the sequence names.

    ``absent[i]`` / ``cover0[i]``: frames of sequence ``i`` marked absent (``absence.label`` 1) or fully
    covered (``cover.label`` 0); other frames get cover ``1 + f % 8``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(num_sequences):
        name = f"{prefix}_{i + 1:06d}"
        names.append(name)
        seq = root / name
        _write_sequence(lambda f: seq / f"{f + 1:08d}.jpg", seq / "groundtruth.txt", num_frames, size, seed + i)
        absence = _flags(num_frames, (absent or {}).get(i))
        (seq / "absence.label").write_text("".join(f"{v}\n" for v in absence))
        covered = _flags(num_frames, (cover0 or {}).get(i))
        cover = [0 if covered[f] else 1 + f % 8 for f in range(num_frames)]
        (seq / "cover.label").write_text("".join(f"{v}\n" for v in cover))
        (seq / "meta_info.ini").write_text(
            "[METAINFO]\nurl: https://example.invalid\nbegin_time: 0\nend_time: 1\nanno_fps: 10Hz\n"
            "object_class: box\nmotion_class: moving\nmajor_class: thing\nroot_class: object\n"
            "motion_adverb: slowly\nresolution: (96, 72)\n"
        )
    (root / "list.txt").write_text("".join(n + "\n" for n in names))
    return names


def write_lasot(
    root: Path,
    classes: Sequence[str] = ("airplane", "bird"),
    per_class: int = 2,
    num_frames: int = 30,
    *,
    size: Tuple[int, int] = DEFAULT_SIZE,
    seed: int = 100,
    occluded: Optional[Dict[str, Sequence[int]]] = None,
    out_of_view: Optional[Dict[str, Sequence[int]]] = None,
) -> List[str]:
    """LaSOT class folders; returns the sequence names ``class-k``.

    ``occluded[name]`` / ``out_of_view[name]``: frames flagged 1 in ``full_occlusion.txt`` /
    ``out_of_view.txt`` (each file is one comma-separated line).
    """
    root = Path(root)
    names = []
    for n, cls, name in _class_sequences(classes, per_class):
        names.append(name)
        seq = root / cls / name
        _write_sequence(lambda f: seq / "img" / f"{f + 1:08d}.jpg", seq / "groundtruth.txt", num_frames, size,
                        seed + n)
        occ = _flags(num_frames, (occluded or {}).get(name))
        oov = _flags(num_frames, (out_of_view or {}).get(name))
        (seq / "full_occlusion.txt").write_text(",".join(str(v) for v in occ) + "\n")
        (seq / "out_of_view.txt").write_text(",".join(str(v) for v in oov) + "\n")
        (seq / "nlp.txt").write_text(f"the {cls}\n")
    return names


def write_trackingnet(
    root: Path,
    videos_per_set: Dict[int, int] = None,
    num_frames: int = 30,
    *,
    size: Tuple[int, int] = DEFAULT_SIZE,
    seed: int = 200,
) -> List[Tuple[int, str]]:
    """TrackingNet ``TRAIN_<s>`` folders with 0-based frame files; returns ``[(set, video), ...]``."""
    root = Path(root)
    videos_per_set = {0: 2, 1: 1} if videos_per_set is None else videos_per_set
    out = []
    n = 0
    for s, count in sorted(videos_per_set.items()):
        for v in range(count):
            video = f"vid{s}_{v:03d}"
            folder = root / f"TRAIN_{s}"
            _write_sequence(lambda f: folder / "frames" / video / f"{f}.jpg", folder / "anno" / f"{video}.txt",
                            num_frames, size, seed + n)
            n += 1
            out.append((s, video))
    return out


def write_coco(
    root: Path,
    num_images: int = 3,
    *,
    size: Tuple[int, int] = (300, 400),
    seed: int = 300,
    small_object: bool = True,
) -> List[int]:
    """A COCO 2017 train set: ``annotations/instances_train2017.json`` and ``images/train2017/*.jpg``.

    Each image holds one large object (polygon segmentation) and, when ``small_object``, one object below the
    50-pixel visibility threshold; one extra crowd annotation (RLE) is always added and must be skipped.
    Returns the annotation ids of the non-crowd annotations.
    """
    root = Path(root)
    images, annotations, ann_ids = [], [], []
    ann_id = 1
    for i in range(num_images):
        frames, boxes = frames_and_boxes(1, size, seed + i)
        file_name = f"{i + 1:012d}.jpg"
        write_jpeg(root / "images" / "train2017" / file_name, frames[0])
        images.append({"id": i + 1, "file_name": file_name, "height": size[0], "width": size[1]})
        x, y, w, h = (float(v) for v in boxes[0])
        objects = [(x, y, w, h)]
        if small_object:
            objects.append((2.0, 2.0, 10.0, 8.0))
        for bx, by, bw, bh in objects:
            poly = [bx, by, bx + bw, by, bx + bw, by + bh, bx, by + bh]
            annotations.append(
                {"id": ann_id, "image_id": i + 1, "category_id": 1, "bbox": [bx, by, bw, bh], "area": bw * bh,
                 "iscrowd": 0, "segmentation": [poly]}
            )
            ann_ids.append(ann_id)
            ann_id += 1
    annotations.append(
        {"id": ann_id, "image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 60.0, 60.0], "area": 3600.0,
         "iscrowd": 1, "segmentation": {"counts": [0, size[0] * size[1]], "size": [size[0], size[1]]}}
    )
    doc = {
        "info": {"description": "tiny test set"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "box", "supercategory": "thing"}],
    }
    path = root / "annotations" / "instances_train2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return ann_ids


def write_vasttrack(
    root: Path,
    classes: Sequence[str] = ("Sea lion", "T-shirt"),
    per_class: int = 1,
    num_frames: int = 30,
    *,
    size: Tuple[int, int] = DEFAULT_SIZE,
    seed: int = 400,
) -> List[str]:
    """VastTrack ``<Class>/<Class>-<k>/{imgs/%05d.jpg, Groundtruth.txt}``; returns the sequence names."""
    root = Path(root)
    names = []
    for n, cls, name in _class_sequences(classes, per_class):
        names.append(name)
        seq = root / cls / name
        _write_sequence(lambda f: seq / "imgs" / f"{f + 1:05d}.jpg", seq / "Groundtruth.txt", num_frames, size,
                        seed + n)
    return names


def write_vid(
    root: Path,
    num_videos: int = 2,
    num_frames: int = 30,
    *,
    size: Tuple[int, int] = DEFAULT_SIZE,
    seed: int = 500,
    occluded: Optional[Dict[int, Sequence[int]]] = None,
) -> List[str]:
    """ImageNet-VID train videos (one object each, trackid 0); returns the video names.

    Layout: ``Annotations/VID/train/ILSVRC2015_VID_train_0000/<video>/%06d.xml`` and
    ``Data/VID/train/ILSVRC2015_VID_train_0000/<video>/%06d.JPEG``. ``occluded[i]``: frames of video ``i``
    whose object has ``<occluded>1</occluded>``.
    """
    root = Path(root)
    names = []
    set_name = "ILSVRC2015_VID_train_0000"
    for i in range(num_videos):
        video = f"ILSVRC2015_train_{i:08d}"
        names.append(video)
        _, boxes = _write_sequence(lambda f: root / "Data" / "VID" / "train" / set_name / video / f"{f:06d}.JPEG",
                                   None, num_frames, size, seed + i)
        occ = set((occluded or {}).get(i, ()))
        for f in range(num_frames):
            x, y, w, h = (int(round(v)) for v in boxes[f])
            xml = (
                f"<annotation><folder>{set_name}/{video}</folder><filename>{f:06d}</filename>"
                f"<size><width>{size[1]}</width><height>{size[0]}</height></size>"
                f"<object><trackid>0</trackid><name>n01503061</name><bndbox><xmax>{x + w - 1}</xmax>"
                f"<xmin>{x}</xmin><ymax>{y + h - 1}</ymax><ymin>{y}</ymin></bndbox>"
                f"<occluded>{1 if f in occ else 0}</occluded><generated>0</generated></object></annotation>\n"
            )
            path = root / "Annotations" / "VID" / "train" / set_name / video / f"{f:06d}.xml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(xml)
    return names


def write_custom(
    root: Path,
    num_sequences: int = 2,
    num_frames: int = 30,
    *,
    size: Tuple[int, int] = DEFAULT_SIZE,
    seed: int = 600,
    absent: Optional[Dict[int, Sequence[int]]] = None,
    image_subdir: str = "",
) -> List[str]:
    """The generic custom layout: ``<root>/<seq>/[<image_subdir>/]%06d.jpg``, ``groundtruth.txt`` and,
    when ``absent`` names frames of that sequence, ``absence.txt`` (one 0/1 per line, 1 = absent)."""
    root = Path(root)
    names = []
    for i in range(num_sequences):
        name = f"seq{i:02d}"
        names.append(name)
        seq = root / name
        img_dir = seq / image_subdir if image_subdir else seq
        _write_sequence(lambda f: img_dir / f"{f:06d}.jpg", seq / "groundtruth.txt", num_frames, size, seed + i)
        if absent and i in absent:
            flags = _flags(num_frames, absent[i])
            (seq / "absence.txt").write_text("".join(f"{v}\n" for v in flags))
    return names


def write_split_files(
    split_dir: Path,
    *,
    got10k_train: Optional[Sequence[int]] = None,
    got10k_val: Optional[Sequence[int]] = None,
    got10k_full: Optional[Sequence[int]] = None,
    lasot_train: Optional[Sequence[str]] = None,
    vasttrack_train: Optional[Sequence[str]] = None,
    trackingnet_classes: Optional[Dict[str, str]] = None,
) -> Path:
    """The reference split files (only those given): GOT-10k index lists, LaSOT / VastTrack names, and the
    TrackingNet class map (``video<TAB>class``)."""
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "got10k_vot_train_split.txt": got10k_train,
        "got10k_vot_val_split.txt": got10k_val,
        "got10k_train_full_split.txt": got10k_full,
        "lasot_train_split.txt": lasot_train,
        "vasttrack_train_split.txt": vasttrack_train,
    }
    for name, items in files.items():
        if items is not None:
            (split_dir / name).write_text("".join(f"{v}\n" for v in items))
    if trackingnet_classes is not None:
        (split_dir / "trackingnet_classmap.txt").write_text(
            "".join(f"{k}\t{v}\n" for k, v in trackingnet_classes.items())
        )
    return split_dir


def folder_to_lmdb(src: Path, env_path: Path, key_prefix: str = "") -> List[str]:
    """Store every file under ``src`` in a new LMDB environment at ``env_path``.

    Keys are ``key_prefix + <path relative to src>`` with ``/`` separators, values the raw file bytes
    (images stay encoded, text stays UTF-8) -- the layout of the reference's LMDB variants. Returns the keys.
    """
    import lmdb

    src, env_path = Path(src), Path(env_path)
    env_path.mkdir(parents=True, exist_ok=True)
    keys = []
    env = lmdb.open(str(env_path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for dirpath, _, filenames in os.walk(src):
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                key = key_prefix + full.relative_to(src).as_posix()
                txn.put(key.encode("utf-8"), full.read_bytes())
                keys.append(key)
    env.close()
    return keys


def write_trackingnet_lmdb(src_root: Path, lmdb_root: Path) -> List[Tuple[int, str]]:
    """TrackingNet LMDB from a folder written by :func:`write_trackingnet`: ``<lmdb_root>/seq_list.json``
    (a list of ``[set_id, video]``) and one environment ``TRAIN_<s>_lmdb`` per set."""
    src_root, lmdb_root = Path(src_root), Path(lmdb_root)
    seqs: List[Tuple[int, str]] = []
    for set_dir in sorted(src_root.glob("TRAIN_*")):
        s = int(set_dir.name.split("_")[1])
        for anno in sorted((set_dir / "anno").glob("*.txt")):
            seqs.append((s, anno.stem))
        folder_to_lmdb(set_dir, lmdb_root / f"TRAIN_{s}_lmdb")
    lmdb_root.mkdir(parents=True, exist_ok=True)
    (lmdb_root / "seq_list.json").write_text(json.dumps([[s, v] for s, v in seqs]))
    return seqs


def write_settings(repo_root: Path, data_dir: Path, save_dir: Optional[Path] = None, **extra: str):
    """Write ``<repo_root>/lib/train/admin/local.py`` (and the test file) pointing at ``data_dir`` with the
    default sub-folders (``got10k/train``, ``lasot``, ...); ``extra`` adds or replaces keys (e.g.
    ``custom_dir=...``). Returns the loaded training settings."""
    from fartrack.config import load_train_settings, write_local_settings

    repo_root = Path(repo_root)
    write_local_settings(repo_root, data_dir, save_dir or (repo_root / "output"), force=True, repo_root=repo_root)
    if extra:
        path = repo_root / "lib" / "train" / "admin" / "local.py"
        text = path.read_text()
        text += "".join(f"        self.{k} = {os.fspath(v)!r}\n" for k, v in extra.items())
        path.write_text(text)
    return load_train_settings(repo_root)
