"""Generation and reading of the per-machine settings files (lib/train/admin/local.py, lib/test/evaluation/local.py)."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fartrack.config import (
    GENERATE_COMMAND,
    LocalSettingsError,
    LocalSettingsNotFoundError,
    MissingSettingError,
    load_test_settings,
    load_train_settings,
    write_local_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tracking" / "create_default_local_file.py"
TRAIN_FILE = Path("lib/train/admin/local.py")
TEST_FILE = Path("lib/test/evaluation/local.py")


def generate(root: Path, force: bool = False):
    return write_local_settings(root / "ws", root / "data", root / "out", force=force, repo_root=root)


def test_write_creates_both_files_with_absolute_paths(tmp_path):
    results = generate(tmp_path)
    assert results == [(tmp_path / TRAIN_FILE, True), (tmp_path / TEST_FILE, True)]
    train = load_train_settings(tmp_path)
    data = str(tmp_path / "data")
    assert train.workspace_dir == str(tmp_path / "ws")
    assert train.lasot_dir == os.path.join(data, "lasot")
    assert train.got10k_dir == os.path.join(data, "got10k", "train")
    assert train.got10k_val_dir == os.path.join(data, "got10k", "val")
    assert train.trackingnet_dir == os.path.join(data, "trackingnet")
    assert train.coco_dir == os.path.join(data, "coco")
    assert train.imagenet_dir == os.path.join(data, "vid")
    assert train.lasot_lmdb_dir == os.path.join(data, "lasot_lmdb")
    assert train.got10k_lmdb_dir == os.path.join(data, "got10k_lmdb")
    assert train.imagenet_lmdb_dir == os.path.join(data, "vid_lmdb")
    assert train.synthetic_dir == os.path.join(data, "synthetic")
    assert train.vasttrack_dir.startswith(os.path.join(data, "vasttrack"))
    assert all(os.path.isabs(v) for v in train.as_dict().values())

    test = load_test_settings(tmp_path)
    out = str(tmp_path / "out")
    assert test.prj_dir == str(tmp_path / "ws") and test.save_dir == out
    assert test.results_path == os.path.join(out, "test", "tracking_results")
    assert test.result_plot_path == os.path.join(out, "test", "result_plots")
    assert test.network_path == os.path.join(out, "test", "networks")
    assert test.got10k_path == os.path.join(data, "got10k")
    assert test.lasot_path == os.path.join(data, "lasot")
    assert test.lasot_extension_subset_path == os.path.join(data, "lasot_extension_subset")
    assert "lasot_extension_subset_path_path" not in test.as_dict()
    for key in ("trackingnet_path", "nfs_path", "uav_path", "otb_path", "vasttrack_path", "synthetic_path"):
        assert getattr(test, key).startswith(data), key
    assert test.synthetic_path == train.synthetic_dir


def test_relative_arguments_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_local_settings(".", "./data", "./output", repo_root=tmp_path)
    assert load_train_settings(tmp_path).coco_dir == str(tmp_path / "data" / "coco")
    assert load_test_settings(tmp_path).save_dir == str(tmp_path / "output")


def test_generated_files_have_the_expected_interface(tmp_path):
    generate(tmp_path)
    namespace: dict = {}
    exec(compile((tmp_path / TRAIN_FILE).read_text(), "train_local", "exec"), namespace)
    assert namespace["EnvironmentSettings"]().lasot_dir.endswith("lasot")
    namespace = {}
    exec(compile((tmp_path / TEST_FILE).read_text(), "test_local", "exec"), namespace)
    assert namespace["local_env_settings"]().got10k_path.endswith("got10k")


def test_existing_files_are_not_overwritten_without_force(tmp_path):
    generate(tmp_path)
    edited = (tmp_path / TRAIN_FILE).read_text().replace("/lasot'", "/MY_LASOT'")
    (tmp_path / TRAIN_FILE).write_text(edited)
    results = write_local_settings(tmp_path / "other", tmp_path / "d2", tmp_path / "o2", repo_root=tmp_path)
    assert results == [(tmp_path / TRAIN_FILE, False), (tmp_path / TEST_FILE, False)]
    assert (tmp_path / TRAIN_FILE).read_text() == edited
    assert load_train_settings(tmp_path).lasot_dir.endswith("MY_LASOT")
    assert load_test_settings(tmp_path).save_dir == str(tmp_path / "out")


def test_force_overwrites(tmp_path):
    generate(tmp_path)
    (tmp_path / TRAIN_FILE).write_text("broken = (\n")
    results = write_local_settings(tmp_path / "w", tmp_path / "d2", tmp_path / "o2", force=True, repo_root=tmp_path)
    assert [written for _, written in results] == [True, True]
    assert load_train_settings(tmp_path).lasot_dir == str(tmp_path / "d2" / "lasot")
    assert load_test_settings(tmp_path).save_dir == str(tmp_path / "o2")
    leftovers = [p.name for p in (tmp_path / TRAIN_FILE).parent.iterdir() if p.name != "local.py"]
    assert leftovers == [], "atomic write leaves no temporary files"


def test_only_missing_file_is_created(tmp_path):
    generate(tmp_path)
    (tmp_path / TEST_FILE).unlink()
    results = generate(tmp_path)
    assert results == [(tmp_path / TRAIN_FILE, False), (tmp_path / TEST_FILE, True)]


@pytest.mark.parametrize("loader,rel", [(load_train_settings, TRAIN_FILE), (load_test_settings, TEST_FILE)])
def test_missing_file_names_it_and_the_command(tmp_path, loader, rel):
    with pytest.raises(LocalSettingsNotFoundError) as info:
        loader(tmp_path)
    message = str(info.value)
    assert str(tmp_path / rel) in message and GENERATE_COMMAND in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_key_names_it(tmp_path):
    generate(tmp_path)
    train = load_train_settings(tmp_path)
    with pytest.raises(MissingSettingError, match=r"has no setting 'sav_dir'.*--force"):
        train.sav_dir
    assert not hasattr(train, "sav_dir") and getattr(train, "sav_dir", None) is None
    text = (
        (tmp_path / TEST_FILE).read_text().replace("lasot_extension_subset_path ", "lasot_extension_subset_path_path")
    )
    (tmp_path / TEST_FILE).write_text(text)
    with pytest.raises(AttributeError, match="it defines 'lasot_extension_subset_path_path'"):
        load_test_settings(tmp_path).lasot_extension_subset_path


def test_broken_file_is_reported_and_kept(tmp_path):
    generate(tmp_path)
    (tmp_path / TEST_FILE).write_text("def local_env_settings(:\n")
    with pytest.raises(LocalSettingsError, match=r"could not read local settings file .*local\.py: SyntaxError"):
        load_test_settings(tmp_path)
    assert (tmp_path / TEST_FILE).read_text() == "def local_env_settings(:\n"
    (tmp_path / TRAIN_FILE).write_text(
        "class EnvironmentSettings:\n    def __init__(self):\n        self.lasot_dir = 5\n"
    )
    with pytest.raises(LocalSettingsError, match="'lasot_dir' must be a path string"):
        load_train_settings(tmp_path)


def test_settings_object_pickles_and_accepts_updates(tmp_path):
    generate(tmp_path)
    test = load_test_settings(tmp_path)
    test.results_path = "/elsewhere"
    clone = pickle.loads(pickle.dumps(test))
    assert clone.results_path == "/elsewhere" and clone.path == tmp_path / TEST_FILE
    assert clone.as_dict() == test.as_dict()


def _copy_script(root: Path) -> Path:
    target = root / "tracking" / SCRIPT.name
    target.parent.mkdir(parents=True)
    shutil.copy(SCRIPT, target)
    return target


def _run(args, cwd: Path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_cli_writes_skips_and_forces(tmp_path):
    script = _copy_script(tmp_path)
    args = [str(script.relative_to(tmp_path)), "--workspace_dir", ".", "--data_dir", "./data", "--save_dir", "./output"]
    first = _run(args, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("wrote ") == 2
    assert load_train_settings(tmp_path).lasot_dir == str(tmp_path / "data" / "lasot")

    second = _run(args, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("skipped ") == 2 and "--force" in second.stdout

    third = _run([*args[:-1], "./elsewhere", "--force"], tmp_path)
    assert third.returncode == 0, third.stderr
    assert third.stdout.count("wrote ") == 2
    assert load_test_settings(tmp_path).save_dir == str(tmp_path / "elsewhere")


def test_cli_runs_without_installation_from_any_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--workspace_dir" in result.stdout and "--force" in result.stdout
