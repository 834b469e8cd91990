"""Training datasets read from tiny copies of their real on-disk layouts (folders and LMDB)."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
from easydict import EasyDict

from fartrack.data.datasets import build_dataset
from fartrack.data.image_io import DatasetError, FrameReadError
from train_layouts import (
    folder_to_lmdb,
    frames_and_boxes,
    write_coco,
    write_custom,
    write_got10k,
    write_lasot,
    write_settings,
    write_split_files,
    write_trackingnet,
    write_trackingnet_lmdb,
    write_vasttrack,
    write_vid,
)


def _cfg(splits_dir="lib/train/data_specs"):
    return EasyDict({"DATA": {"SPLITS_DIR": str(splits_dir)}})


@pytest.fixture()
def env(tmp_path):
    data = tmp_path / "data"
    settings = write_settings(tmp_path / "repo", data, custom_dir=data / "custom")
    return tmp_path, data, settings


def _assert_frames_match(ds, seq_id, frames, ids=(1, 3)):
    """The frames read are exactly the JPEG-decoded frames that were written (and in the right order)."""
    got = ds.get_frames(seq_id, list(ids))
    for f, image in zip(ids, got):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frames[f][:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
        expected = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        assert image.dtype == np.uint8 and np.array_equal(image, expected), f"frame {f}"


def test_got10k_splits_visibility_and_frames(env):
    tmp, data, settings = env
    names = write_got10k(data / "got10k" / "train", 4, 20, absent={1: [3, 4]}, cover0={1: [5]})
    write_split_files(tmp / "repo" / "lib" / "train" / "data_specs", got10k_train=[1, 3], got10k_val=[0])
    ds = build_dataset("GOT10K_vottrain", _cfg(), settings)
    assert [ds.sequence_name(i) for i in range(len(ds))] == [names[1], names[3]]
    info = ds.sequence_info(0)
    frames, boxes = frames_and_boxes(20, seed=1)
    assert np.allclose(info.bbox, boxes, atol=1e-3) and info.bbox.dtype == np.float32
    assert info.visible.tolist() == [f not in (3, 4, 5) for f in range(20)]
    _assert_frames_match(ds, 0, frames)
    assert ds.frame_source(0, 0).endswith("GOT-10k_Train_000002/00000001.jpg")
    assert len(build_dataset("GOT10K_votval", _cfg(), settings)) == 1
    assert len(build_dataset("GOT10K_train_full", _cfg(), settings)) == 4  # no split file: all of list.txt


def test_got10k_missing_split_file_says_where_to_get_it(env):
    _, data, settings = env
    write_got10k(data / "got10k" / "train", 1, 20)
    with pytest.raises(DatasetError) as err:
        build_dataset("GOT10K_vottrain", _cfg("nowhere"), settings)
    msg = str(err.value)
    assert "got10k_vot_train_split.txt" in msg and "DATA.SPLITS_DIR" in msg and "data_specs" in msg


def test_missing_root_names_the_settings_key(env):
    _, _, settings = env
    with pytest.raises(DatasetError, match="lasot_dir"):
        build_dataset("LASOT", _cfg(), settings)
    with pytest.raises(DatasetError, match="trackingnet_dir"):
        build_dataset("TRACKINGNET", _cfg(), settings)


def test_bad_groundtruth_line_names_file_and_line(env):
    tmp, data, settings = env
    write_got10k(data / "got10k" / "train", 1, 20)
    gt = data / "got10k" / "train" / "GOT-10k_Train_000001" / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[6] = "12,13,oops"
    gt.write_text("\n".join(lines) + "\n")
    write_split_files(tmp / "repo" / "lib" / "train" / "data_specs", got10k_train=[0])
    ds = build_dataset("GOT10K_vottrain", _cfg(), settings)
    with pytest.raises(DatasetError) as err:
        ds.sequence_info(0)
    assert f"{gt}: line 7: expected 4 numbers" in str(err.value)


def test_corrupt_frame_names_the_file(env):
    tmp, data, settings = env
    write_got10k(data / "got10k" / "train", 1, 20)
    bad = data / "got10k" / "train" / "GOT-10k_Train_000001" / "00000003.jpg"
    bad.write_bytes(b"garbage")
    ds = build_dataset("GOT10K_train_full", _cfg(), settings)
    with pytest.raises(FrameReadError, match=str(bad)):
        ds.get_frames(0, [2])
    (bad.parent / "00000004.jpg").unlink()
    with pytest.raises(FrameReadError, match="not found"):
        ds.get_frames(0, [3])


def test_lasot_flags_and_split(env):
    tmp, data, settings = env
    names = write_lasot(data / "lasot", ("cat", "dog"), 2, 20, occluded={"dog-1": [2]}, out_of_view={"dog-1": [7, 8]})
    write_split_files(tmp / "repo" / "lib" / "train" / "data_specs", lasot_train=["cat-2", "dog-1"])
    ds = build_dataset("LASOT", _cfg(), settings)
    assert [ds.sequence_name(i) for i in range(len(ds))] == ["cat-2", "dog-1"]
    assert ds.sequence_info(1).visible.tolist() == [f not in (2, 7, 8) for f in range(20)]
    frames, _ = frames_and_boxes(20, seed=100 + names.index("dog-1"))
    _assert_frames_match(ds, 1, frames)
    with pytest.raises(DatasetError, match="lasot_train_split.txt"):
        build_dataset("LASOT", _cfg("elsewhere"), settings)


def test_trackingnet_zero_based_frames(env):
    _, data, settings = env
    seqs = write_trackingnet(data / "trackingnet", {0: 1, 2: 2}, 20)
    ds = build_dataset("TRACKINGNET", _cfg(), settings)
    assert [ds.sequence_name(i) for i in range(len(ds))] == [f"TRAIN_{s}/{v}" for s, v in seqs]
    assert ds.frame_source(2, 0).endswith("TRAIN_2/frames/vid2_001/0.jpg")
    frames, boxes = frames_and_boxes(20, seed=202)
    assert np.allclose(ds.sequence_info(2).bbox, boxes, atol=1e-3)
    _assert_frames_match(ds, 2, frames)


def test_coco_sequences_skip_crowd_and_mark_small_objects(env):
    _, data, settings = env
    ann_ids = write_coco(data / "coco", num_images=2)
    ds = build_dataset("COCO17", _cfg(), settings)
    assert len(ds) == len(ann_ids) == 4 and not ds.is_video
    assert ds.sequence_info(0).visible.tolist() == [True] and ds.sequence_info(1).visible.tolist() == [False]
    frames = ds.get_frames(2, [0, 5, 9])
    assert len(frames) == 3 and frames[0] is frames[2] and frames[0].shape == (300, 400, 3)
    assert ds.get_boxes(2, [0, 5]).shape == (2, 4)


def test_vid_tracklets(env):
    _, data, settings = env
    write_vid(data / "vid", 2, 12, occluded={1: [4]})
    ds = build_dataset("VID", _cfg(), settings)
    assert len(ds) == 2 and (data / "vid" / "cache.json").is_file()
    assert ds.sequence_info(1).visible.tolist() == [f != 4 for f in range(12)]
    assert ds.frame_source(1, 3).endswith("ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000001/000003.JPEG")
    frames, _ = frames_and_boxes(12, seed=501)
    _assert_frames_match(ds, 1, frames)
    assert len(build_dataset("VID", _cfg(), settings)) == 2  # second build reads cache.json


def test_vasttrack_class_names_with_hyphens(env):
    _, data, settings = env
    names = write_vasttrack(data / "vasttrack" / "train", ("Sea lion", "T-shirt"), 1, 12)
    ds = build_dataset("VastTrack", _cfg(), settings)
    assert sorted(ds.sequence_name(i) for i in range(len(ds))) == sorted(names)
    i = [ds.sequence_name(k) for k in range(len(ds))].index("T-shirt-1")
    assert ds.frame_source(i, 0).endswith("T-shirt/T-shirt-1/imgs/00001.jpg")
    assert ds.get_frames(i, [11])[0].shape == (72, 96, 3)


def test_custom_folder_with_absence_and_img_subfolder(env):
    _, data, settings = env
    write_custom(data / "custom", 2, 15, absent={1: [0, 1]}, image_subdir="img")
    ds = build_dataset("CUSTOM", _cfg(), settings)
    assert [ds.sequence_name(i) for i in range(len(ds))] == ["seq00", "seq01"]
    assert ds.sequence_info(1).visible.tolist() == [f > 1 for f in range(15)]
    frames, _ = frames_and_boxes(15, seed=601)
    _assert_frames_match(ds, 1, frames)
    (data / "custom" / "seq00" / "img" / "000014.jpg").unlink()
    with pytest.raises(DatasetError, match="15 boxes but 14 images"):
        ds.sequence_info(0)


def test_synthetic_uses_the_got10k_layout(env):
    _, data, settings = env
    write_got10k(data / "synthetic" / "train", 2, 20, prefix="synthetic")
    ds = build_dataset("SYNTHETIC", _cfg(), settings)
    assert len(ds) == 2 and ds.sequence_name(0) == "synthetic_000001"


def test_lmdb_variants_equal_folder_datasets(env):
    tmp, data, settings = env
    write_got10k(data / "got10k" / "train", 2, 20)
    folder_to_lmdb(data / "got10k" / "train", data / "got10k_lmdb", key_prefix="train/")
    write_lasot(data / "lasot", ("cat",), 2, 20)
    folder_to_lmdb(data / "lasot", data / "lasot_lmdb")
    write_trackingnet(data / "trackingnet", {0: 1, 1: 1}, 20)
    write_trackingnet_lmdb(data / "trackingnet", data / "trackingnet_lmdb")
    write_coco(data / "coco", 2)
    folder_to_lmdb(data / "coco", data / "coco_lmdb")
    write_vid(data / "vid", 1, 12)
    build_dataset("VID", _cfg(), settings)  # writes cache.json
    folder_to_lmdb(data / "vid", data / "vid_lmdb")
    write_split_files(tmp / "repo" / "lib" / "train" / "data_specs", got10k_train=[1, 0], lasot_train=["cat-1", "cat-2"])
    for name in ("GOT10K_vottrain", "LASOT", "TRACKINGNET", "COCO17", "VID"):
        plain, lmdb = build_dataset(name, _cfg(), settings), build_dataset(name + "_lmdb", _cfg(), settings)
        assert len(plain) == len(lmdb) > 0, name
        for i in range(len(plain)):
            assert plain.sequence_name(i) == lmdb.sequence_name(i)
            a, b = plain.sequence_info(i), lmdb.sequence_info(i)
            assert np.array_equal(a.bbox, b.bbox) and np.array_equal(a.visible, b.visible), name
        assert np.array_equal(plain.get_frames(0, [1])[0], lmdb.get_frames(0, [1])[0]), name
    # datasets travel to spawned loader workers by pickle: the LMDB handle is reopened there
    lmdb_ds = build_dataset("GOT10K_vottrain_lmdb", _cfg(), settings)
    lmdb_ds.get_frames(0, [0])
    clone = pickle.loads(pickle.dumps(lmdb_ds))
    assert clone.store._env is None and np.array_equal(clone.get_frames(1, [2])[0], lmdb_ds.get_frames(1, [2])[0])
    with pytest.raises(FrameReadError, match=r"got10k_lmdb\[train/GOT-10k_Train_000002/00000099.jpg\]"):
        build_dataset("GOT10K_vottrain_lmdb", _cfg(), settings).get_frames(0, [98])
    assert json.loads((data / "trackingnet_lmdb" / "seq_list.json").read_text()) == [[0, "vid0_000"], [1, "vid1_000"]]


def test_unknown_and_lmdb_less_names(env):
    _, data, settings = env
    write_vasttrack(data / "vasttrack" / "train", ("Cat",), 1, 12)
    with pytest.raises(DatasetError, match="no LMDB variant"):
        build_dataset("VastTrack_lmdb", _cfg(), settings)
    with pytest.raises(DatasetError, match="unknown training dataset"):
        build_dataset("OTB", _cfg(), settings)
