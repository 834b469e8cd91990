"""Benchmark readers on tiny benchmarks written in each real on-disk layout (tests/bench_layouts.py)."""

from __future__ import annotations

import numpy as np
import pytest

import bench_layouts as bl
from fartrack.config.local_settings import LocalSettings
from fartrack.evaluation.datasets import (
    BENCHMARKS,
    DatasetError,
    benchmark_root,
    list_sequences,
    load_benchmark,
    load_sequence,
    read_box_file,
)
from fartrack.evaluation.video import FrameReadError, read_image

MAKERS = {
    "got10k_val": lambda root: bl.make_got10k(root, "val", 2, [4, 5]),
    "got10k_test": lambda root: bl.make_got10k(root, "test", 2, 4),
    "lasot": lambda root: bl.make_lasot(root, ("airplane", "cat"), 2, 5),
    "lasot_extension_subset": lambda root: bl.make_lasot(root, ("atv", "wingsuit"), 6, 3),
    "trackingnet": lambda root: bl.make_trackingnet_test(root, 2, 5),
    "nfs": lambda root: bl.make_nfs(root, ("Basketball_2", "Gymnastics"), 5),
    "uav": lambda root: bl.make_uav(root, ("bike1", "boat3"), 5),
    "otb": lambda root: bl.make_otb(root, ("Basketball", "Car4"), 5),
    "vasttrack": lambda root: bl.make_vasttrack(root, ("Aardvark", "Zebra"), 1, 5),
    "synthetic": lambda root: bl.make_got10k(root, "val", 3, 4),
}
ROW0_ONLY = ("got10k_test", "trackingnet")


def test_every_benchmark_has_a_maker():
    assert set(MAKERS) == set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_layout_reads_back(tmp_path, name):
    made = MAKERS[name](tmp_path)
    seqs = load_benchmark(name, tmp_path)
    assert sorted(s.name for s in seqs) == sorted(made)
    for seq in seqs:
        truth = made[seq.name]
        assert seq.dataset == name
        assert len(seq.frames) == len(truth) == len(seq.ground_truth)
        assert seq.ground_truth.shape == (len(truth), 4) and seq.ground_truth.dtype == np.float64
        if name in ROW0_ONLY:
            np.testing.assert_allclose(seq.ground_truth[0], truth[0], atol=0.01)
            assert np.isnan(seq.ground_truth[1:]).all()
        else:
            np.testing.assert_allclose(seq.ground_truth, truth, atol=1e-4)
        # frames are real, ordered, and the written images (box drawn where the GT says)
        assert all(p.is_file() for p in seq.frames)
        assert seq.image_size() == (bl.WIDTH, bl.HEIGHT)
        x, y, w, h = (int(round(v)) for v in truth[-1])
        last = read_image(seq.frames[-1]).astype(np.float64)
        inside = last[y + 2 : y + h - 2, x + 2 : x + w - 2].std()
        assert inside > 20  # the noise texture of the target sits where the last GT row says


def test_list_sequences_matches_load(tmp_path):
    bl.make_lasot(tmp_path, ("cat",), 3, 4)
    assert list_sequences("lasot", tmp_path) == ["cat-1", "cat-2", "cat-3"]
    seq = load_sequence("lasot", "cat-2", tmp_path)
    assert seq.name == "cat-2" and seq.meta["object_class"] == "cat"


def test_got10k_val_visibility_and_labels(tmp_path):
    bl.make_got10k(tmp_path, "val", 2, 6, absent={"GOT-10k_Val_000002": [1, 4]})
    seqs = {s.name: s for s in load_benchmark("got10k_val", tmp_path)}
    two = seqs["GOT-10k_Val_000002"]
    assert two.target_visible.tolist() == [True, False, True, True, False, True]
    assert two.meta["cover"].tolist() == [8, 0, 8, 8, 0, 8]
    assert two.meta["object_class"] == "testclass1"
    assert seqs["GOT-10k_Val_000001"].target_visible.all()


def test_got10k_without_label_files_is_a_custom_dataset(tmp_path):
    bl.make_got10k(tmp_path, "val", 1, 4)
    folder = tmp_path / "val" / "GOT-10k_Val_000001"
    for label in ("absence.label", "cover.label", "cut_by_image.label", "meta_info.ini"):
        (folder / label).unlink()
    (seq,) = load_benchmark("got10k_val", tmp_path)
    assert seq.target_visible is None and seq.meta == {}


def test_got10k_frames_sorted_by_integer_and_png(tmp_path):
    bl.make_got10k(tmp_path, "val", 1, 12, ext="png")
    (seq,) = load_benchmark("got10k_val", tmp_path)
    assert [p.name for p in seq.frames][8:11] == ["00000009.png", "00000010.png", "00000011.png"]


def test_lasot_visibility_from_occlusion_and_out_of_view(tmp_path):
    bl.make_lasot(tmp_path, ("cat",), 1, 6, occluded={"cat-1": [1]}, out_of_view={"cat-1": [1, 3]})
    (seq,) = load_benchmark("lasot", tmp_path)
    assert seq.target_visible.tolist() == [True, False, True, False, True, True]
    assert seq.meta["full_occlusion"].tolist() == [0, 1, 0, 0, 0, 0]


def test_lasot_testing_set_selects_sequences(tmp_path):
    bl.make_lasot(tmp_path, ("cat",), 3, 3)
    (tmp_path / "testing_set.txt").write_text("cat-3\ncat-1\n")
    assert [s.name for s in load_benchmark("lasot", tmp_path)] == ["cat-3", "cat-1"]


def test_full_lasot_without_testing_set_is_refused(tmp_path):
    bl.make_lasot(tmp_path, ("cat",), 5, 2)
    with pytest.raises(DatasetError, match="testing_set.txt") as err:
        load_benchmark("lasot", tmp_path)
    assert str(tmp_path / "cat") in str(err.value)
    # LaSOT_ext has 10 sequences per class: all class folders are its test set
    assert len(load_benchmark("lasot_extension_subset", tmp_path)) == 5


def test_lasot_png_frames(tmp_path):
    bl.make_lasot(tmp_path, ("cat",), 1, 3, ext="png")
    (seq,) = load_benchmark("lasot", tmp_path)
    assert [p.name for p in seq.frames] == ["00000001.png", "00000002.png", "00000003.png"]


def test_trackingnet_frames_are_zero_based_and_numeric(tmp_path):
    bl.make_trackingnet_test(tmp_path, 1, 12)
    (seq,) = load_benchmark("trackingnet", tmp_path)
    assert seq.name.startswith("-")
    assert [p.name for p in seq.frames][:3] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [p.name for p in seq.frames][9:] == ["9.jpg", "10.jpg", "11.jpg"]


def test_uav_nan_rows_and_split_sequences(tmp_path):
    made = bl.make_uav(tmp_path, ("bike1",), 6, nan_rows={"bike1": [2, 3]},
                       split={"bird1": (12, [(1, 4), (7, 11)])})
    seqs = {s.name: s for s in load_benchmark("uav", tmp_path)}
    assert sorted(seqs) == ["uav_bike1", "uav_bird1_1", "uav_bird1_2"]
    bike = seqs["uav_bike1"].ground_truth
    assert np.isnan(bike[[2, 3]]).all() and np.isfinite(bike[[0, 1, 4, 5]]).all()
    two = seqs["uav_bird1_2"]
    assert [p.name for p in two.frames] == [f"{i:06d}.jpg" for i in range(7, 12)]
    assert two.frames[0].parent.name == "bird1"
    np.testing.assert_allclose(two.ground_truth, made["uav_bird1_2"])


def test_uav_split_sequence_without_table_names_config_file(tmp_path):
    bl.make_uav(tmp_path, ("bike1",), 4, split={"bird1": (8, [(1, 3), (5, 8)])})
    (tmp_path / "configSeqs.m").unlink()
    with pytest.raises(DatasetError, match="configSeqs.m"):
        load_benchmark("uav", tmp_path)
    assert load_sequence("uav", "uav_bike1", tmp_path).name == "uav_bike1"


def test_uav_nan_is_rejected_elsewhere(tmp_path):
    bl.make_otb(tmp_path, ("Car4",), 4)
    gt = tmp_path / "Car4" / "groundtruth_rect.txt"
    lines = gt.read_text().splitlines()
    lines[2] = "NaN,NaN,NaN,NaN"
    gt.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"{gt}:3: NaN"):
        load_benchmark("otb", tmp_path)


def test_otb_two_targets_and_late_start(tmp_path):
    bl.make_otb(tmp_path, ("Jogging", "David"), [5, 8])
    jog = tmp_path / "Jogging"
    (jog / "groundtruth_rect.txt").rename(jog / "groundtruth_rect.1.txt")
    (jog / "groundtruth_rect.2.txt").write_text((jog / "groundtruth_rect.1.txt").read_text())
    # David's annotation starts at image 300 (OTB-100): images 300..307 carry the 8 GT rows
    david = tmp_path / "David" / "img"
    for k, path in enumerate(sorted(david.iterdir())):
        path.rename(david / f"{300 + k:04d}.jpg")
    seqs = {s.name: s for s in load_benchmark("otb", tmp_path)}
    assert sorted(seqs) == ["David", "Jogging_1", "Jogging_2"]
    assert seqs["David"].frames[0].name == "0300.jpg" and len(seqs["David"].frames) == 8


def test_vasttrack_invisible_rows(tmp_path):
    bl.make_vasttrack(tmp_path, ("Zebra",), 1, 5, invisible={"Zebra-1": [2]})
    (seq,) = load_benchmark("vasttrack", tmp_path)
    assert seq.target_visible.tolist() == [True, True, False, True, True]


def test_sequences_argument_and_unknown_name(tmp_path):
    bl.make_got10k(tmp_path, "val", 3, 3)
    seqs = load_benchmark("got10k_val", tmp_path, sequences=["GOT-10k_Val_000003", "GOT-10k_Val_000001"])
    assert [s.name for s in seqs] == ["GOT-10k_Val_000001", "GOT-10k_Val_000003"]
    with pytest.raises(DatasetError, match="did you mean 'GOT-10k_Val_000002'"):
        load_benchmark("got10k_val", tmp_path, sequences=["GOT-10k_Val_00002"])


# ------------------------------------------------------------------------------------------------ errors
def test_missing_root_names_path_and_layout(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_benchmark("lasot", tmp_path / "nowhere")
    text = str(err.value)
    assert str(tmp_path / "nowhere") in text and "groundtruth.txt" in text and "full_occlusion" in text


def test_missing_list_file(tmp_path):
    (tmp_path / "val").mkdir()
    with pytest.raises(DatasetError, match=r"list\.txt not found"):
        load_benchmark("got10k_val", tmp_path)


def test_wrong_column_count_names_file_and_line(tmp_path):
    bl.make_lasot(tmp_path, ("cat",), 1, 5)
    gt = tmp_path / "cat" / "cat-1" / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[3] += ",7"
    gt.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"{gt}:4: expected 4 numbers \(x,y,w,h\), got 5"):
        load_benchmark("lasot", tmp_path)


def test_non_numeric_and_empty_gt(tmp_path):
    bad = tmp_path / "gt.txt"
    bad.write_text("1,2,3,4\n\n1,2,x,4\n")
    with pytest.raises(DatasetError, match=rf"{bad}:3: not a number"):
        read_box_file(bad)
    bad.write_text("\n\n")
    with pytest.raises(DatasetError, match="is empty"):
        read_box_file(bad)
    bad.write_text("1\t2\t3\t4\n5 6 7 8\n")
    np.testing.assert_array_equal(read_box_file(bad), [[1, 2, 3, 4], [5, 6, 7, 8]])
    bad.write_bytes("\ufeff1,2,3,4\r\n".encode())  # a byte-order mark and Windows line ends
    np.testing.assert_array_equal(read_box_file(bad), [[1, 2, 3, 4]])


def test_missing_frame_is_named(tmp_path):
    bl.make_nfs(tmp_path, ("Gymnastics",), 5)
    (tmp_path / "sequences" / "Gymnastics" / "00004.jpg").unlink()
    with pytest.raises(DatasetError, match=r"frame .*Gymnastics/00004\.jpg .*not found"):
        load_benchmark("nfs", tmp_path)


def test_flag_file_length_mismatch(tmp_path):
    bl.make_lasot(tmp_path, ("cat",), 1, 5)
    (tmp_path / "cat" / "cat-1" / "out_of_view.txt").write_text("0,0,0\n")
    with pytest.raises(DatasetError, match="out_of_view.txt has 3 flags but the sequence has 5 frames"):
        load_benchmark("lasot", tmp_path)


def test_got10k_frame_count_mismatch(tmp_path):
    bl.make_got10k(tmp_path, "val", 1, 5)
    (tmp_path / "val" / "GOT-10k_Val_000001" / "00000005.jpg").unlink()
    with pytest.raises(DatasetError, match="has 5 rows but .* has 4 frames"):
        load_benchmark("got10k_val", tmp_path)


def test_unknown_benchmark_suggests(tmp_path):
    with pytest.raises(DatasetError, match="did you mean 'lasot'"):
        load_benchmark("lasott", tmp_path)


def test_corrupt_frame_names_file(tmp_path):
    bl.make_got10k(tmp_path, "val", 1, 3)
    frame = tmp_path / "val" / "GOT-10k_Val_000001" / "00000002.jpg"
    bl.corrupt_file(frame)
    with pytest.raises(FrameReadError, match=str(frame)):
        read_image(frame)


def test_benchmark_root_from_settings(tmp_path):
    settings = LocalSettings({"got10k_path": str(tmp_path / "g"), "synthetic_path": str(tmp_path / "s")},
                             tmp_path / "local.py")
    assert benchmark_root("got10k_test", settings) == tmp_path / "g"
    assert benchmark_root("synthetic", settings) == tmp_path / "s"
    partial = LocalSettings({}, tmp_path / "local.py")
    with pytest.raises(AttributeError, match="uav_path"):
        benchmark_root("uav", partial)
