"""tracking/analysis_results.py end to end on tiny benchmarks in their real layouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fartrack.evaluation.datasets import load_benchmark
from fartrack.evaluation.results import write_sequence_results

from bench_layouts import make_got10k, make_lasot, make_uav
from tiny_models import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tracking" / "analysis_results.py"


def _script():
    return load_script(SCRIPT, "analysis_results_cli")


def _run(argv, capsys):
    rc = _script().main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _write_noisy(results_dir: Path, made: dict, seed: int, sigma: float, time: float = 0.01) -> dict:
    rng = np.random.default_rng(seed)
    preds = {}
    for name, gt in made.items():
        pred = np.nan_to_num(gt, nan=5.0) + rng.normal(0.0, sigma, gt.shape)
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1.0
        write_sequence_results(results_dir, name, pred, np.full(len(gt), time))
        preds[name] = np.round(pred, 3)
    return preds


def test_got10k_val_cli_matches_package(tmp_path, capsys):
    """The CLI's AO / SR0.5 on a GOT-10k-layout val set equal ``ExperimentGOT10k`` on the same boxes."""
    experiments = pytest.importorskip("got10k.experiments")
    data = tmp_path / "got10k"
    made = make_got10k(data, "val", n_seq=3, n_frames=[7, 9, 8], absent={"GOT-10k_Val_000001": [2, 5]})
    mine = tmp_path / "out" / "fartrack_sparse" / "cfg" / "got10k_val"
    preds = _write_noisy(mine, made, seed=0, sigma=2.5)
    for name, pred in preds.items():  # the same boxes in the package's layout
        record = tmp_path / "pkg" / "GOT-10k" / "mine" / name / f"{name}_001.txt"
        record.parent.mkdir(parents=True)
        np.savetxt(record, pred, fmt="%.3f", delimiter=",")
        np.savetxt(record.parent / f"{name}_time.txt", np.full((len(pred), 1), 0.01), fmt="%.8f")  # it needs one
    perf = experiments.ExperimentGOT10k(str(data), subset="val", result_dir=str(tmp_path / "pkg"),
                                        report_dir=str(tmp_path / "rep")).report(["mine"])["mine"]["overall"]

    rc, out, err = _run(["--results_dir", mine, "--dataset", "got10k_val", "--data_root", data,
                         "--json", tmp_path / "r.json", "--plot", tmp_path / "plots"], capsys)
    assert rc == 0, err
    assert "fartrack_sparse/cfg" in out and "AO" in out and "SR75" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["protocol"] == "got10k"
    scores = report["trackers"][0]["scores"]
    assert abs(scores["AO"] - perf["ao"]) < 1e-9
    assert abs(scores["SR50"] - perf["sr"]) < 1e-9
    assert scores["num_frames"] == (7 - 1 - 2) + (9 - 1) + (8 - 1)
    assert report["trackers"][0]["fps"] == pytest.approx(100.0)
    assert (tmp_path / "plots" / "got10k_val_success.png").stat().st_size > 1000


def test_lasot_compare_json_and_plots(tmp_path, capsys):
    data = tmp_path / "lasot"
    made = make_lasot(data, occluded={"cat-1": [1, 2]}, out_of_view={"airplane-2": [4]})
    a, b = tmp_path / "a", tmp_path / "b"
    _write_noisy(a, made, seed=1, sigma=1.0)
    _write_noisy(b, made, seed=2, sigma=6.0, time=0.02)
    rc, out, err = _run(["--results_dir", a, "--compare", b, "--names", "good", "worse", "--dataset", "lasot",
                         "--data_root", data, "--json", tmp_path / "r.json", "--plot", tmp_path / "p"], capsys)
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines() if line.startswith(("good", "worse"))]
    assert [r[0] for r in rows] == ["good", "worse"]
    report = json.loads((tmp_path / "r.json").read_text())
    good, worse = (t["scores"] for t in report["trackers"])
    assert report["protocol"] == "pytracking"
    assert good["AUC"] > worse["AUC"]
    assert float(rows[0][1]) == pytest.approx(100 * good["AUC"], abs=0.006)  # table is the JSON in percent
    assert len(good["success_curve"]) == 21 and len(good["precision_curve"]) == 51
    # The 3 invisible frames (of 24) fail under the lineage rules whatever the boxes are.
    assert good["success_curve"][0] <= 1 - 3 / 24 + 1e-12
    assert report["trackers"][1]["fps"] == pytest.approx(50.0)
    pngs = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert pngs == ["lasot_norm_precision.png", "lasot_precision.png", "lasot_success.png"]
    import matplotlib.image as mpimg
    assert mpimg.imread(tmp_path / "p" / "lasot_success.png").ndim == 3

    rc, out, err = _run(["--results_dir", a, "--dataset", "lasot", "--data_root", data,
                         "--protocol", "lasot_toolkit", "--json", tmp_path / "m.json"], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["protocol"] == "lasot_toolkit"

    rc, out, err = _run(["--results_dir", a, "--dataset", "lasot", "--data_root", data,
                         "--protocol", "trackingnet", "--plot", tmp_path / "tn"], capsys)
    assert rc == 0, err
    assert "protocol trackingnet" in out and "P_at_20px" in out
    assert len(list((tmp_path / "tn").glob("lasot_*.png"))) == 3


def test_uav_nan_rows_are_scored(tmp_path, capsys):
    """Perfect boxes on UAV123 with 2 NaN GT rows of 12: success fails there, precision counts them."""
    data = tmp_path / "uav"
    make_uav(data, n_frames=6, nan_rows={"bike1": [2, 3]})
    res = tmp_path / "res"
    for seq in load_benchmark("uav", data):  # the GT exactly as the reader sees it
        gt = seq.ground_truth
        assert np.isnan(gt).any() == (seq.name == "uav_bike1")
        write_sequence_results(res, seq.name, np.nan_to_num(gt, nan=3.0), np.full(len(gt), 0.01))
    rc, out, err = _run(["--results_dir", res, "--dataset", "uav", "--data_root", data,
                         "--json", tmp_path / "u.json"], capsys)
    assert rc == 0, err
    scores = json.loads((tmp_path / "u.json").read_text())["trackers"][0]["scores"]
    assert scores["OP50"] == pytest.approx((4 / 6 + 1) / 2)
    assert scores["P"] == pytest.approx(1.0)


def test_longer_result_is_truncated_with_a_warning(tmp_path, capsys):
    data = tmp_path / "lasot"
    made = make_lasot(data, classes=("cat",), per_class=1)
    res = tmp_path / "res"
    gt = made["cat-1"]
    write_sequence_results(res, "cat-1", np.vstack([gt, gt[-1:]]), np.full(len(gt) + 1, 0.01))
    rc, out, err = _run(["--results_dir", res, "--dataset", "lasot", "--data_root", data], capsys)
    assert rc == 0
    assert "cat-1.txt: 7 lines for 6 frames" in err


def test_bad_results_name_file_line_and_missing_sequences(tmp_path, capsys):
    data = tmp_path / "lasot"
    made = make_lasot(data, per_class=2)
    res = tmp_path / "res"
    _write_noisy(res, made, seed=0, sigma=1.0)
    (res / "cat-2.txt").unlink()
    (res / "airplane-1.txt").write_text("")
    rc, out, err = _run(["--results_dir", res, "--dataset", "lasot", "--data_root", data], capsys)
    assert rc != 0 and out == ""
    assert "1 of 4 sequences have no result file" in err and "(cat-2)" in err
    assert "airplane-1.txt, line 1: result file is empty" in err
    assert len(err.strip().splitlines()) == 1

    (res / "airplane-1.txt").write_text("1,1,5,5\n" * 6)
    (res / "cat-2.txt").write_text("1,1,5,5\n" * 4)
    rc, out, err = _run(["--results_dir", res, "--dataset", "lasot", "--data_root", data], capsys)
    assert rc != 0
    assert "cat-2.txt, line 5: result ends after 4 lines, the sequence has 6 frames" in err


def test_cli_errors_for_unscorable_input(tmp_path):
    """Real processes: one-line causes on stderr, non-zero exit, no traceback."""
    data = tmp_path / "got10k"
    make_got10k(data, "test", n_seq=1, n_frames=3)
    cases = [
        ["--results_dir", tmp_path, "--dataset", "got10k_test", "--data_root", data],
        ["--results_dir", tmp_path / "none", "--dataset", "lasot", "--data_root", tmp_path / "no_lasot"],
    ]
    expected = ["pack_results.py got10k", "no_lasot"]
    for argv, needle in zip(cases, expected):
        proc = subprocess.run([sys.executable, str(SCRIPT)] + [str(a) for a in argv],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert needle in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_names_must_match_folders_and_bad_time_files_only_warn(tmp_path, capsys):
    data = tmp_path / "lasot"
    made = make_lasot(data, classes=("cat",), per_class=2)
    res = tmp_path / "res"
    _write_noisy(res, made, seed=3, sigma=1.0)
    rc, _, err = _run(["--results_dir", res, "--compare", res, "--names", "one", "--dataset", "lasot",
                       "--data_root", data], capsys)
    assert rc != 0 and "--names gives 1 names for 2 results folders" in err
    (res / "cat-1_time.txt").write_text("")
    rc, out, err = _run(["--results_dir", res, "--dataset", "lasot", "--data_root", data,
                         "--json", tmp_path / "j.json"], capsys)
    assert rc == 0
    assert "cat-1_time.txt, line 1: result file is empty; FPS not reported" in err
    assert json.loads((tmp_path / "j.json").read_text())["trackers"][0]["fps"] is None
