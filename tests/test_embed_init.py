"""MODEL.EMBED_INIT: the sine-cosine start for networks trained from scratch (no MAE weights)."""

import torch

from fartrack.config import load_config
from fartrack.config.loader import merge_overrides
from fartrack.models.build import build_network, sincos_grid_embedding


def _cfg(embed_init: str):
    cfg = load_config("fartrack", "synthetic_pico_cpu")
    return merge_overrides(cfg, {"MODEL.EMBED_INIT": embed_init})


def test_grid_codes_are_row_major_and_separate_rows_from_columns():
    codes = sincos_grid_embedding(4, 16)[0]
    assert codes.shape == (16, 16)
    # token (r, c) = 4r + c; the first half codes the row, the second the column
    assert torch.allclose(codes[1, :8], codes[0, :8]) and not torch.allclose(codes[1, 8:], codes[0, 8:])
    assert torch.allclose(codes[4, 8:], codes[0, 8:]) and not torch.allclose(codes[4, :8], codes[0, :8])
    assert torch.allclose(codes[0, :4], torch.zeros(4)) and torch.allclose(codes[0, 4:8], torch.ones(4))


def test_sincos_start_makes_neighbouring_bins_and_patches_alike():
    torch.manual_seed(0)
    net = build_network(_cfg("sincos"))
    bins = net.vocab.num_coordinate_bins
    rows = torch.nn.functional.normalize(net.backbone.word_embeddings.weight[:bins].detach(), dim=1)
    similarity = rows @ rows.T
    middle = bins // 2
    near, mid, far = (float(similarity[middle, middle + k]) for k in (1, 50, 150))
    assert near > 0.99 and near > mid > far and far < 0.85
    grid = net.cfg.search_grid
    assert torch.equal(net.backbone.pos_embed_x, sincos_grid_embedding(grid, net.cfg.embed_dim))
    # command rows and the padding row keep the reference init
    assert torch.count_nonzero(net.backbone.word_embeddings.weight[net.vocab.padding_id]) == 0


def test_default_start_is_the_reference_random_init():
    torch.manual_seed(0)
    net = build_network(_cfg("trunc_normal"))
    assert 0.015 < float(net.backbone.pos_embed_x.detach().std()) < 0.025  # trunc_normal(std=0.02)
    rows = torch.nn.functional.normalize(net.backbone.word_embeddings.weight[:600].detach(), dim=1)
    assert (rows[300] @ rows[301]).abs() < 0.5
