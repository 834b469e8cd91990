"""Build the training datasets named in ``DATA.TRAIN.DATASETS_NAME`` from the local path settings.

| YAML name | settings key | sequences |
|---|---|---|
| ``GOT10K_vottrain`` / ``GOT10K_votval`` | ``got10k_dir`` | ``got10k_vot_{train,val}_split.txt`` (required) |
| ``GOT10K_train_full`` | ``got10k_dir`` | ``got10k_train_full_split.txt`` if present, else all of ``list.txt`` |
| ``GOT10K_official_val`` | ``got10k_val_dir`` | all of ``list.txt`` |
| ``LASOT`` | ``lasot_dir`` | ``lasot_train_split.txt`` (required) |
| ``TRACKINGNET`` | ``trackingnet_dir`` | every ``TRAIN_<s>/anno/*.txt`` (s = 0..11, the sets present) |
| ``COCO17`` | ``coco_dir`` | non-crowd annotations of ``instances_train2017.json`` |
| ``VID`` | ``imagenet_dir`` | ImageNet-VID train tracklets |
| ``VastTrack`` | ``vasttrack_dir`` | ``vasttrack_train_split.txt`` if present, else the folder listing |
| ``SYNTHETIC`` | ``synthetic_dir`` | GOT-10k layout in ``<synthetic_dir>/train`` (or the folder itself) |
| ``CUSTOM`` | ``custom_dir`` | every sub-folder with a ``groundtruth.txt`` (see ``custom.py``) |
| ``<name>_lmdb`` | ``got10k_lmdb_dir``, ``lasot_lmdb_dir``, ``trackingnet_lmdb_dir``, ``coco_lmdb_dir``, ``imagenet_lmdb_dir`` | as above, from LMDB |

Split files are read from ``DATA.SPLITS_DIR`` (relative to the settings' ``workspace_dir``, or absolute).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from fartrack.data.datasets.base import FileStore, TrackingDataset, require_dir
from fartrack.data.datasets.coco import Coco
from fartrack.data.datasets.custom import CustomFolder
from fartrack.data.datasets.got10k import Got10k
from fartrack.data.datasets.imagenet_vid import ImagenetVid
from fartrack.data.datasets.lasot import Lasot
from fartrack.data.datasets.lmdb_backend import LmdbStore
from fartrack.data.datasets.trackingnet import TrackingNet
from fartrack.data.datasets.vasttrack import VastTrack
from fartrack.data.image_io import DatasetError

__all__ = ["SPLIT_FILES", "build_dataset", "build_datasets", "splits_dir"]

#: Split file of each dataset name that uses one.
SPLIT_FILES: Dict[str, str] = {
    "GOT10K_vottrain": "got10k_vot_train_split.txt",
    "GOT10K_votval": "got10k_vot_val_split.txt",
    "GOT10K_train_full": "got10k_train_full_split.txt",
    "LASOT": "lasot_train_split.txt",
    "VastTrack": "vasttrack_train_split.txt",
}

_REPO_ROOT = Path(__file__).resolve().parents[3]


def splits_dir(cfg: Any, settings: Any) -> Path:
    """The folder of the split files: ``DATA.SPLITS_DIR``, relative to ``settings.workspace_dir``."""
    path = Path(os.path.expanduser(str(cfg.DATA.SPLITS_DIR)))
    if path.is_absolute():
        return path
    try:
        base = Path(settings.workspace_dir)
    except AttributeError:
        base = _REPO_ROOT
    return base / path


def _split_path(name: str, cfg: Any, settings: Any, required: bool) -> Optional[Path]:
    base = name[: -len("_lmdb")] if name.endswith("_lmdb") else name
    fname = SPLIT_FILES[base]
    path = splits_dir(cfg, settings) / fname
    if path.is_file():
        return path
    if required:
        raise DatasetError(
            f"{name}: split file {os.fspath(path)} not found. Copy {fname} from the lib/train/data_specs/ "
            f"folder of the reference code release (STARK / OSTrack / FARTrack ship the same files) into "
            f"{os.fspath(path.parent)}, or set DATA.SPLITS_DIR to the folder that holds it"
        )
    return None


def _read_indices(path: Path) -> List[int]:
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                out.append(int(line.strip()))
            except ValueError:
                raise DatasetError(f"{path}: line {number}: expected a sequence index, got {line.strip()!r}") from None
    return out


def _read_names(path: Path) -> List[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _setting(settings: Any, key: str, name: str) -> str:
    value = getattr(settings, key)
    if not value:
        raise DatasetError(f"{name}: settings key {key!r} is empty in lib/train/admin/local.py")
    return os.fspath(value)


def _got10k(name: str, cfg: Any, settings: Any, lmdb: bool) -> Got10k:
    base = name[: -len("_lmdb")] if lmdb else name
    if base == "GOT10K_official_val":
        root = require_dir(_setting(settings, "got10k_val_dir", name), name, "got10k_val_dir")
        return Got10k(FileStore(root), name=name)
    key = "got10k_lmdb_dir" if lmdb else "got10k_dir"
    root = require_dir(_setting(settings, key, name), name, key)
    store = LmdbStore(root, prefix="train/") if lmdb else FileStore(root)
    split = _split_path(name, cfg, settings, required=base != "GOT10K_train_full")
    indices = _read_indices(split) if split is not None else None
    return Got10k(store, name=name, indices=indices, split_source=os.fspath(split) if split else "")


def _trackingnet(name: str, settings: Any, lmdb: bool) -> TrackingNet:
    key = "trackingnet_lmdb_dir" if lmdb else "trackingnet_dir"
    root = require_dir(_setting(settings, key, name), name, key)
    stores: Dict[int, Any] = {}
    sequences = []
    if lmdb:
        list_path = root / "seq_list.json"
        if not list_path.is_file():
            raise DatasetError(f"{name}: {list_path} not found (a list of [set_id, video])")
        for s, video in json.loads(list_path.read_text()):
            if int(s) not in stores:
                stores[int(s)] = LmdbStore(root / f"TRAIN_{int(s)}_lmdb")
            sequences.append((int(s), str(video)))
    else:
        for s in range(12):
            set_dir = root / f"TRAIN_{s}"
            if not set_dir.is_dir():
                continue
            stores[s] = FileStore(set_dir)
            sequences += [(s, p.stem) for p in sorted((set_dir / "anno").glob("*.txt"))]
        if not stores:
            raise DatasetError(f"{name}: no TRAIN_<s> folder (s = 0..11) under {root}")
    return TrackingNet(stores, sequences, name=name)


def build_dataset(name: str, cfg: Any, settings: Any) -> TrackingDataset:
    """The dataset called ``name`` (a ``DATA.*.DATASETS_NAME`` entry); errors name the missing path or key."""
    lmdb = name.endswith("_lmdb")
    base = name[: -len("_lmdb")] if lmdb else name
    if base.startswith("GOT10K_"):
        return _got10k(name, cfg, settings, lmdb)
    if base == "LASOT":
        key = "lasot_lmdb_dir" if lmdb else "lasot_dir"
        root = require_dir(_setting(settings, key, name), name, key)
        names = _read_names(_split_path(name, cfg, settings, required=True))
        return Lasot(LmdbStore(root) if lmdb else FileStore(root), names, name=name)
    if base == "TRACKINGNET":
        return _trackingnet(name, settings, lmdb)
    if base == "COCO17":
        key = "coco_lmdb_dir" if lmdb else "coco_dir"
        root = require_dir(_setting(settings, key, name), name, key)
        return Coco(LmdbStore(root) if lmdb else FileStore(root), name=name)
    if base == "VID":
        key = "imagenet_lmdb_dir" if lmdb else "imagenet_dir"
        root = require_dir(_setting(settings, key, name), name, key)
        if lmdb:
            return ImagenetVid(LmdbStore(root), name=name)
        return ImagenetVid(FileStore(root), name=name, root=root)
    if lmdb:
        raise DatasetError(f"{name}: {base} has no LMDB variant")
    if base == "VastTrack":
        root = require_dir(_setting(settings, "vasttrack_dir", name), name, "vasttrack_dir")
        split = _split_path(name, cfg, settings, required=False)
        if split is not None:
            names = _read_names(split)
        else:
            names = sorted(
                seq.name for cls in root.iterdir() if cls.is_dir() for seq in cls.iterdir()
                if (seq / "Groundtruth.txt").is_file()
            )
        return VastTrack(FileStore(root), names, name=name)
    if base == "SYNTHETIC":
        root = require_dir(_setting(settings, "synthetic_dir", name), name, "synthetic_dir")
        folder = root / "train" if (root / "train" / "list.txt").is_file() else root
        return Got10k(FileStore(folder), name=name)
    if base == "CUSTOM":
        root = require_dir(_setting(settings, "custom_dir", name), name, "custom_dir")
        return CustomFolder(root, name=name)
    raise DatasetError(f"unknown training dataset name {name!r}")


def build_datasets(names: Sequence[str], cfg: Any, settings: Any) -> List[TrackingDataset]:
    """:func:`build_dataset` for each name, in order."""
    return [build_dataset(n, cfg, settings) for n in names]
