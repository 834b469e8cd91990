"""tracking/train.py: a real run on tiny data in the real layouts, and bad input -> a message naming the
file or key and a non-zero exit (or a skipped sample that is reported). Also the shared workspace helpers
used by the other training test files (tiny datasets, tiny YAML configs, running the CLI)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import torch
import yaml

from tiny_models import load_script
from train_layouts import write_coco, write_got10k, write_lasot, write_settings, write_split_files

REPO = Path(__file__).resolve().parents[1]
TRAIN_PY = REPO / "tracking" / "train.py"

STAGE_YAML = {
    "fartrack": "experiments/fartrack/fartrack_tiny_224_full.yaml",
    "fartrack_distill": "experiments/fartrack_distill/fartrack_distill_224_full.yaml",
    "fartrack_sparse": "experiments/fartrack_sparse/fartrack_sparse_224_full.yaml",
}
NET_TYPE = {"fartrack": "FARTrack", "fartrack_distill": "FARTrackDistill", "fartrack_sparse": "FARTrackSparse"}


# ------------------------------------------------------------------------------------------- helpers


def make_workspace(root: Path, frames: int = 40) -> Dict[str, Path]:
    """Tiny GOT-10k (3 sequences), LaSOT (2) and COCO (3 images) sets, split files and local settings."""
    root = Path(root)
    data = root / "data"
    write_got10k(data / "got10k" / "train", num_sequences=3, num_frames=frames)
    lasot = write_lasot(data / "lasot", classes=("airplane",), per_class=2, num_frames=frames)
    write_coco(data / "coco", num_images=3)
    splits = write_split_files(root / "splits", got10k_train=[0, 1], got10k_val=[2], lasot_train=lasot)
    write_settings(root / "repo", data)
    return {"root": root, "data": data, "splits": splits, "settings_root": root / "repo"}


def _set(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def tiny_overrides(script: str, ws: Dict[str, Path]) -> Dict[str, Any]:
    """Small crops, width 48, 2 templates, batch 4 (2 clips of 6 frames in stage 3), 2 epochs."""
    out = {
        "MODEL.EMBED_DIM": 48,
        "DATA.SPLITS_DIR": str(ws["splits"]),
        "DATA.TEMPLATE.SIZE": 32,
        "DATA.TEMPLATE.NUMBER": 2,
        "DATA.SEARCH.SIZE": 64,
        "TEST.TEMPLATE_SIZE": 32,
        "TEST.SEARCH_SIZE": 64,
        "DATA.VAL.DATASETS_NAME": ["GOT10K_votval"],
        "DATA.VAL.DATASETS_RATIO": [1],
        "DATA.VAL.SAMPLE_PER_EPOCH": 8,
        "TRAIN.VAL_EPOCH_INTERVAL": 2,
        "TRAIN.BATCH_SIZE": 4,
        "TRAIN.NUM_WORKER": 0,
        "TRAIN.EPOCH": 2,
        "TRAIN.LR": 1e-3,
        "TRAIN.PRINT_INTERVAL": 2,
        "TRAIN.SAVE_EVERY_EPOCH": 1,
        "DATA.TRAIN.SAMPLE_PER_EPOCH": 16,
    }
    if script == "fartrack":
        out.update({"MODEL.PRETRAIN_FILE": "", "DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain", "LASOT", "COCO17"],
                    "DATA.TRAIN.DATASETS_RATIO": [1, 1, 1]})
    elif script == "fartrack_distill":
        out.update({"DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain", "LASOT"], "DATA.TRAIN.DATASETS_RATIO": [1, 1],
                    "TRAIN.BACKBONE_MULTIPLIER": 1.0})
    else:
        out.update({"DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain", "LASOT"], "DATA.TRAIN.DATASETS_RATIO": [1, 1],
                    "DATA.SEARCH.NUMBER": 6, "TRAIN.BATCH_SIZE": 2, "DATA.TRAIN.SAMPLE_PER_EPOCH": 4,
                    "DATA.VAL.DATASETS_NAME": [], "DATA.VAL.DATASETS_RATIO": [], "TRAIN.LR": 1e-4})
    return out


def write_config(path: Path, script: str, ws: Dict[str, Path], **overrides: Any) -> Path:
    """The stage's shipped YAML with :func:`tiny_overrides` and ``overrides`` (dotted keys) applied."""
    tree = yaml.safe_load((REPO / STAGE_YAML[script]).read_text())
    tree = copy.deepcopy(tree)
    values = tiny_overrides(script, ws)
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    for key, value in values.items():
        _set(tree, key, value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def cli_args(script: str, config: Path, save_dir: Path, ws: Dict[str, Path], *extra: str) -> List[str]:
    return ["--script", script, "--config", str(config), "--save_dir", str(save_dir),
            "--settings_root", str(ws["settings_root"]), "--device", "cpu", *extra]


def run_cli(args: List[str], timeout: float = 240, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``python tracking/train.py ARGS`` in a subprocess (one intra-op thread per process)."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        full_env.pop(key, None)
    return subprocess.run([sys.executable, str(TRAIN_PY), *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=str(REPO))


def load_train_main():
    """``tracking/train.py``'s ``main`` imported in-process (faster than a subprocess for error paths)."""
    return load_script(TRAIN_PY, "fartrack_train_cli").main


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_folder(save_dir: Path, script: str, config: Path) -> Path:
    return Path(save_dir) / "checkpoints" / "train" / script / Path(config).stem


# ------------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("cli_ws"))


def test_cli_trains_stage1_and_writes_only_expected_files(ws, tmp_path):
    config = write_config(tmp_path / "tiny1.yaml", "fartrack", ws)
    proc = run_cli(cli_args("fartrack", config, tmp_path / "out", ws))
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = run_folder(tmp_path / "out", "fartrack", config)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["FARTrack_ep0001.pth.tar", "FARTrack_ep0002.pth.tar", "config.yaml"]
    log = (tmp_path / "out" / "logs" / "fartrack-tiny1.log").read_text()
    assert "[train: 2, 4 / 4]" in log and "[val: 2]" in log and "Loss/location" in log
    ckpt = torch.load(folder / "FARTrack_ep0002.pth.tar", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["config"]["DATA"]["TRAIN"]["DATASETS_NAME"] == ["GOT10K_vottrain", "LASOT", "COCO17"]


def test_yaml_key_typo_names_the_key(ws, tmp_path, capsys):
    config = write_config(tmp_path / "typo.yaml", "fartrack", ws, **{"TRAIN.BATCH_SIZ": 4})
    code = load_train_main()(cli_args("fartrack", config, tmp_path / "out", ws))
    err = capsys.readouterr().err
    assert code != 0
    assert "unknown key TRAIN.BATCH_SIZ (did you mean TRAIN.BATCH_SIZE?)" in last_line(err)
    assert not (tmp_path / "out").exists()


def test_set_override_typo_names_the_key(ws, tmp_path, capsys):
    config = write_config(tmp_path / "ok.yaml", "fartrack", ws)
    code = load_train_main()(cli_args("fartrack", config, tmp_path / "out", ws, "--set", "TRAIN.EPOCHS=3"))
    assert code != 0 and "TRAIN.EPOCHS" in last_line(capsys.readouterr().err)


def test_missing_dataset_root_names_the_setting(ws, tmp_path, capsys, one_torch_thread):
    data = tmp_path / "empty_data"
    data.mkdir()
    write_settings(tmp_path / "repo", data)  # every dataset root points into an empty folder
    config = write_config(tmp_path / "tiny1.yaml", "fartrack", ws)
    args = cli_args("fartrack", config, tmp_path / "out", ws)
    args[args.index("--settings_root") + 1] = str(tmp_path / "repo")
    code = load_train_main()(args)
    line = last_line(capsys.readouterr().err)
    assert code != 0
    assert "got10k_dir" in line and str(data / "got10k" / "train") in line, line


def test_missing_pretrain_pth_stops_before_any_work(ws, tmp_path, capsys, one_torch_thread):
    config = write_config(tmp_path / "d.yaml", "fartrack_distill", ws, **{"MODEL.PRETRAIN_PTH": "nowhere/FARTrack_ep0002.pth.tar"})
    code = load_train_main()(cli_args("fartrack_distill", config, tmp_path / "out", ws))
    line = last_line(capsys.readouterr().err)
    assert code != 0
    assert "MODEL.PRETRAIN_PTH" in line and str(tmp_path / "out" / "nowhere" / "FARTrack_ep0002.pth.tar") in line
    assert not run_folder(tmp_path / "out", "fartrack_distill", config).exists()


def test_bad_groundtruth_line_names_file_and_line(tmp_path, capsys, one_torch_thread):
    ws = make_workspace(tmp_path / "ws", frames=30)
    gt = ws["data"] / "got10k" / "train" / "GOT-10k_Train_000001" / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[4] = "10,12,abc,8"
    gt.write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path / "gt.yaml", "fartrack", ws, **{
        "DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain"], "DATA.TRAIN.DATASETS_RATIO": [1], "DATA.VAL.DATASETS_NAME": [],
        "DATA.VAL.DATASETS_RATIO": []})
    code = load_train_main()(cli_args("fartrack", config, tmp_path / "out", ws))
    line = last_line(capsys.readouterr().err)
    assert code != 0
    assert str(gt) in line and "line 5" in line, line


def _corrupt_frames(seq_dir: Path) -> List[Path]:
    frames = sorted(seq_dir.glob("*.jpg"))
    for frame in frames:
        frame.write_bytes(b"\xff\xd8 this is not a JPEG")
    return frames


def test_corrupt_frames_are_skipped_and_reported(tmp_path, capsys, one_torch_thread):
    ws = make_workspace(tmp_path / "ws", frames=30)
    bad_seq = ws["data"] / "got10k" / "train" / "GOT-10k_Train_000001"
    _corrupt_frames(bad_seq)
    config = write_config(tmp_path / "skip.yaml", "fartrack", ws, **{
        "DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain"], "DATA.TRAIN.DATASETS_RATIO": [1], "DATA.VAL.DATASETS_NAME": [],
        "DATA.VAL.DATASETS_RATIO": [], "TRAIN.EPOCH": 1})
    code = load_train_main()(cli_args("fartrack", config, tmp_path / "out", ws))
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    log = (tmp_path / "out" / "logs" / "fartrack-skip.log").read_text()
    assert "GOT-10k_Train_000001" in log and "skipping sample" in log


def test_all_frames_corrupt_fails_with_the_file_as_the_last_line(tmp_path):
    """A data-loader worker process raises; its later log lines must not bury the cause."""
    ws = make_workspace(tmp_path / "ws", frames=30)
    for seq in ("GOT-10k_Train_000001", "GOT-10k_Train_000002"):
        _corrupt_frames(ws["data"] / "got10k" / "train" / seq)
    config = write_config(tmp_path / "bad.yaml", "fartrack", ws, **{
        "DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain"], "DATA.TRAIN.DATASETS_RATIO": [1], "DATA.VAL.DATASETS_NAME": [],
        "DATA.VAL.DATASETS_RATIO": [], "DATA.SAMPLE_RETRY_LIMIT": 5, "TRAIN.NUM_WORKER": 1})
    proc = run_cli(cli_args("fartrack", config, tmp_path / "out", ws))
    line = last_line(proc.stderr)
    assert proc.returncode == 1
    assert line.startswith("train.py: error: ") and "SampleError" in line, line
    assert "consecutive unusable samples" in line and "GOT-10k_Train_00000" in line and ".jpg" in line, line


def test_mode_multiple_needs_nproc(capsys):
    with pytest.raises(SystemExit) as exc:
        load_train_main()(["--script", "fartrack", "--config", "x", "--save_dir", "y", "--mode", "multiple"])
    assert exc.value.code == 2 and "--nproc_per_node" in capsys.readouterr().err


def test_crash_exits_non_zero_as_a_process(ws, tmp_path):
    config = write_config(tmp_path / "tiny1.yaml", "fartrack", ws)
    proc = run_cli(cli_args("fartrack", config, tmp_path / "out", ws, "--resume", str(tmp_path / "nope.pth.tar")))
    assert proc.returncode == 1
    assert last_line(proc.stderr) == f"train.py: error: --resume {tmp_path / 'nope.pth.tar'}: no such checkpoint file"
