"""Per-machine path settings: the generated ``lib/train/admin/local.py`` and ``lib/test/evaluation/local.py``.

The files follow the layout users of this tracker family expect (a class ``EnvironmentSettings`` for
training, a function ``local_env_settings()`` for testing). They are written by
``tracking/create_default_local_file.py`` (see :func:`write_local_settings`), are git-ignored, and are
read back here by path (:func:`load_train_settings`, :func:`load_test_settings`). A missing file, a file
that fails to import, or a missing key is a clear error; the files are never rewritten behind the user's back.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from fartrack.utils.io import atomic_write_text

__all__ = [
    "GENERATE_COMMAND",
    "TEST_SETTINGS_FILE",
    "TRAIN_SETTINGS_FILE",
    "LocalSettings",
    "LocalSettingsError",
    "LocalSettingsNotFoundError",
    "MissingSettingError",
    "default_test_settings",
    "default_train_settings",
    "load_test_settings",
    "load_train_settings",
    "write_local_settings",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Locations of the generated files, relative to the repository root.
TRAIN_SETTINGS_FILE = Path("lib/train/admin/local.py")
TEST_SETTINGS_FILE = Path("lib/test/evaluation/local.py")

#: The command that (re)creates both files.
GENERATE_COMMAND = (
    "python tracking/create_default_local_file.py --workspace_dir . --data_dir ./data --save_dir ./output"
)

_REPO_ROOT = Path(__file__).resolve().parents[2]

# (key, path relative to the workspace / data / save folder, description)
_TRAIN_KEYS: Tuple[Tuple[str, str, str, str], ...] = (
    ("workspace_dir", "workspace", "", "project workspace (the repository root)"),
    ("tensorboard_dir", "workspace", "tensorboard", "tensorboard event files"),
    ("pretrained_networks", "workspace", "pretrained_models", "folder holding MODEL.PRETRAIN_FILE (MAE weights)"),
    ("lasot_dir", "data", "lasot", "LaSOT: <class>/<class>-<k>/"),
    ("got10k_dir", "data", "got10k/train", "GOT-10k train split (list.txt + GOT-10k_Train_*)"),
    ("got10k_val_dir", "data", "got10k/val", "GOT-10k val split (GOT10K_official_val)"),
    ("trackingnet_dir", "data", "trackingnet", "TrackingNet: TRAIN_0..TRAIN_11/"),
    ("coco_dir", "data", "coco", "COCO 2017: annotations/ + images/train2017/"),
    ("imagenet_dir", "data", "vid", "ImageNet-VID: Annotations/ + Data/"),
    ("vasttrack_dir", "data", "vasttrack/train", "VastTrack train: <Class>/<Class>-<k>/"),
    ("synthetic_dir", "data", "synthetic", "synthetic sequences (tracking/make_synthetic.py --out)"),
    ("custom_dir", "data", "custom", "custom sequences: <seq>/[img/]*.jpg|png + groundtruth.txt [+ absence.txt]"),
    ("lasot_lmdb_dir", "data", "lasot_lmdb", "LaSOT LMDB"),
    ("got10k_lmdb_dir", "data", "got10k_lmdb", "GOT-10k LMDB"),
    ("trackingnet_lmdb_dir", "data", "trackingnet_lmdb", "TrackingNet LMDB (seq_list.json + TRAIN_<s>_lmdb)"),
    ("coco_lmdb_dir", "data", "coco_lmdb", "COCO 2017 LMDB"),
    ("imagenet_lmdb_dir", "data", "vid_lmdb", "ImageNet-VID LMDB"),
)

_TEST_KEYS: Tuple[Tuple[str, str, str, str], ...] = (
    ("prj_dir", "workspace", "", "project workspace (the repository root)"),
    ("save_dir", "save", "", "training output root (checkpoints/train/<script>/<config>/)"),
    ("results_path", "save", "test/tracking_results", "tracking results"),
    ("network_path", "save", "test/networks", "extra networks for testing"),
    ("result_plot_path", "save", "test/result_plots", "analysis reports and plots"),
    ("got10k_path", "data", "got10k", "GOT-10k root with val/ and test/"),
    ("lasot_path", "data", "lasot", "LaSOT: <class>/<class>-<k>/"),
    ("lasot_extension_subset_path", "data", "lasot_extension_subset", "LaSOT extension (LaSOT_ext)"),
    ("trackingnet_path", "data", "trackingnet", "TrackingNet with TEST/"),
    ("nfs_path", "data", "nfs", "NfS (30 fps): sequences/ + anno/"),
    ("uav_path", "data", "uav", "UAV123: data_seq/UAV123/ + anno/UAV123/"),
    ("otb_path", "data", "otb", "OTB-100"),
    ("vasttrack_path", "data", "vasttrack/test", "VastTrack test: <Class>/<Class>-<k>/"),
    ("synthetic_path", "data", "synthetic", "synthetic sequences (tracking/make_synthetic.py --out)"),
)


class LocalSettingsError(RuntimeError):
    """A local settings file is missing, does not import, or lacks / mistypes a key."""


class LocalSettingsNotFoundError(LocalSettingsError, FileNotFoundError):
    """The local settings file does not exist."""


class MissingSettingError(LocalSettingsError, AttributeError):
    """A key was requested that the local settings file does not define."""


def _root(repo_root: Optional[PathLike]) -> Path:
    return Path(repo_root) if repo_root is not None else _REPO_ROOT


def _values(keys: Tuple[Tuple[str, str, str, str], ...], bases: Dict[str, str]) -> List[Tuple[str, str, str]]:
    out = []
    for name, base, rel, doc in keys:
        value = os.path.join(bases[base], *rel.split("/")) if rel else bases[base]
        out.append((name, value, doc))
    return out


def _bases(workspace_dir: PathLike, data_dir: PathLike, save_dir: PathLike) -> Dict[str, str]:
    return {
        "workspace": os.path.abspath(os.fspath(workspace_dir)),
        "data": os.path.abspath(os.fspath(data_dir)),
        "save": os.path.abspath(os.fspath(save_dir)),
    }


def default_train_settings(workspace_dir: PathLike, data_dir: PathLike, save_dir: PathLike) -> Dict[str, str]:
    """The training settings (key -> absolute path) that :func:`write_local_settings` writes."""
    return {k: v for k, v, _ in _values(_TRAIN_KEYS, _bases(workspace_dir, data_dir, save_dir))}


def default_test_settings(workspace_dir: PathLike, data_dir: PathLike, save_dir: PathLike) -> Dict[str, str]:
    """The test settings (key -> absolute path) that :func:`write_local_settings` writes."""
    return {k: v for k, v, _ in _values(_TEST_KEYS, _bases(workspace_dir, data_dir, save_dir))}


_HEADER = '''"""{title} of this machine.

Generated by tracking/create_default_local_file.py; edit the paths freely (this file is git-ignored and is
never rewritten unless you pass --force). fartrack reads it with fartrack.config.{reader}().
"""
'''


def _assignments(rows: List[Tuple[str, str, str]], indent: str) -> str:
    width = max(len(name) for name, _, _ in rows)
    return "".join(f"{indent}self.{name.ljust(width)} = {value!r}  # {doc}\n" for name, value, doc in rows)


def _train_file_text(rows: List[Tuple[str, str, str]]) -> str:
    return (
        _HEADER.format(title="Training path settings", reader="load_train_settings")
        + "\n\nclass EnvironmentSettings:\n"
        + '    """Paths used by training: datasets, pretrained weights, tensorboard."""\n\n'
        + "    def __init__(self):\n"
        + _assignments(rows, " " * 8)
    )


def _test_file_text(rows: List[Tuple[str, str, str]]) -> str:
    return (
        _HEADER.format(title="Test path settings", reader="load_test_settings")
        + "\n\nclass LocalEnvSettings:\n"
        + '    """Paths used by evaluation: benchmarks, checkpoints, results."""\n\n'
        + "    def __init__(self):\n"
        + _assignments(rows, " " * 8)
        + "\n\ndef local_env_settings():\n"
        + '    """The test path settings."""\n'
        + "    return LocalEnvSettings()\n"
    )


def write_local_settings(
    workspace_dir: PathLike,
    data_dir: PathLike,
    save_dir: PathLike,
    force: bool = False,
    repo_root: Optional[PathLike] = None,
) -> List[Tuple[Path, bool]]:
    """Write the training and test ``local.py`` files under ``repo_root``.

    Paths are made absolute (``os.path.abspath``, i.e. relative to the current directory) when written.
    An existing file is kept unless ``force`` is true, in which case it is replaced atomically.

    Returns:
        ``[(path, written), ...]`` for the training file, then the test file; ``written`` is False when an
        existing file was kept.
    """
    root = _root(repo_root)
    bases = _bases(workspace_dir, data_dir, save_dir)
    files = (
        (root / TRAIN_SETTINGS_FILE, _train_file_text(_values(_TRAIN_KEYS, bases))),
        (root / TEST_SETTINGS_FILE, _test_file_text(_values(_TEST_KEYS, bases))),
    )
    results = []
    for path, text in files:
        if path.exists() and not force:
            results.append((path, False))
            continue
        atomic_write_text(path, text)
        results.append((path, True))
    return results


class LocalSettings:
    """Attribute view of a settings file; a missing key raises :class:`MissingSettingError` naming it."""

    def __init__(self, values: Dict[str, Any], path: Path):
        self.__dict__["_values"] = dict(values)
        self.__dict__["_path"] = Path(path)

    @property
    def path(self) -> Path:
        """The file the settings were read from."""
        return self.__dict__["_path"]

    def as_dict(self) -> Dict[str, Any]:
        """A copy of all settings."""
        return dict(self.__dict__["_values"])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        close = difflib.get_close_matches(name, list(values), n=1, cutoff=0.8)
        hint = f" (it defines {close[0]!r}; a typo?)" if close else ""
        raise MissingSettingError(
            f"{self.__dict__.get('_path')} has no setting {name!r}{hint}; add it to the file or regenerate it "
            f"with: {GENERATE_COMMAND} --force"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__["_values"][name] = value

    def __repr__(self) -> str:
        return f"LocalSettings({self.path}, {len(self.__dict__['_values'])} keys)"


def _load(path: Path, factory_name: str, declared: Tuple[Tuple[str, str, str, str], ...]) -> LocalSettings:
    if not path.is_file():
        raise LocalSettingsNotFoundError(f"local settings file {path} not found; create it with: {GENERATE_COMMAND}")
    module_name = "_fartrack_local_" + "_".join(path.parts[-3:-1])
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        factory: Callable[[], Any] = getattr(module, factory_name)
        values = {k: v for k, v in vars(factory()).items() if not k.startswith("_")}
    except Exception as exc:  # report any failure with the file name; never rewrite the user's file
        raise LocalSettingsError(
            f"could not read local settings file {path}: {type(exc).__name__}: {exc} "
            f"(fix the file, or regenerate it with: {GENERATE_COMMAND} --force)"
        ) from exc
    for name, _, _, _ in declared:
        if name in values and values[name] is not None:
            if not isinstance(values[name], (str, os.PathLike)):
                raise LocalSettingsError(f"{path}: setting {name!r} must be a path string, got {values[name]!r}")
            values[name] = os.fspath(values[name])
    return LocalSettings(values, path)


def load_train_settings(repo_root: Optional[PathLike] = None) -> LocalSettings:
    """Training settings from ``<repo_root>/lib/train/admin/local.py`` (class ``EnvironmentSettings``)."""
    return _load(_root(repo_root) / TRAIN_SETTINGS_FILE, "EnvironmentSettings", _TRAIN_KEYS)


def load_test_settings(repo_root: Optional[PathLike] = None) -> LocalSettings:
    """Test settings from ``<repo_root>/lib/test/evaluation/local.py`` (function ``local_env_settings``)."""
    return _load(_root(repo_root) / TEST_SETTINGS_FILE, "local_env_settings", _TEST_KEYS)
