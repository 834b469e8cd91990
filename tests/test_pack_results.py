"""tracking/pack_results.py: exact server layouts, validation before writing, raw results untouched."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fartrack.evaluation.results import write_sequence_results

from bench_layouts import make_got10k, make_trackingnet_test
from tiny_models import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tracking" / "pack_results.py"


def _main(argv, capsys):
    rc = load_script(SCRIPT, "pack_results_cli").main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _results(folder: Path, made: dict, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    boxes = {}
    for name, gt in made.items():
        b = np.round(gt + rng.normal(0, 1.0, gt.shape), 3)
        b[:, 2:] = np.abs(b[:, 2:]) + 1.0
        write_sequence_results(folder, name, b, rng.uniform(0.01, 0.05, len(gt)))
        boxes[name] = b
    return boxes


def _parse(text: str) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in text.splitlines()])


def test_got10k_zip_layout_content_and_raw_untouched(tmp_path, capsys):
    data = tmp_path / "got10k"
    made = make_got10k(data, "test", n_seq=3, n_frames=[4, 6, 5])
    res = tmp_path / "res"
    boxes = _results(res, made)
    before = _snapshot(res)
    out = tmp_path / "submit" / "got10k.zip"
    rc, stdout, err = _main(["got10k", "--results_dir", res, "--out", out, "--data_root", data], capsys)
    assert rc == 0, err
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
        expected = sorted([f"{s}/{s}_001.txt" for s in made] + [f"{s}/{s}_time.txt" for s in made])
        assert names == expected
        for seq, gt in made.items():
            text = archive.read(f"{seq}/{seq}_001.txt").decode()
            assert "\t" not in text and " " not in text
            np.testing.assert_allclose(_parse(text), boxes[seq], atol=1e-9)
            times = archive.read(f"{seq}/{seq}_time.txt").decode().splitlines()
            assert times == (res / f"{seq}_time.txt").read_text().splitlines()
            assert len(times) == len(gt)
    assert _snapshot(res) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["got10k.zip"]  # no temp files left

    # Same results -> byte-identical archive; an existing archive is kept unless --force.
    first = out.read_bytes()
    rc, _, err = _main(["got10k", "--results_dir", res, "--out", out, "--data_root", data], capsys)
    assert rc != 0 and "already exists" in err and out.read_bytes() == first
    rc, _, err = _main(["got10k", "--results_dir", res, "--out", out, "--data_root", data, "--force"], capsys)
    assert rc == 0 and out.read_bytes() == first


def test_trackingnet_flat_zip_from_tab_separated_results(tmp_path, capsys):
    data = tmp_path / "trackingnet"
    made = make_trackingnet_test(data, n_seq=2, n_frames=[5, 3])
    res = tmp_path / "res"
    boxes = _results(res, made)
    first = next(iter(made))
    assert first.startswith("-")
    # A result written tab-separated by another tool is re-emitted comma-separated.
    (res / f"{first}.txt").write_text("".join("\t".join(f"{v:.3f}" for v in row) + "\n" for row in boxes[first]))
    before = _snapshot(res)
    out = tmp_path / "tn.zip"
    rc, _, err = _main(["trackingnet", "--results_dir", res, "--out", out, "--data_root", data], capsys)
    assert rc == 0, err
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(f"{s}.txt" for s in made)
        for seq in made:
            np.testing.assert_allclose(_parse(archive.read(f"{seq}.txt").decode()), boxes[seq], atol=1e-9)
    assert _snapshot(res) == before


@pytest.mark.parametrize("breakage, message", [
    ("missing", "1 of 3 sequences have no complete result"),
    ("short", "_000002.txt, line 6: result ends after 5 lines, the sequence has 6 frames"),
    ("nan", "_000002.txt, line 2: value is not finite"),
    ("zero", "_000002.txt, line 3: width and height must be positive"),
    ("no_time", "GOT-10k_Test_000002 (no GOT-10k_Test_000002_time.txt)"),
    ("short_time", "_000002_time.txt, line 3: 2 time lines, the sequence has 6 frames"),
])
def test_validation_fails_before_writing(tmp_path, capsys, breakage, message):
    data = tmp_path / "got10k"
    made = make_got10k(data, "test", n_seq=3, n_frames=[4, 6, 5])
    res = tmp_path / "res"
    _results(res, made)
    seq = "GOT-10k_Test_000002"
    box_file, time_file = res / f"{seq}.txt", res / f"{seq}_time.txt"
    lines = box_file.read_text().splitlines()
    if breakage == "missing":
        box_file.unlink()
    elif breakage == "short":
        box_file.write_text("\n".join(lines[:5]) + "\n")
    elif breakage == "nan":
        box_file.write_text("\n".join([lines[0], "nan,1,2,3"] + lines[2:]) + "\n")
    elif breakage == "zero":
        box_file.write_text("\n".join(lines[:2] + ["1,1,0,3"] + lines[3:]) + "\n")
    elif breakage == "no_time":
        time_file.unlink()
    else:
        time_file.write_text("0.1\n0.2\n")
    before = _snapshot(res)
    out = tmp_path / "x.zip"
    rc, _, err = _main(["got10k", "--results_dir", res, "--out", out, "--data_root", data], capsys)
    assert rc != 0
    assert message in err
    assert not out.exists()
    assert _snapshot(res) == before


def test_refuses_archive_inside_results_and_reports_in_one_line(tmp_path):
    data = tmp_path / "trackingnet"
    made = make_trackingnet_test(data, n_seq=1, n_frames=3)
    res = tmp_path / "res"
    _results(res, made)
    before = _snapshot(res)
    proc = subprocess.run([sys.executable, str(SCRIPT), "trackingnet", "--results_dir", str(res),
                           "--out", str(res / "submit.zip"), "--data_root", str(data)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "outside the results folder" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert _snapshot(res) == before
