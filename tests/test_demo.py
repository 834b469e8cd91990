"""``tracking/demo.py`` (``make demo``) end to end with tiny settings, its reuse of finished work, its loud
failures, and the loss-log reading behind its per-stage loss check.

The end-to-end run uses the shipped ``synthetic_pico_cpu`` configs of the three stages, shrunk with
``--set-all`` (small crops, width 32, 2 epochs of 4 steps) on 3 + 2 generated sequences of 20 frames.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import torch

from fartrack.demo.losses import check_loss_decrease, plot_loss_curve, read_loss_log

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tracking" / "demo.py"
TRACKERS = ("FARTrack-pico (ours)", "static first-frame box", "OpenCV CSRT", "OpenCV KCF")

DATA_ARGS = ["--sequences", "3", "--val_sequences", "2", "--frames", "20", "--size", "96x72", "--workers", "1"]
TINY = [
    "--set-all", "MODEL.EMBED_DIM=32", "MODEL.NUM_HEADS=2", "DATA.TEMPLATE.SIZE=32", "DATA.SEARCH.SIZE=64",
    "TEST.TEMPLATE_SIZE=32", "TEST.SEARCH_SIZE=64", "TRAIN.EPOCH=2", "TRAIN.BATCH_SIZE=2",
    "DATA.TRAIN.SAMPLE_PER_EPOCH=8", "TRAIN.NUM_WORKER=0", "TRAIN.PRINT_INTERVAL=1", "DATA.VAL.DATASETS_NAME=[]",
    "DATA.VAL.DATASETS_RATIO=[]",
    "--set-stage", "3", "DATA.SEARCH.NUMBER=4", "DATA.TRAIN.SAMPLE_PER_EPOCH=4",
]


def run_demo(out: Path, *extra: str, cwd: Path) -> tuple:
    """``python tracking/demo.py --out OUT ...`` in a subprocess; returns (completed process, seconds)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("DEMO_DIR", None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(DEMO), "--out", str(out), *DATA_ARGS, *extra], capture_output=True,
                          text=True, timeout=600, env=env, cwd=str(cwd))
    return proc, time.perf_counter() - start


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _settings_files() -> dict:
    files = [REPO / "lib" / "train" / "admin" / "local.py", REPO / "lib" / "test" / "evaluation" / "local.py"]
    return {str(f): (f.stat().st_mtime_ns if f.exists() else None) for f in files}


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """The tiny demo run twice into the same folder (the second must reuse everything)."""
    root = tmp_path_factory.mktemp("demo")
    cwd = root / "cwd"
    cwd.mkdir()
    out = root / "out"
    settings_before = _settings_files()
    first, first_s = run_demo(out, *TINY, cwd=cwd)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    checkpoints = _snapshot(out / "train" / "checkpoints")
    second, second_s = run_demo(out, *TINY, cwd=cwd)
    print(f"demo: first run {first_s:.1f} s, second run {second_s:.1f} s")
    return {"out": out, "cwd": cwd, "first": first, "second": second, "first_s": first_s, "second_s": second_s,
            "checkpoints": checkpoints, "settings_before": settings_before}


def test_demo_runs_every_step_and_writes_everything(demo_runs):
    out, proc = demo_runs["out"], demo_runs["first"]
    banners = re.findall(r"^\[demo (\d)/7\] (train stage \d|\S+)", proc.stdout, flags=re.M)
    assert [int(b[0]) for b in banners][::2] == [1, 2, 3, 4, 5, 6, 7]  # each banner, then its done line
    for k in (1, 2, 3):  # the trainer's progress lines were streamed
        assert re.search(rf"stage {k} loss \(Loss/total, \d+ logged values\)", proc.stdout)
    assert proc.stdout.count("[train: 2, ") >= 3

    # one table, 4 rows, in the printed output and in results.md / results.json
    header = re.search(r"^tracker\s+AO\s+SR0\.5\s+SR0\.75\s+FPS$", proc.stdout, flags=re.M)
    assert header
    rows = proc.stdout[header.end():].strip().splitlines()[:4]
    assert [r.split("  ")[0].strip() for r in rows] == list(TRACKERS)
    assert all(len(re.findall(r"\d+\.\d", r.split("  ", 1)[1])) >= 3 for r in rows)
    markdown = (out / "results.md").read_text()
    assert all(f"| {name} |" in markdown for name in TRACKERS)
    report = json.loads((out / "results.json").read_text())
    assert [t["tracker"] for t in report["trackers"]] == list(TRACKERS)
    for entry in report["trackers"]:
        assert 0.0 <= entry["AO"] <= 1.0 and 0.0 <= entry["SR0.5"] <= 1.0 and 0.0 <= entry["SR0.75"] <= 1.0
    by_name = {t["tracker"]: t for t in report["trackers"]}
    assert by_name["OpenCV CSRT"]["AO"] > by_name["static first-frame box"]["AO"]  # the data really moves
    assert by_name["OpenCV CSRT"]["FPS"] > 0 and by_name["FARTrack-pico (ours)"]["FPS"] > 0
    assert set(report["loss"]) == {"stage1", "stage2", "stage3"}

    # results in the runner's format, one folder per tracker
    val = (out / "data" / "synthetic" / "val" / "list.txt").read_text().split()
    for folder in ("fartrack_pico", "static", "csrt", "kcf"):
        for seq in val:
            assert len((out / "results" / folder / f"{seq}.txt").read_text().splitlines()) == 20
            assert (out / "results" / folder / f"{seq}_time.txt").is_file()

    # plots and the video
    for name in ("stage1_loss.png", "stage2_loss.png", "stage3_loss.png", "synthetic_success.png"):
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    capture = cv2.VideoCapture(str(out / "demo.mp4"))
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames += 1
        assert frame.shape[1] >= 480
    capture.release()
    assert frames == 20

    # nothing written outside --out: the repository's settings files are untouched, the working folder is empty
    assert _settings_files() == demo_runs["settings_before"]
    assert list(demo_runs["cwd"].iterdir()) == []


def test_final_model_is_the_pico_variant_and_tracks(demo_runs):
    from fartrack.config import load_config
    from fartrack.evaluation.datasets import load_benchmark
    from fartrack.evaluation.video import read_image
    from fartrack.models.pretrained import state_dict_depth
    from fartrack.tracker.build import build_tracker

    out = demo_runs["out"]
    ckpt = torch.load(out / "final_pico.pth.tar", weights_only=True)
    assert ckpt["layers"] == 6 and state_dict_depth(ckpt["net"]) == 6 and ckpt["net_type"] == "FARTrackSparse"
    configs = list((out / "workspace").glob("fartrack_sparse-*.yaml"))  # the evaluation config (with the overrides)
    assert len(configs) == 1
    cfg = load_config("fartrack_sparse", str(configs[0]))
    seq = load_benchmark("synthetic", out / "data" / "synthetic")[0]
    tracker = build_tracker(cfg, out / "final_pico.pth.tar", device="cpu", backend="torch")
    tracker.initialize(read_image(seq.frames[0]), seq.ground_truth[0].tolist())
    assert len(tracker.track(read_image(seq.frames[1]))) == 4


def test_second_run_reuses_every_stage_and_result(demo_runs):
    proc, out = demo_runs["second"], demo_runs["out"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    for k in (1, 2, 3):
        assert f"stage {k} done, reusing " in proc.stdout
    assert "[train: " not in proc.stdout  # no training at all
    assert proc.stdout.count("complete results for this data and model exist, reusing") == 4
    assert "reusing " + str(out / "final_pico.pth.tar") in proc.stdout
    assert _snapshot(out / "train" / "checkpoints") == demo_runs["checkpoints"]  # no new or rewritten checkpoint
    assert demo_runs["second_s"] < 0.5 * demo_runs["first_s"], (demo_runs["first_s"], demo_runs["second_s"])


def test_stale_results_are_recomputed_and_mixed_training_settings_refused(demo_runs):
    out, cwd = demo_runs["out"], demo_runs["cwd"]
    seq = (out / "data" / "synthetic" / "val" / "list.txt").read_text().split()[0]
    result = out / "results" / "static" / f"{seq}.txt"
    good = result.read_text()
    result.write_text(good.replace("0", "1"))  # a result nobody vouches for any more
    (out / "results" / "static" / "demo_stamp.json").unlink()
    proc, _ = run_demo(out, *TINY, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "static first-frame box: running on 2 sequences" in proc.stdout
    assert proc.stdout.count("complete results for this data and model exist, reusing") == 3
    assert result.read_text() == good

    proc, _ = run_demo(out, *TINY, "--set-all", "TRAIN.LR=0.5", cwd=cwd)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("demo.py: error: step 2/7 (train stage 1") and "trained with other settings" in last
    assert _snapshot(out / "train" / "checkpoints") == demo_runs["checkpoints"]


def test_a_bad_stage_config_stops_the_demo_naming_the_step(tmp_path):
    proc, _ = run_demo(tmp_path / "out", *TINY, "--set-all", "TRAIN.NOT_A_KEY=1", cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("demo.py: error: step 2/7 (train stage 1 (fartrack / synthetic_pico_cpu)")
    assert "NOT_A_KEY" in last
    assert "[demo 3/7]" not in proc.stdout


def test_a_failing_training_command_names_the_step_and_its_log(tmp_path):
    # GOT-10k is not generated by the demo: train.py itself fails (its dataset folder does not exist)
    proc, _ = run_demo(tmp_path / "out", *TINY, "--set-stage", "1", "DATA.TRAIN.DATASETS_NAME=[GOT10K_vottrain]",
                       "DATA.TRAIN.DATASETS_RATIO=[1]", cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    log = tmp_path / "out" / "logs" / "stage1_train.log"
    assert last.startswith("demo.py: error: step 2/7 (train stage 1") and "train.py exited with status 1" in last
    assert str(log) in last
    assert "train.py: error:" in log.read_text()
    assert not (tmp_path / "out" / "final_pico.pth.tar").exists()


# ------------------------------------------------------------------------------------------------ loss logs
LOG = """\
2026-01-01 10:00:00 training fartrack/x: FARTrack, 1 process(es) on cpu, batch 2 per process, 4 iterations
2026-01-01 10:00:01 [train: 1, 2 / 4] FPS: 9.1, DataTime: 0.01, StepTime: 0.2, Loss/total: 9.0, IoU: 0.1
2026-01-01 10:00:02 [train: 1, 4 / 4] FPS: 9.1, DataTime: 0.01, StepTime: 0.2, Loss/total: 8.0, IoU: 0.1
2026-01-01 10:00:03 [train: 2, 2 / 4] FPS: 9.1, DataTime: 0.01, StepTime: 0.2, Loss/total: 99.0, IoU: 0.1
2026-01-01 10:01:00 training fartrack/x: FARTrack, 1 process(es) on cpu, batch 2 per process, 4 iterations
2026-01-01 10:01:00 resumed from epoch 1
2026-01-01 10:01:01 [train: 2, 2 / 4] FPS: 9.1, DataTime: 0.01, StepTime: 0.2, Loss/total: 7.0, IoU: 0.1
2026-01-01 10:01:02 [train: 2, 4 / 4] FPS: 9.1, DataTime: 0.01, StepTime: 0.2, Loss/total: 6.5e+00, IoU: 0.1
"""


def test_loss_log_keeps_the_resumed_epochs_and_drops_the_interrupted_lines(tmp_path):
    path = tmp_path / "x.log"
    path.write_text(LOG)
    curve = read_loss_log(path)
    assert curve.values == [9.0, 8.0, 7.0, 6.5]  # the interrupted epoch-2 line (99) is replaced
    assert curve.steps == [0.5, 1.0, 1.5, 2.0]
    # a fresh (not resumed) run in the same log starts a new curve
    path.write_text(LOG + LOG.splitlines(keepends=True)[0] + LOG.splitlines(keepends=True)[1])
    assert read_loss_log(path).values == [9.0]
    with pytest.raises(ValueError, match="no '\\[train: ...\\]' line with Loss/total"):
        path.write_text(LOG.splitlines(keepends=True)[0])
        read_loss_log(path)


def test_loss_check_compares_the_first_and_last_fifth(tmp_path):
    down = check_loss_decrease([5.0, 4.0, 6.0, 3.0, 2.0, 2.5, 1.0, 1.5, 1.2, 0.5])
    assert down.window == 2 and down.first == pytest.approx(4.5) and down.last == pytest.approx(0.85)
    assert down.decreased
    assert not check_loss_decrease([1.0, 1.1, 0.9, 1.2, 1.3]).decreased
    assert not check_loss_decrease([1.0]).decreased  # one value cannot show a decrease
    path = tmp_path / "x.log"
    path.write_text(LOG)
    png = plot_loss_curve(read_loss_log(path), tmp_path / "plots" / "loss.png", "title")
    assert png.read_bytes()[:4] == b"\x89PNG"
