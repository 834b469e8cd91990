"""The synthetic data generator: exact labels, determinism, the readers, and the make_synthetic.py CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from easydict import EasyDict

from fartrack.data.datasets import build_dataset
from fartrack.data.synthetic import DIFFICULTIES, VAL_INDEX_OFFSET, SyntheticDataError, render_sequence
from fartrack.data.synthetic_writer import write_synthetic
from fartrack.evaluation.datasets import load_benchmark, load_sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZE = (128, 96)


def _hashes(root: Path) -> dict:
    """{relative path: sha256} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def _decoded_jpeg(frame: np.ndarray) -> np.ndarray:
    """What a reader gets back for a rendered frame (same encoder and quality as the writer)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


# ------------------------------------------------------------------------------------------------ determinism
def test_same_parameters_give_identical_files_and_another_seed_differs(tmp_path):
    params = dict(train_sequences=2, val_sequences=1, seed=5, difficulty="hard", num_frames=6, size=SIZE)
    write_synthetic(tmp_path / "a", **params)
    write_synthetic(tmp_path / "b", workers=2, **params)  # other processes, same bytes
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert len(a) == 3 * (6 + 5) + 2 + 1 and a == b
    # sequence k does not depend on how many sequences are generated
    write_synthetic(tmp_path / "c", **{**params, "train_sequences": 1})
    c = _hashes(tmp_path / "c")
    first = {k: v for k, v in a.items() if k.startswith("train/SYN_train_000001/")}
    assert first and all(c[k] == v for k, v in first.items())
    # another seed: other frames and other boxes
    write_synthetic(tmp_path / "d", **{**params, "seed": 6})
    d = _hashes(tmp_path / "d")
    assert d.keys() == a.keys()
    for key in ("train/SYN_train_000001/00000001.jpg", "train/SYN_train_000002/groundtruth.txt",
                "val/SYN_val_000001/00000003.jpg"):
        assert d[key] != a[key], key


# ------------------------------------------------------------------------------------------------ labels
@pytest.mark.parametrize("difficulty", list(DIFFICULTIES))
def test_labels_follow_the_rendered_pixels(difficulty):
    absent_frames = partial_frames = 0
    for index in range(6):
        seq = render_sequence(11, index, difficulty, num_frames=40, size=SIZE)
        assert seq.frames.shape == (40, SIZE[1], SIZE[0], 3) and seq.frames.dtype == np.uint8
        assert seq.cover[0] == 8 and not seq.absent[0]  # the first frame shows the whole target
        for t in range(len(seq)):
            mask = seq.target_masks[t]
            visible = int(mask.sum())
            x, y, w, h = seq.boxes[t]
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= SIZE[0] and y + h <= SIZE[1]
            assert seq.absent[t] == (visible == 0), (index, t)
            expected_cover = 0 if visible == 0 else int(np.ceil(8 * visible / seq.target_area[t] - 1e-9))
            assert seq.cover[t] == expected_cover, (index, t)
            if visible:
                ys, xs = np.nonzero(mask)
                assert xs.min() >= x and xs.max() < x + w and ys.min() >= y and ys.max() < y + h, (index, t)
            if visible == seq.target_area[t]:  # uncovered and inside the frame: the box is the tight box
                tight = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
                assert np.abs(np.array(tight) - seq.boxes[t]).max() <= 1, (index, t)
        absent_frames += int(seq.absent.sum())
        partial_frames += int(((seq.cover > 0) & (seq.cover < 8)).sum())
    if difficulty == "easy":
        assert absent_frames == 0 and partial_frames == 0
    elif difficulty == "medium":
        assert absent_frames == 0 and partial_frames > 0
    else:
        assert absent_frames > 0 and partial_frames > 0


@pytest.mark.parametrize("difficulty", list(DIFFICULTIES))
def test_the_target_is_really_drawn(difficulty):
    for index in range(3):
        seq = render_sequence(2, index, difficulty, num_frames=12, size=SIZE)
        bare = render_sequence(2, index, difficulty, num_frames=12, size=SIZE, draw_target=False)
        mask = seq.target_masks
        assert np.array_equal(seq.boxes, bare.boxes) and mask.any()
        assert np.array_equal(seq.frames[~mask], bare.frames[~mask])  # only the visible target pixels change
        diff = np.abs(seq.frames.astype(np.int16) - bare.frames.astype(np.int16)).max(-1)[mask]
        assert (diff > 0).mean() > 0.9 and diff.mean() > 30


def test_easy_target_stays_inside_and_scale_is_moderate():
    for index in range(5):
        seq = render_sequence(0, index, "easy", num_frames=80, size=(320, 240))
        area = seq.target_area.astype(np.float64)
        assert np.array_equal(seq.in_frame_area, seq.target_area)
        ratio = np.sqrt(area / area[0])
        assert ratio.min() > 0.7 and ratio.max() < 1.4


def test_bad_parameters_are_named(tmp_path):
    with pytest.raises(SyntheticDataError, match="difficulty 'extreme'"):
        render_sequence(0, 0, "extreme")
    with pytest.raises(SyntheticDataError, match="at least 32x32"):
        render_sequence(0, 0, "easy", size=(16, 16))
    with pytest.raises(SyntheticDataError, match="layout 'otb'"):
        write_synthetic(tmp_path / "x", train_sequences=1, layout="otb")
    with pytest.raises(SyntheticDataError, match="photos folder .*nowhere"):
        write_synthetic(tmp_path / "x", train_sequences=1, photos=tmp_path / "nowhere")


def test_photos_are_used_when_given(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    picture = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(photos / "a.png"), picture)
    with_photos = [render_sequence(3, i, "easy", 2, SIZE, photos=photos).frames[0] for i in range(6)]
    without = [render_sequence(3, i, "easy", 2, SIZE).frames[0] for i in range(6)]
    assert any(not np.array_equal(a, b) for a, b in zip(with_photos, without))


# ------------------------------------------------------------------------------------------------ readers
@pytest.fixture(scope="module")
def got10k_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    write_synthetic(out, train_sequences=2, val_sequences=2, seed=3, difficulty="hard", num_frames=40, size=SIZE)
    return out


def _expected(split: str, k: int) -> "object":
    index = (VAL_INDEX_OFFSET if split == "val" else 0) + k - 1
    return render_sequence(3, index, "hard", num_frames=40, size=SIZE)


def test_training_reader_sees_the_generated_labels(got10k_dir):
    ds = build_dataset("SYNTHETIC", EasyDict({"DATA": {"SPLITS_DIR": "."}}), SimpleNamespace(synthetic_dir=got10k_dir))
    assert [ds.sequence_name(i) for i in range(len(ds))] == ["SYN_train_000001", "SYN_train_000002"]
    for i in range(2):
        seq = _expected("train", i + 1)
        info = ds.sequence_info(i)
        assert np.allclose(info.bbox, seq.boxes, atol=1e-3)
        assert np.array_equal(info.visible, ~seq.absent)
        frames = ds.get_frames(i, [0, 17])
        assert np.array_equal(frames[0], _decoded_jpeg(seq.frames[0]))
        assert np.array_equal(frames[1], _decoded_jpeg(seq.frames[17]))
    assert not ds.sequence_info(0).visible.all()  # this hard sequence hides its target for a few frames


def test_benchmark_reader_sees_the_generated_labels(got10k_dir):
    sequences = load_benchmark("synthetic", root=got10k_dir)
    assert [s.name for s in sequences] == ["SYN_val_000001", "SYN_val_000002"]
    for k, got in enumerate(sequences, start=1):
        seq = _expected("val", k)
        assert len(got) == 40 and got.image_size() == SIZE
        assert np.allclose(got.ground_truth, seq.boxes, atol=1e-4)
        assert np.array_equal(got.target_visible, ~seq.absent)
        assert np.array_equal(got.meta["cover"], seq.cover)
        assert got.meta["object_class"] == seq.description.replace(" ", "_")
    one = load_sequence("synthetic", "SYN_val_000002", root=got10k_dir)
    assert np.allclose(one.ground_truth, sequences[1].ground_truth)


def test_lasot_layout_loads_in_both_readers(tmp_path):
    out = tmp_path / "lasot"
    write_synthetic(out, train_sequences=2, val_sequences=1, seed=4, difficulty="hard", num_frames=30, size=SIZE,
                    layout="lasot")
    assert (out / "testing_set.txt").read_text() == "synval-1\n"
    bench = load_benchmark("lasot", root=out)
    assert [s.name for s in bench] == ["synval-1"]
    seq = render_sequence(4, VAL_INDEX_OFFSET, "hard", num_frames=30, size=SIZE)
    assert np.allclose(bench[0].ground_truth, seq.boxes, atol=1e-4)
    assert seq.absent.any() and np.array_equal(bench[0].target_visible, ~seq.absent)
    train_seq = load_sequence("lasot", "syntrain-2", root=out)
    expected = render_sequence(4, 1, "hard", num_frames=30, size=SIZE)
    assert expected.absent.any() and np.array_equal(train_seq.target_visible, ~expected.absent)

    cfg = EasyDict({"DATA": {"SPLITS_DIR": str(out)}})  # the generator writes lasot_train_split.txt there
    ds = build_dataset("LASOT", cfg, SimpleNamespace(lasot_dir=str(out), workspace_dir=str(tmp_path)))
    assert [ds.sequence_name(i) for i in range(len(ds))] == ["syntrain-1", "syntrain-2"]
    info = ds.sequence_info(1)
    assert np.allclose(info.bbox, expected.boxes, atol=1e-3)
    assert np.array_equal(info.visible, ~expected.absent)
    assert np.array_equal(ds.get_frames(1, [5])[0], _decoded_jpeg(expected.frames[5]))


# ------------------------------------------------------------------------------------------------ folders and CLI
def test_existing_folders_are_refused_not_deleted(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SyntheticDataError, match="holds other files"):
        write_synthetic(other, train_sequences=1, num_frames=2, size=SIZE)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    out = tmp_path / "syn"
    write_synthetic(out, train_sequences=1, val_sequences=0, num_frames=2, size=SIZE)
    with pytest.raises(SyntheticDataError, match=f"{out}.*difficulty: 'easy' there, 'medium' now"):
        write_synthetic(out, train_sequences=1, val_sequences=0, num_frames=2, size=SIZE, difficulty="medium")
    summary = write_synthetic(out, train_sequences=1, val_sequences=0, num_frames=2, size=SIZE)
    assert summary["up_to_date"] and summary["generated"] == 0


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO_ROOT / "tracking" / "make_synthetic.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


def test_cli_generates_reports_up_to_date_refuses_and_resumes(tmp_path):
    out = tmp_path / "syn"
    args = ["--out", out, "--sequences", 2, "--val_sequences", 1, "--frames", 5, "--size", "64x48", "--seed", 1]
    first = _cli(*args)
    assert first.returncode == 0, first.stderr
    assert "synthetic_dir" in first.stdout and "synthetic_path" in first.stdout and "--data_root" in first.stdout
    assert "100%" in first.stdout
    hashes, mtimes = _hashes(out), _mtimes(out)
    assert (out / "train" / "list.txt").read_text() == "SYN_train_000001\nSYN_train_000002\n"

    again = _cli(*args)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert _mtimes(out) == mtimes

    other = _cli(*args[:-1], 2)
    assert other.returncode != 0 and str(out) in other.stderr and "seed" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1 and _mtimes(out) == mtimes

    # an interrupted run: a sequence and the list missing, a temporary folder left behind
    shutil.rmtree(out / "train" / "SYN_train_000002")
    (out / "train" / "list.txt").unlink()
    partial = out / "train" / ".SYN_train_000002.partial-12345"
    partial.mkdir()
    (partial / "00000001.jpg").write_bytes(b"half")
    resumed = _cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "wrote 1 sequences" in resumed.stdout
    assert _hashes(out) == hashes and not partial.exists()


def test_cli_bad_arguments_exit_non_zero(tmp_path):
    bad = _cli("--out", tmp_path / "x", "--size", "big")
    assert bad.returncode != 0 and "WIDTHxHEIGHT" in bad.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    refused = _cli("--out", tmp_path / "full", "--sequences", 1)
    assert refused.returncode == 2 and "full" in refused.stderr and "error" in refused.stderr
    assert os.listdir(tmp_path / "full") == ["keep.txt"]
