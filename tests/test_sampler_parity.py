"""Samplers against the reference's recorded frame choices (``training/sampler.json``).

The fixture's synthetic GOT-10k folders are rebuilt from their description (annotation files only: the
scenarios without processing never read a frame, and processing validity depends only on geometry), read
with our GOT-10k class, and sampled with a ``random.Random`` seeded like the reference's global ``random``.
Every item must match exactly (sequence, template ids in slot order, search ids, attempts).

Documented deviation (TRAINING_AND_EVAL.md §13 #20): the reference resamples forever, silently; ours
gives up after ``DATA.SAMPLE_RETRY_LIMIT`` consecutive unusable samples with a :class:`SampleError` that
names the dataset, sequence and frames -- checked at the bottom.
"""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

from fartrack.data.datasets.base import FileStore
from fartrack.data.datasets.got10k import Got10k
from fartrack.data.processing import CropFamily, FrameProcessing, SampleRng
from fartrack.data.sampler import (
    ClipSampleDataset,
    FrameSampleDataset,
    SampleError,
    sample_clip_ids,
    sample_frame_ids,
    sample_visible_ids,
)
from train_layouts import write_got10k


@pytest.fixture(scope="module")
def sampler_doc(training_fixtures_dir):
    return json.loads((training_fixtures_dir / "sampler.json").read_text())


def _ranges(length, ranges):
    mask = np.zeros(length, dtype=bool)
    for a, b in ranges:
        mask[a:b] = True
    return mask


@pytest.fixture(scope="module")
def fixture_datasets(sampler_doc, tmp_path_factory):
    out = {}
    for name, seqs in sampler_doc["datasets"].items():
        root = tmp_path_factory.mktemp(name)
        for s in seqs:
            n = s["length"]
            f = np.arange(n)
            zero_w = _ranges(n, s["zero_width_ranges"])
            boxes = np.stack([40 + f % 20, 30 + f % 7, np.where(zero_w, 0, 40), np.full(n, 30)], axis=1)
            folder = root / s["name"]
            folder.mkdir()
            (folder / "groundtruth.txt").write_text("".join(",".join(str(int(v)) for v in b) + "\n" for b in boxes))
            absent = _ranges(n, s["absent_ranges"])
            (folder / "absence.label").write_text("".join(f"{int(v)}\n" for v in absent))
            cover0 = _ranges(n, s["cover0_ranges"])
            (folder / "cover.label").write_text("".join(f"{0 if c else 1 + i % 8}\n" for i, c in enumerate(cover0)))
        (root / "list.txt").write_text("".join(s["name"] + "\n" for s in seqs))
        out[name] = Got10k(FileStore(root), name="GOT10K")
    return out


def test_visibility_matches_reference_dataset_class(sampler_doc, fixture_datasets):
    for name, seqs in sampler_doc["datasets"].items():
        ds = fixture_datasets[name]
        for i, s in enumerate(seqs):
            visible = ds.sequence_info(i).visible
            assert "".join("1" if v else "0" for v in visible) == s["visible"], s["name"]
            assert int(visible.sum()) == s["num_visible"]


@pytest.mark.parametrize(
    "scenario", ["frame_stage1", "frame_stage2", "frame_edge_retries", "frame_stage1_with_processing"]
)
def test_frame_sampler_matches_reference(sampler_doc, fixture_datasets, scenario):
    sc = sampler_doc["scenarios"][scenario]
    ds = fixture_datasets[sc["dataset"].split()[0]]
    rng = SampleRng.from_seed(sc["seed"])
    processing = None
    if "with_processing" in scenario:
        processing = FrameProcessing(CropFamily(2.0, 112, 0.0, 0.0), CropFamily(4.0, 224, 3.5, 0.5))
        image = np.random.RandomState(0).randint(0, 256, (120, 160, 3)).astype(np.uint8)
    for k, item in enumerate(sc["items"]):
        attempts = 0
        while True:
            attempts += 1
            choice = sample_frame_ids(
                [ds], [1.0], rng.py, num_templates=sc["num_template_frames"],
                num_search=sc["num_search_frames"], max_gap=sc["max_gap"],
            )
            if processing is None:
                break
            boxes = ds.get_boxes(choice.seq_id, choice.template_ids + choice.search_ids)
            result, _ = processing([image] * 5, boxes[:5], [image], boxes[5:], rng)
            if result is not None:
                break
        got = (choice.seq_id, choice.template_ids, choice.search_ids, attempts)
        want = (item["seq_id"], item["template_frame_ids"], item["search_frame_ids"], item["attempts"])
        assert got == want, f"{scenario} item {k}"
        if "frame_files_requested" in item:
            keys = [ds.frame_key(choice.seq_id, f).split("/")[-1] for f in choice.template_ids + choice.search_ids]
            assert keys == item["frame_files_requested"]


def test_sequence_sampler_v3_matches_reference(sampler_doc, fixture_datasets):
    sc = sampler_doc["scenarios"]["sequence_v3_stage3"]
    ds = fixture_datasets[sc["dataset"]]
    rng = random.Random(sc["seed"])
    for k, item in enumerate(sc["items"]):
        choice = sample_clip_ids(
            [ds], [1.0], rng, num_templates=sc["num_template_frames"], num_search=sc["num_search_frames"],
            max_gap=sc["max_gap"], interval_prob=sc["prob"], max_interval=sc["max_interval"],
        )
        assert (choice.seq_id, choice.template_ids, choice.search_ids) == (
            item["seq_id"], item["template_frame_ids"], item["search_frame_ids"]), f"item {k}"


def test_visible_window_helper_rules(sampler_doc):
    """Every recorded call of the reference helper: clamping of the window and None on an empty window."""
    for sc in sampler_doc["scenarios"].values():
        for item in sc["items"]:
            seq = next(s for d in sampler_doc["datasets"].values() for s in d if s["name"] == item["seq_name"])
            visible = np.array([c == "1" for c in seq["visible"]])
            for num, lo, hi, result in item["sample_visible_ids_calls"]:
                rng = random.Random(0)
                out = sample_visible_ids(visible, rng, num, lo, hi)
                if result is None:
                    assert out is None and rng.getstate() == random.Random(0).getstate()  # no draw
                else:
                    window = [i for i in range(max(lo, 0), min(hi, len(visible))) if visible[i]]
                    assert len(out) == num and set(out) <= set(window) and set(result) <= set(window)


# ------------------------------------------------------------------ bounded retries (deliberate deviation)
def _corrupt_all_frames(root):
    for jpg in root.rglob("*.jpg"):
        jpg.write_bytes(b"not a jpeg")


def test_unreadable_frames_stop_with_sample_error(tmp_path, caplog):
    root = tmp_path / "got"
    write_got10k(root, num_sequences=1, num_frames=25)
    _corrupt_all_frames(root)
    ds = Got10k(FileStore(root), name="GOT10K_vottrain")
    processing = FrameProcessing(CropFamily(2.0, 32, 0.0, 0.0), CropFamily(4.0, 64, 0.0, 0.0))
    sampler = FrameSampleDataset([ds], [1.0], 4, processing, num_templates=5, max_gap=300, seed=0, retry_limit=5)
    with caplog.at_level(logging.WARNING, logger="fartrack.data.sampler"):
        with pytest.raises(SampleError) as err:
            sampler[0]
    msg = str(err.value)
    assert "5 consecutive unusable samples" in msg and "GOT10K_vottrain" in msg
    assert "GOT-10k_Train_000001" in msg and "template frames" in msg and ".jpg" in msg
    skipped = [r for r in caplog.records if "skipping sample" in r.getMessage()]
    assert len(skipped) == 5 and "corrupt" in skipped[0].getMessage()


def test_one_corrupt_frame_is_skipped_and_reported(tmp_path, caplog):
    root = tmp_path / "got"
    write_got10k(root, num_sequences=1, num_frames=12)
    bad = root / "GOT-10k_Train_000001" / "00000004.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    ds = Got10k(FileStore(root), name="GOT10K_vottrain")
    clips = ClipSampleDataset([ds], [1.0], 30, num_templates=2, num_search=3, max_gap=5, seed=1, retry_limit=50)
    with caplog.at_level(logging.WARNING, logger="fartrack.data.sampler"):
        items = [clips[i] for i in range(30)]
    assert all(3 not in it["template_ids"] + it["search_ids"] for it in items)
    messages = [r.getMessage() for r in caplog.records]
    assert messages and all(str(bad) in m for m in messages)


def test_clip_items_follow_v3_rules(tmp_path):
    root = tmp_path / "got"
    write_got10k(root, num_sequences=2, num_frames=50, absent={0: range(30, 50), 1: [20, 21]})
    ds = Got10k(FileStore(root), name="G")
    clips = ClipSampleDataset([ds], [1.0], 12, num_templates=3, num_search=6, max_gap=10, seed=2)
    for i in range(12):
        it = clips[i]
        visible = ds.sequence_info(ds.sequences.index(it["seq_name"])).visible
        t, s = it["template_ids"], it["search_ids"]
        assert t == sorted(t) and all(visible[f] for f in t) and max(t) < 50 - 6
        assert s[0] >= t[-1] and s[0] < t[-1] + 10
        visible_run = [f for f in s if f != 49]
        assert all(visible[f] for f in visible_run) and visible_run == sorted(visible_run)
        assert len(s) == 6 and all(b >= a for a, b in zip(s, s[1:]))
        assert it["search_annos"].dtype == np.float64 and it["search_annos"].shape == (6, 4)
        assert it["template_images"][0].dtype == np.uint8 and it["template_images"][0].shape == (72, 96, 3)
        assert np.array_equal(it["search_visible"], visible[s])


def test_random_interval_mode_rule(tmp_path):
    """INTERVAL_PROB > 0 (our definition; the reference mode is unused): each search frame is a visible frame
    at most MAX_INTERVAL after the previous one; at the end of the sequence the last frame repeats (v3 padding)."""
    root = tmp_path / "got"
    write_got10k(root, num_sequences=1, num_frames=60, absent={0: [30, 31, 33]})
    ds = Got10k(FileStore(root), name="G")
    visible = ds.sequence_info(0).visible
    rng = random.Random(0)
    for _ in range(20):
        c = sample_clip_ids([ds], [1.0], rng, num_templates=2, num_search=5, max_gap=20, interval_prob=1.0,
                            max_interval=3)
        s = c.search_ids
        assert all(visible[f] for f in s) and all(0 < b - a <= 3 or a == b == 59 for a, b in zip(s, s[1:])), s


def test_invalid_crops_stop_with_sample_error_naming_the_sample(tmp_path):
    root = tmp_path / "got"
    write_got10k(root, num_sequences=1, num_frames=20)
    (root / "GOT-10k_Train_000001" / "groundtruth.txt").write_text("900,900,10,10\n" * 20)  # outside the frames
    ds = Got10k(FileStore(root), name="GOT10K_vottrain")
    processing = FrameProcessing(CropFamily(2.0, 32, 0.0, 0.0), CropFamily(4.0, 64, 0.0, 0.0))
    sampler = FrameSampleDataset([ds], [1.0], 2, processing, num_templates=5, max_gap=300, seed=0, retry_limit=3)
    with pytest.raises(SampleError) as err:
        sampler[(4, 1)]
    msg = str(err.value)
    assert msg.startswith("3 consecutive unusable samples") and "sample 1 of epoch 4" in msg
    assert "GOT-10k_Train_000001" in msg and "template frames [" in msg and "padding" in msg
