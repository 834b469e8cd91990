"""Build networks and trackers from a resolved experiment config, and load checkpoints into them."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import torch

from fartrack.models.encoder import FARTrackNet, NetConfig
from fartrack.models.sparsify import SparsifyConfig


def net_config_from(cfg: Mapping[str, Any]) -> NetConfig:
    """Architecture of the network described by a resolved config (``MODEL``, ``DATA``, ``TRAIN``)."""
    model, data = cfg["MODEL"], cfg["DATA"]
    return NetConfig(
        embed_dim=model["EMBED_DIM"],
        num_heads=model["NUM_HEADS"],
        mlp_ratio=float(model["MLP_RATIO"]),
        patch_size=model["BACKBONE"]["STRIDE"],
        num_blocks=12,
        extension=model["EXTENSION"],
        num_templates=data["TEMPLATE"]["NUMBER"],
        template_size=data["TEMPLATE"]["SIZE"],
        search_size=data["SEARCH"]["SIZE"],
        bins=model["BINS"],
        range=model["RANGE"],
        sparse=bool(model["SPARSE"]["ENABLED"]),
        max_norm=float(model["SPARSE"]["MAX_NORM"]),
        prenum=model["PRENUM"],
        exits=tuple(model["EXITS"]),
        drop_path_rate=float(cfg["TRAIN"]["DROP_PATH_RATE"]),
    )


def sparsify_config_from(cfg: Mapping[str, Any]) -> SparsifyConfig:
    """Keep-mask settings of a resolved config (``MODEL.SPARSE``)."""
    sparse = cfg["MODEL"]["SPARSE"]
    return SparsifyConfig(float(sparse["RETAIN_RATIO"]), sparse["QUERY"], sparse["EXTRA_TERM"])


def build_network(cfg: Mapping[str, Any]) -> FARTrackNet:
    """A randomly initialised :class:`FARTrackNet` for the config (weights come from a checkpoint or training)."""
    net = FARTrackNet(net_config_from(cfg))
    init_weights(net, embed_init=cfg["MODEL"]["EMBED_INIT"])
    return net


def _sincos(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sine-cosine codes (N, dim) of N scalar positions, frequencies 1 .. 1/10000 as in the Transformer."""
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions.reshape(-1, 1).double() * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_grid_embedding(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position codes of a ``grid`` x ``grid`` patch grid, row-major, shape (1, grid**2, dim).

    The first half of the channels encodes the row, the second half the column (as in MAE's encoder).
    """
    if dim % 4:
        raise ValueError(f"sin-cos position codes need an embedding width divisible by 4, got {dim}")
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    return torch.cat([_sincos(rows, dim // 2), _sincos(cols, dim // 2)], dim=1).float().unsqueeze(0)


@torch.no_grad()
def init_weights(net: FARTrackNet, embed_init: str = "trunc_normal") -> None:
    """Random initialisation as in the reference: truncated-normal linears/embeddings, unit norms.

    ``embed_init="sincos"`` starts the template and search position embeddings from 2-D sine-cosine codes
    and the coordinate-bin rows of the tied word embedding from 1-D codes of the bin index (all still
    trained), so that nearby positions and nearby bins start out similar: a network trained from scratch,
    without MAE weights, then learns to localise far sooner.
    """
    for module in net.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)
    backbone = net.backbone
    for tensor in (net.identity, backbone.pos_embed_z0, backbone.pos_embed_x, backbone.position_embeddings.weight):
        torch.nn.init.trunc_normal_(tensor, std=0.02)
    torch.nn.init.kaiming_normal_(backbone.word_embeddings.weight)
    if embed_init == "sincos":
        dim, bins = net.cfg.embed_dim, net.vocab.num_coordinate_bins
        backbone.pos_embed_z0.copy_(sincos_grid_embedding(net.cfg.template_size // net.cfg.patch_size, dim))
        backbone.pos_embed_x.copy_(sincos_grid_embedding(net.cfg.search_grid, dim))
        # bin centres in search-patch units, coded like a grid row and a grid column (matching pos_embed_x)
        grid = net.cfg.search_grid
        centres = ((torch.arange(bins, dtype=torch.float64) + 0.5) / net.cfg.bins - 0.5) * grid - 0.5
        half = _sincos(centres, dim // 2)
        backbone.word_embeddings.weight[:bins] = (torch.cat([half, half], dim=1) * (2.0 / dim) ** 0.5).float()
    elif embed_init != "trunc_normal":
        raise ValueError(f"MODEL.EMBED_INIT must be 'trunc_normal' or 'sincos', got {embed_init!r}")
    backbone.word_embeddings.weight[net.vocab.padding_id].zero_()
    net.renormalize_command_rows()


def build_tracker_network(
    cfg: Mapping[str, Any],
    checkpoint: str | os.PathLike,
    device: str | torch.device = "cpu",
) -> FARTrackNet:
    """Build the network for inference and load ``checkpoint`` with the strict key check (eval mode).

    Only the evaluated checkpoint is read; the previous-stage ``MODEL.PRETRAIN_PTH`` is never touched here.
    A variant written by ``tracking/extract_variant.py`` (an integer ``layers`` entry) is built at its depth.
    """
    from fartrack.models.checkpoint import load_model_weights
    from fartrack.models.safe_load import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    net_cfg = net_config_from(cfg)
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("layers"), int):
        from fartrack.models.pretrained import variant_net_config

        net_cfg = variant_net_config(net_cfg, ckpt["layers"])
    net = FARTrackNet(net_cfg)
    load_model_weights(net, checkpoint, ckpt=ckpt)
    return net.to(device).eval()


def default_device(requested: Optional[str] = None) -> torch.device:
    """``requested`` if given, else CUDA when available, else CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
