"""The training loader: batch layout of the contract, determinism, the distributed index split, clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fartrack.config import load_config
from fartrack.data.image_io import DatasetError
from fartrack.data.loader import build_train_loader
from train_layouts import write_coco, write_got10k, write_lasot, write_settings, write_split_files

TINY = {
    "DATA.TEMPLATE.SIZE": 32,
    "DATA.SEARCH.SIZE": 64,
    "DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain", "LASOT", "COCO17"],
    "DATA.TRAIN.DATASETS_RATIO": [1, 1, 1],
    "DATA.TRAIN.SAMPLE_PER_EPOCH": 8,
    "DATA.VAL.DATASETS_NAME": ["GOT10K_votval"],
    "DATA.VAL.SAMPLE_PER_EPOCH": 4,
    "TRAIN.BATCH_SIZE": 4,
    "TRAIN.NUM_WORKER": 0,
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loader")
    data = tmp / "data"
    write_got10k(data / "got10k" / "train", 3, 24)
    write_lasot(data / "lasot", ("cat",), 2, 24)
    write_coco(data / "coco", 2)
    write_split_files(tmp / "repo" / "lib" / "train" / "data_specs", got10k_train=[0, 1], got10k_val=[2],
                      lasot_train=["cat-1", "cat-2"])
    return write_settings(tmp / "repo", data)


def _cfg(script="fartrack", config="fartrack_tiny_224_full", **extra):
    return load_config(script, config, overrides={**TINY, **extra})


def _batches(loader):
    return list(loader)


def test_frame_batch_layout(settings):
    loader = build_train_loader(_cfg(), settings, seed=1)
    assert len(loader) == 2 and loader.batch_size == 4
    batch = next(iter(loader))
    assert batch["template_images"].shape == (4, 5, 3, 32, 32) and batch["template_images"].dtype == torch.float32
    assert batch["template_anno"].shape == (4, 5, 4) and batch["search_anno"].shape == (4, 4)
    assert batch["search_images"].shape == (4, 3, 64, 64)
    assert batch["valid"].dtype == torch.bool and batch["valid"].all()
    assert len(batch["dataset"]) == len(batch["seq_name"]) == 4
    assert set(batch["dataset"]) <= {"GOT10K_vottrain", "LASOT", "COCO17"}
    # unjittered templates: the target is centred ((out - 1) / 2, mirrored by the crop flip) and its size is
    # about half the crop side (factor 2)
    anno = batch["template_anno"]
    centre = anno[..., :2] + anno[..., 2:] / 2
    assert torch.allclose(centre, torch.full_like(centre, 0.5), atol=0.5 / 32 + 1e-6)
    assert torch.allclose(anno[..., 2:].prod(-1).sqrt(), torch.full(anno.shape[:2], 0.5), atol=0.02)
    assert torch.isfinite(batch["search_images"]).all()


def test_samples_depend_only_on_seed_epoch_and_index(settings):
    a = _batches(build_train_loader(_cfg(), settings, seed=5, epoch=2))
    b = _batches(build_train_loader(_cfg(), settings, seed=5, epoch=2))
    assert all(torch.equal(x["search_images"], y["search_images"]) for x, y in zip(a, b))
    loader = build_train_loader(_cfg(), settings, seed=5, epoch=2)
    loader.dataset.set_epoch(3)
    c = _batches(loader)
    assert not torch.equal(a[0]["search_images"], c[0]["search_images"])
    d = _batches(build_train_loader(_cfg(), settings, seed=6, epoch=2))
    assert not torch.equal(a[0]["search_images"], d[0]["search_images"])


def test_two_ranks_see_exactly_the_samples_of_one_rank_with_twice_the_batch(settings):
    single = _batches(build_train_loader(_cfg(), settings, seed=3, batch_size=4))
    ranks = [_batches(build_train_loader(_cfg(), settings, seed=3, batch_size=2, rank=r, world_size=2)) for r in (0, 1)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 2
    for k, batch in enumerate(single):
        for r in (0, 1):
            for key in ("template_images", "template_anno", "search_images", "search_anno"):
                assert torch.equal(batch[key][r::2], ranks[r][k][key]), (k, r, key)
            assert batch["seq_name"][r::2] == ranks[r][k]["seq_name"]


def test_worker_processes_give_the_same_samples_in_every_epoch(settings):
    serial = build_train_loader(_cfg(), settings, seed=9, num_workers=0)
    parallel = build_train_loader(_cfg(), settings, seed=9, num_workers=1)
    for epoch in (1, 2):  # the workers persist across epochs; the epoch travels with the indices
        serial.sampler.set_epoch(epoch)
        parallel.sampler.set_epoch(epoch)
        assert serial.dataset.epoch == parallel.dataset.epoch == epoch
        for x, y in zip(serial, parallel):
            assert torch.equal(x["template_images"], y["template_images"]) and x["seq_name"] == y["seq_name"]


def test_validation_split_uses_val_datasets_without_colour_jitter(settings):
    loader = build_train_loader(_cfg(), settings, split="val", seed=0)
    assert len(loader) == 1
    batch = next(iter(loader))
    assert set(batch["dataset"]) == {"GOT10K_votval"} and set(batch["seq_name"]) == {"GOT-10k_Train_000003"}
    # val mode: pixels are (uint8 / 255 - mean) / std exactly, so they sit on the 256-level grid
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    levels = (batch["search_images"][0] * std + mean) * 255
    assert torch.allclose(levels, levels.round(), atol=1e-3)


def test_clip_loader_per_rank_scope(settings):
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full", overrides={
        "DATA.SEARCH.NUMBER": 6, "DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain", "LASOT"],
        "DATA.TRAIN.DATASETS_RATIO": [1, 1], "DATA.TRAIN.SAMPLE_PER_EPOCH": 4, "TRAIN.BATCH_SIZE": 2,
        "TRAIN.NUM_WORKER": 0,
    })
    assert cfg.DATA.TRAIN.SAMPLE_SCOPE == "per_rank"
    loaders = [build_train_loader(cfg, settings, stage="clip", rank=r, world_size=2, seed=4) for r in (0, 1)]
    assert [len(l) for l in loaders] == [2, 2]  # 4 clips per rank and epoch
    batches = [list(l) for l in loaders]
    clip = batches[0][0][0]
    assert isinstance(batches[0][0], list) and len(batches[0][0]) == 2
    assert len(clip["template_images"]) == 5 and len(clip["search_images"]) == 6
    assert clip["template_annos"].shape == (5, 4) and clip["search_annos"].dtype == np.float64
    assert clip["search_images"][0].dtype == np.uint8 and clip["search_images"][0].ndim == 3
    ids = {tuple(c["search_ids"]) + (c["seq_name"],) for l in batches for b in l for c in b}
    assert len(ids) > 1  # the ranks do not repeat each other's clips


def test_config_errors_are_named(settings, tmp_path):
    with pytest.raises(ValueError, match="DATASETS_RATIO has 2"):
        build_train_loader(_cfg(**{"DATA.TRAIN.DATASETS_RATIO": [1, 1]}), settings)
    with pytest.raises(ValueError, match="SAMPLE_PER_EPOCH = 8 is smaller than one global batch"):
        build_train_loader(_cfg(), settings, batch_size=4, world_size=4)
    other = write_settings(tmp_path / "repo", tmp_path / "empty")
    with pytest.raises(DatasetError, match="got10k_dir"):
        build_train_loader(_cfg(), other)
