"""Initial weights per stage: MAE ViT init, previous-stage checkpoints (with dense -> sparse), path checks.

Fake MAE files are written in the real layout (``torch.save({"model": {...}})`` with a ``module.model.``
prefix and MAE decoder keys that must be ignored).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from fartrack.config import load_config
from fartrack.models.build import build_network
from fartrack.models.checkpoint import CheckpointError, save_checkpoint
from fartrack.models.pretrained import check_pretrained_paths, load_pretrained

SMALL = {"MODEL.EMBED_DIM": 32, "MODEL.NUM_HEADS": 2, "DATA.TEMPLATE.SIZE": 112, "DATA.SEARCH.SIZE": 224}


def cfg_for(script: str, **extra):
    config = {"fartrack": "fartrack_tiny_224_full", "fartrack_distill": "fartrack_distill_224_full",
              "fartrack_sparse": "fartrack_sparse_224_full"}[script]
    overrides = dict(SMALL)
    overrides.update(extra)
    return load_config(script, config, overrides=overrides)


def write_mae(path, dim: int = 32, depth: int = 12, seed: int = 0, grid: int = 14) -> dict:
    """A fake MAE ViT checkpoint (encoder + decoder keys, ``module.model.`` prefix); returns the clean dict."""
    g = torch.Generator().manual_seed(seed)
    hidden = dim * 4
    clean = {
        "cls_token": torch.randn(1, 1, dim, generator=g),
        "pos_embed": torch.randn(1, 1 + grid * grid, dim, generator=g),
        "patch_embed.proj.weight": torch.randn(dim, 3, 16, 16, generator=g),
        "patch_embed.proj.bias": torch.randn(dim, generator=g),
        "norm.weight": torch.randn(dim, generator=g),
        "norm.bias": torch.randn(dim, generator=g),
        "mask_token": torch.randn(1, 1, 16, generator=g),
        "decoder_embed.weight": torch.randn(16, dim, generator=g),
    }
    shapes = {
        "norm1.weight": (dim,), "norm1.bias": (dim,), "attn.qkv.weight": (3 * dim, dim), "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim), "attn.proj.bias": (dim,), "norm2.weight": (dim,), "norm2.bias": (dim,),
        "mlp.fc1.weight": (hidden, dim), "mlp.fc1.bias": (hidden,), "mlp.fc2.weight": (dim, hidden),
        "mlp.fc2.bias": (dim,),
    }
    for i in range(depth):
        for leaf, shape in shapes.items():
            clean[f"blocks.{i}.{leaf}"] = torch.randn(*shape, generator=g)
    torch.save({"model": {f"module.model.{k}": v for k, v in clean.items()}, "epoch": 400}, path)
    return clean


def test_mae_init_blocks_extension_and_position_embeddings(tmp_path):
    clean = write_mae(tmp_path / "mae.pth.tar")
    cfg = cfg_for("fartrack", **{"MODEL.PRETRAIN_FILE": "mae.pth.tar"})
    torch.manual_seed(0)
    net = build_network(cfg)
    identity_before = net.identity.detach().clone()
    words_before = net.backbone.word_embeddings.weight.detach().clone()
    report = load_pretrained(net, cfg, tmp_path / "run", settings=SimpleNamespace(pretrained_networks=str(tmp_path)))
    assert report["source"] == "mae" and report["path"] == str(tmp_path / "mae.pth.tar")
    assert set(report["ignored"]) == {"mask_token", "decoder_embed.weight"}
    sd = net.state_dict()
    for i in range(12):
        assert torch.equal(sd[f"backbone.blocks.{i}.attn.qkv.weight"], clean[f"blocks.{i}.attn.qkv.weight"])
    for j, source in enumerate((9, 10, 11)):
        for leaf in ("attn.qkv.weight", "mlp.fc2.bias", "norm1.weight"):
            assert torch.equal(sd[f"backbone.extension.{j}.{leaf}"], clean[f"blocks.{source}.{leaf}"])
    assert torch.equal(sd["backbone.patch_embed.proj.weight"], clean["patch_embed.proj.weight"])
    assert torch.equal(sd["backbone.norm.weight"], clean["norm.weight"])
    patches = clean["pos_embed"][:, 1:]
    assert torch.equal(sd["backbone.pos_embed_x"], patches)  # 14x14 search grid: copied as is
    grid = patches.reshape(1, 14, 14, 32).permute(0, 3, 1, 2)
    z = F.interpolate(grid, size=(7, 7), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, 49, 32)
    torch.testing.assert_close(sd["backbone.pos_embed_z0"], z)
    assert torch.equal(net.identity, identity_before)  # not in MAE: random init kept
    assert torch.equal(net.backbone.word_embeddings.weight, words_before)


def test_mae_init_of_a_sparse_model_fills_masknorms(tmp_path):
    clean = write_mae(tmp_path / "mae.pth.tar")
    cfg = cfg_for("fartrack_sparse", **{"MODEL.PRETRAIN_FILE": str(tmp_path / "mae.pth.tar"), "MODEL.PRETRAIN_PTH": ""})
    net = build_network(cfg)
    load_pretrained(net, cfg, tmp_path)  # absolute PRETRAIN_FILE: no settings needed
    assert torch.equal(net.backbone.blocks[3].masknorm1.norm.weight, clean["blocks.3.norm1.weight"])
    assert torch.equal(net.backbone.extension[2].masknorm2.norm.bias, clean["blocks.11.norm2.bias"])


def test_mae_file_that_does_not_fit_names_the_file(tmp_path):
    write_mae(tmp_path / "mae.pth.tar", dim=48)
    cfg = cfg_for("fartrack", **{"MODEL.PRETRAIN_FILE": str(tmp_path / "mae.pth.tar")})
    with pytest.raises(CheckpointError, match="mae.pth.tar"):
        load_pretrained(build_network(cfg), cfg, tmp_path)


def test_previous_stage_relative_to_save_dir_and_dense_to_sparse(tmp_path):
    stage1_cfg = cfg_for("fartrack")
    torch.manual_seed(1)
    stage1 = build_network(stage1_cfg)
    rel = "checkpoints/train/fartrack/tiny/FARTrack_ep0005.pth.tar"
    save_checkpoint(tmp_path / rel, stage1, net_type="FARTrack", epoch=5)

    distill_cfg = cfg_for("fartrack_distill", **{"MODEL.PRETRAIN_PTH": rel, "MODEL.PRETRAIN_FILE": "absent.pth"})
    distill = build_network(distill_cfg)
    report = load_pretrained(distill, distill_cfg, tmp_path, settings=SimpleNamespace(pretrained_networks=str(tmp_path)))
    assert report["source"] == "previous_stage"  # the MAE file is not needed when PRETRAIN_PTH is set
    for key, value in stage1.state_dict().items():
        assert torch.equal(distill.state_dict()[key], value), key

    sparse_cfg = cfg_for("fartrack_sparse", **{"MODEL.PRETRAIN_PTH": str(tmp_path / rel)})
    sparse = build_network(sparse_cfg)
    report = load_pretrained(sparse, sparse_cfg, tmp_path / "elsewhere")
    assert any("masknorm" in note for note in report["notes"])
    assert torch.equal(sparse.backbone.blocks[5].masknorm1.norm.weight, stage1.backbone.blocks[5].norm1.weight)
    assert torch.equal(sparse.backbone.blocks[0].attn.qkv.weight, stage1.backbone.blocks[0].attn.qkv.weight)


def test_missing_files_are_reported_before_work(tmp_path):
    settings = SimpleNamespace(pretrained_networks=str(tmp_path / "pretrained"))
    cfg = cfg_for("fartrack_distill", **{"MODEL.PRETRAIN_PTH": "checkpoints/nope.pth.tar"})
    with pytest.raises(FileNotFoundError, match=r"MODEL.PRETRAIN_PTH.*checkpoints/nope.pth.tar"):
        check_pretrained_paths(cfg, tmp_path, settings)
    cfg = cfg_for("fartrack", **{"MODEL.PRETRAIN_FILE": "mae_tiny_distill_400e.pth.tar"})
    with pytest.raises(FileNotFoundError, match=r"MODEL.PRETRAIN_FILE.*pretrained/mae_tiny_distill_400e.pth.tar"):
        check_pretrained_paths(cfg, tmp_path, settings)
    with pytest.raises(FileNotFoundError, match="MODEL.PRETRAIN_FILE"):
        load_pretrained(build_network(cfg), cfg, tmp_path, settings=settings)


def test_no_pretrained_weights_keeps_random_init(tmp_path):
    cfg = cfg_for("fartrack", **{"MODEL.PRETRAIN_FILE": ""})
    net = build_network(cfg)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    check_pretrained_paths(cfg, tmp_path, None)
    assert load_pretrained(net, cfg, tmp_path)["source"] == "none"
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
