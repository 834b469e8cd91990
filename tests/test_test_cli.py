"""tracking/test.py end to end on CPU with a tiny random-weight model, on tiny benchmarks in the real layouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bench_layouts as bl
from fartrack.config import load_config
from fartrack.config.local_settings import LocalSettings
from fartrack.evaluation.results import read_boxes
from fartrack.evaluation.runner import default_checkpoint, default_results_dir, net_class_name
from tiny_models import load_script, write_tiny_sparse

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tracking" / "test.py"

@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """test.py --torch_threads changes the process-wide torch setting; restore it for the rest of the suite."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(config YAML path, checkpoint path) of a tiny random-weight sparse model."""
    return write_tiny_sparse(tmp_path_factory.mktemp("tiny"), "FARTrackSparse_ep0003.pth.tar", 3, test_epoch=3)


@pytest.fixture(scope="module")
def cli_main():
    return load_script(SCRIPT, "fartrack_test_cli").main


def _args(tiny, dataset, data_root, results, *extra):
    config, ckpt = tiny
    return ["fartrack_sparse", config, "--dataset", dataset, "--checkpoint", ckpt, "--data_root", str(data_root),
            "--results_dir", str(results), "--no_progress", *extra]


def _check_results(results: Path, made: dict, *, init_from_disk=None):
    for name, gt in made.items():
        text = (results / f"{name}.txt").read_text().splitlines()
        assert len(text) == len(gt)
        assert all(len(line.split(",")) == 4 and all(len(v.split(".")[1]) == 3 for v in line.split(","))
                   for line in text)
        boxes = read_boxes(results / f"{name}.txt", expected_rows=len(gt))
        init = gt[0] if init_from_disk is None else init_from_disk[name]
        np.testing.assert_allclose(boxes[0], init, atol=5e-4)
        assert (boxes[:, 2:] > 0).all()
        times = np.loadtxt(results / f"{name}_time.txt", ndmin=1)
        assert times.shape == (len(gt),) and (times > 0).all()


@pytest.mark.parametrize("dataset", ["got10k_val", "got10k_test", "lasot", "trackingnet", "uav"])
def test_end_to_end_layouts(tmp_path, tiny, cli_main, capsys, dataset):
    data = tmp_path / "data"
    if dataset.startswith("got10k"):
        made = bl.make_got10k(data, dataset.split("_")[1], 2, [5, 4])
    elif dataset == "lasot":
        made = bl.make_lasot(data, ("cat",), 2, 4, occluded={"cat-1": [2]}, out_of_view={"cat-2": [1]})
    elif dataset == "trackingnet":
        made = bl.make_trackingnet_test(data, 2, 4)
    else:
        made = bl.make_uav(data, ("bike1",), 5, nan_rows={"bike1": [3]}, split={"bird1": (9, [(1, 3), (6, 9)])})
    results = tmp_path / "results"
    assert cli_main(_args(tiny, dataset, data, results)) == 0
    out = capsys.readouterr().out
    assert f"{len(made)} done, 0 skipped" in out and "0 failed" in out and "mean FPS" in out
    # the init box is what the dataset file holds (TrackingNet's anno has 2 decimals)
    on_disk = {n: np.round(g[0], 2) for n, g in made.items()} if dataset == "trackingnet" else None
    _check_results(results, made, init_from_disk=on_disk)
    summary = json.loads((results / "run_summary.json").read_text())
    assert summary["done"] == len(made) and summary["failed"] == 0


def test_skip_existing_force_and_incomplete(tmp_path, tiny, cli_main, capsys):
    data, results = tmp_path / "data", tmp_path / "res"
    bl.make_got10k(data, "val", 3, 4)
    assert cli_main(_args(tiny, "got10k_val", data, results)) == 0
    first = {p.name: p.read_bytes() for p in results.glob("GOT-10k_*")}
    stamps = {p.name: p.stat().st_mtime_ns for p in results.glob("GOT-10k_*")}
    # a result with fewer lines than frames is not complete: it is recomputed; the others are skipped
    short = results / "GOT-10k_Val_000002.txt"
    short.write_text("".join(short.read_text().splitlines(keepends=True)[:2]))
    capsys.readouterr()
    assert cli_main(_args(tiny, "got10k_val", data, results)) == 0
    assert "1 done, 2 skipped" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in results.glob("GOT-10k_*") if "_time" not in p.name} == {
        k: v for k, v in first.items() if "_time" not in k}
    assert (results / "GOT-10k_Val_000001.txt").stat().st_mtime_ns == stamps["GOT-10k_Val_000001.txt"]
    assert cli_main(_args(tiny, "got10k_val", data, results, "--force")) == 0
    assert "3 done, 0 skipped" in capsys.readouterr().out


def test_sequence_by_name_index_and_leading_dash(tmp_path, tiny, cli_main, capsys):
    data, results = tmp_path / "data", tmp_path / "res"
    made = bl.make_trackingnet_test(data, 3, 3)
    names = sorted(made)
    assert cli_main(_args(tiny, "trackingnet", data, results, f"--sequence={names[0]}", "--sequence", "2")) == 0
    assert sorted(p.stem for p in results.glob("*.txt") if not p.stem.endswith("_time")) == [names[0], names[2]]
    assert cli_main(_args(tiny, "trackingnet", data, results, "--sequence", "vid01Xy_9")) == 2
    assert "did you mean 'vid01Xy_1'" in capsys.readouterr().err


def test_bad_inputs_fail_their_sequence_only(tmp_path, tiny, cli_main, capsys):
    data, results = tmp_path / "data", tmp_path / "res"
    bl.make_got10k(data, "val", 4, 4)
    corrupt = data / "val" / "GOT-10k_Val_000001" / "00000003.jpg"
    bl.corrupt_file(corrupt)
    gt = data / "val" / "GOT-10k_Val_000003" / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[1] = lines[1] + ",1.0"
    gt.write_text("\n".join(lines) + "\n")
    code = cli_main(_args(tiny, "got10k_val", data, results))
    captured = capsys.readouterr()
    assert code == 1
    assert "2 done, 0 skipped (complete results exist), 2 failed" in captured.out
    assert f"FAILED GOT-10k_Val_000001: FrameReadError: cannot decode frame {corrupt}" in captured.out
    assert f"FAILED GOT-10k_Val_000003: DatasetError: {gt}:2: expected 4 numbers" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert not (results / "GOT-10k_Val_000001.txt").exists() and not (results / "GOT-10k_Val_000003.txt").exists()
    assert (results / "GOT-10k_Val_000002.txt").exists() and (results / "GOT-10k_Val_000004.txt").exists()
    summary = json.loads((results / "run_summary.json").read_text())
    assert [s["status"] for s in summary["sequences"]] == ["failed", "done", "failed", "done"]


def test_cli_errors_are_one_line(tmp_path, tiny, cli_main, capsys):
    bl.make_got10k(tmp_path / "data", "val", 1, 3)
    missing = tmp_path / "none.pth.tar"
    config, _ = tiny
    assert cli_main(_args((config, str(missing)), "got10k_val", tmp_path / "data", tmp_path / "res")) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and f"checkpoint {missing} not found" in err
    assert cli_main(_args(tiny, "lasot", tmp_path / "no_lasot", tmp_path / "res")) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and str(tmp_path / "no_lasot") in err and "full_occlusion.txt" in err


def test_parallel_workers_match_sequential(tmp_path, tiny, cli_main, capsys):
    data = tmp_path / "data"
    bl.make_got10k(data, "val", 3, [5, 4, 6])
    assert cli_main(_args(tiny, "got10k_val", data, tmp_path / "seq", "--torch_threads", "1")) == 0
    assert cli_main(_args(tiny, "got10k_val", data, tmp_path / "par", "--threads", "2", "--torch_threads", "1")) == 0
    assert "3 done" in capsys.readouterr().out
    for path in (tmp_path / "seq").glob("GOT-10k_*[0-9].txt"):
        assert (tmp_path / "par" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes to block a frame read")
def test_killed_run_resumes_to_identical_results(tmp_path, tiny, cli_main, capsys):
    """Kill test.py while it is blocked inside sequence 3 of 5, re-run, compare with an uninterrupted run."""
    data = tmp_path / "data"
    bl.make_got10k(data, "val", 5, [4, 5, 4, 6, 3])
    assert cli_main(_args(tiny, "got10k_val", data, tmp_path / "whole", "--torch_threads", "1")) == 0
    frame = data / "val" / "GOT-10k_Val_000003" / "00000002.jpg"
    saved = frame.read_bytes()
    frame.unlink()
    os.mkfifo(frame)  # reading it blocks until a writer appears: the run stalls inside sequence 3
    results = tmp_path / "resumed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *_args(tiny, "got10k_val", data, results,
                                                                  "--torch_threads", "1")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 60
        while not (results / "GOT-10k_Val_000002_time.txt").exists():
            assert proc.poll() is None and time.time() < deadline, "test.py ended before it was killed"
            time.sleep(0.05)
        time.sleep(0.2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = sorted(p.name for p in results.glob("GOT-10k_*"))
    assert done == ["GOT-10k_Val_000001.txt", "GOT-10k_Val_000001_time.txt", "GOT-10k_Val_000002.txt",
                    "GOT-10k_Val_000002_time.txt"]
    frame.unlink()
    frame.write_bytes(saved)
    capsys.readouterr()
    assert cli_main(_args(tiny, "got10k_val", data, results, "--torch_threads", "1")) == 0
    assert "3 done, 2 skipped" in capsys.readouterr().out
    for path in (tmp_path / "whole").glob("GOT-10k_*[0-9].txt"):
        assert (results / path.name).read_bytes() == path.read_bytes(), path.name
    assert not [p for p in results.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    from fartrack.evaluation.analysis import analyse
    from fartrack.evaluation.datasets import load_benchmark

    sequences = load_benchmark("got10k_val", data)
    whole, resumed = analyse([tmp_path / "whole", results], sequences, "got10k_val")
    assert whole.scores and resumed.scores.keys() == whole.scores.keys()
    for key, value in whole.scores.items():  # same AO / SR / curves as the uninterrupted run
        np.testing.assert_array_equal(np.asarray(resumed.scores[key], dtype=object), np.asarray(value, dtype=object))


def test_default_paths(tmp_path):
    settings = LocalSettings({"save_dir": str(tmp_path / "out"), "results_path": str(tmp_path / "res")},
                             tmp_path / "local.py")
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full")
    assert default_checkpoint(cfg, "fartrack_sparse", "fartrack_sparse_224_full", settings) == (
        tmp_path / "out/checkpoints/train/fartrack_sparse/fartrack_sparse_224_full/FARTrackSparse_ep0015.pth.tar")
    assert default_results_dir(settings, "fartrack_sparse", "fartrack_sparse_224_full", "lasot", 6) == (
        tmp_path / "res/fartrack_sparse/fartrack_sparse_224_full_layers6/lasot")
    assert default_results_dir(settings, "fartrack", "/x/my_cfg.yaml", "otb") == tmp_path / "res/fartrack/my_cfg/otb"
    assert net_class_name(load_config("fartrack", "fartrack_tiny_224_full")) == "FARTrack"
    assert net_class_name(load_config("fartrack_distill", "fartrack_distill_224_full")) == "FARTrackDistill"


def test_default_checkpoint_used_when_absent(tmp_path, capsys, monkeypatch):
    """Without --checkpoint test.py looks for the TEST.EPOCH checkpoint under save_dir (from local.py)."""
    # A private repo root (the script finds local.py next to itself) keeps the user's settings out of the test.
    root = tmp_path / "repo"
    (root / "tracking").mkdir(parents=True)
    (root / "tracking" / "test.py").write_bytes(SCRIPT.read_bytes())
    (root / "experiments").symlink_to(REPO / "experiments")
    from fartrack.config import write_local_settings

    write_local_settings(root, tmp_path / "data", tmp_path / "out", repo_root=root)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts its own root on sys.path
    module = load_script(root / "tracking" / "test.py", "fartrack_test_cli_private")
    assert module.main(["fartrack_sparse", "fartrack_sparse_224_full", "--dataset", "otb"]) == 2
    expected = tmp_path / "out/checkpoints/train/fartrack_sparse/fartrack_sparse_224_full/FARTrackSparse_ep0015.pth.tar"
    assert f"checkpoint {expected} not found (the TEST.EPOCH = 15" in capsys.readouterr().err


def test_workers_spread_over_cuda_devices(monkeypatch):
    """Worker k of a CUDA run takes device k % num_devices (no GPU needed: the device count is faked)."""
    import multiprocessing as mp

    import torch

    from fartrack.evaluation import runner

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(runner, "_WORKER", {})
    counter = mp.get_context("spawn").Value("i", 0)
    devices = []
    for _ in range(4):
        runner._worker_init(runner.RunSettings({}, None, device="cuda"), counter)
        devices.append(runner._WORKER["device"])
    assert devices == ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]
    runner._worker_init(runner.RunSettings({}, None, device="cuda:1"), counter)
    assert runner._WORKER["device"] == "cuda:1"  # an explicit device is kept
