"""Baseline trackers (fartrack/evaluation/baselines.py, tracking/run_baseline.py) on a tiny generated benchmark
in the GOT-10k layout the ``synthetic`` benchmark uses: the runner's file format, the static box exactly, CSRT
actually following a moving target, KCF running, the keep-last-box rule, and the CLI's errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bench_layouts as bl
from fartrack.evaluation.analysis import analyse
from fartrack.evaluation.baselines import OpenCVTracker, StaticTracker, make_baseline, normalize_kind, run_baseline
from fartrack.evaluation.datasets import load_benchmark
from fartrack.evaluation.results import read_boxes, read_times
from tiny_models import load_script

REPO = Path(__file__).resolve().parents[1]
SIZE = (120, 160)  # height, width: the target is about 27 x 24 px and moves by about +/-32 px
FRAMES = 40


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """``<root>/val/list.txt`` + 2 sequences of 40 frames (the synthetic benchmark's layout); returns (root, GT)."""
    root = tmp_path_factory.mktemp("synthetic")
    made = {}
    for k in range(2):
        name = f"synthetic_val_{k + 1:04d}"
        gt = bl.write_frames(root / "val" / name, FRAMES, "%08d.jpg", seed=11 + k, height=SIZE[0], width=SIZE[1])
        bl.write_rows(root / "val" / name / "groundtruth.txt", gt)
        made[name] = gt
    (root / "val" / "list.txt").write_text("".join(f"{n}\n" for n in made))
    return root, made


def _ao(results_dir: Path, root: Path) -> float:
    sequences = load_benchmark("synthetic", root)
    return float(analyse([results_dir], sequences, "synthetic")[0].scores["AO"])


def test_static_writes_the_first_box_on_every_line(bench, tmp_path):
    root, made = bench
    summary = run_baseline("static", "synthetic", root, tmp_path / "static", progress=False)
    assert summary.count("done") == 2 and not summary.failed
    for name, gt in made.items():
        lines = (tmp_path / "static" / f"{name}.txt").read_text().splitlines()
        first = ",".join(f"{v:.3f}" for v in gt[0])
        assert lines == [first] * FRAMES  # the runner's format: x,y,w,h with 3 decimals, one line per frame
        times = read_times(tmp_path / "static" / f"{name}_time.txt")
        assert times.shape == (FRAMES,) and np.all(times >= 0)
    report = json.loads((tmp_path / "static" / "run_summary.json").read_text())
    assert report["tracker"] == "static" and report["done"] == 2 and report["fps"] > 0


def test_csrt_follows_the_target_far_better_than_static(bench, tmp_path):
    root, made = bench
    run_baseline("static", "synthetic", root, tmp_path / "static", progress=False)
    summary = run_baseline("csrt", "synthetic", root, tmp_path / "csrt", progress=False)
    assert summary.count("done") == 2 and not summary.failed
    static_ao, csrt_ao = _ao(tmp_path / "static", root), _ao(tmp_path / "csrt", root)
    print(f"AO static {static_ao:.3f}, csrt {csrt_ao:.3f}")
    assert csrt_ao > 0.6 and csrt_ao > static_ao + 0.25, (static_ao, csrt_ao)
    for name, gt in made.items():  # frame 1 is the init box; later boxes move with the target
        boxes = read_boxes(tmp_path / "csrt" / f"{name}.txt", FRAMES)
        np.testing.assert_allclose(boxes[0], gt[0], atol=5e-4)
        assert np.abs(boxes[1:, :2] - gt[0, :2]).max() > 10


def test_kcf_runs_and_a_rerun_skips_complete_results(bench, tmp_path):
    root, made = bench
    summary = run_baseline("opencv:kcf", "synthetic", root, tmp_path / "kcf", progress=False)
    assert summary.count("done") == 2
    before = {p.name: p.read_bytes() for p in (tmp_path / "kcf").glob("*.txt")}
    again = run_baseline("kcf", "synthetic", root, tmp_path / "kcf", progress=False)
    assert again.count("skipped") == 2 and again.count("done") == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "kcf").glob("*.txt")} == before
    assert _ao(tmp_path / "kcf", root) > 0.0


class _LosingTracker:
    """A stand-in OpenCV tracker: finds the target once, then reports it lost."""

    def __init__(self):
        self.calls = 0

    def init(self, image, rect):
        self.rect = rect

    def update(self, image):
        self.calls += 1
        return (True, (7, 8, 9, 10)) if self.calls == 1 else (False, (0, 0, 0, 0))


def test_opencv_tracker_keeps_the_last_box_when_the_target_is_lost():
    tracker = OpenCVTracker("csrt")
    tracker._factory = _LosingTracker
    image = np.zeros((40, 50, 3), np.uint8)
    tracker.initialize(image, [1.4, 2.6, 10.0, 12.0])
    assert tracker._tracker.rect == (1, 3, 10, 12)  # whole pixels for OpenCV
    assert tracker.track(image) == [7.0, 8.0, 9.0, 10.0]
    assert tracker.track(image) == [7.0, 8.0, 9.0, 10.0]
    assert tracker.failures == 1


def test_names_and_bad_init_boxes():
    assert normalize_kind("CSRT") == "opencv:csrt" and normalize_kind("static") == "static"
    assert isinstance(make_baseline("static"), StaticTracker)
    with pytest.raises(ValueError, match="unknown baseline 'mosse'"):
        make_baseline("mosse")
    tracker = make_baseline("kcf")
    with pytest.raises(ValueError, match="outside"):
        tracker.initialize(np.zeros((40, 50, 3), np.uint8), [60, 10, 5, 5])
    with pytest.raises(ValueError, match="w, h > 0"):
        tracker.initialize(np.zeros((40, 50, 3), np.uint8), [10, 10, 0, 5])


def test_cli_runs_and_reports_a_missing_dataset_in_one_line(bench, tmp_path, capsys):
    root, made = bench
    main = load_script(REPO / "tracking" / "run_baseline.py", "fartrack_run_baseline_cli").main
    code = main(["--tracker", "static", "--dataset", "synthetic", "--data_root", str(root),
                 "--results_dir", str(tmp_path / "out"), "--no_progress"])
    assert code == 0
    assert "synthetic: 2 done" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.txt")) == sorted(
        [f"{n}.txt" for n in made] + [f"{n}_time.txt" for n in made])
    code = main(["--tracker", "csrt", "--dataset", "synthetic", "--data_root", str(tmp_path / "nowhere"),
                 "--results_dir", str(tmp_path / "out2"), "--no_progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("run_baseline.py: error:") and "nowhere" in err[0]
