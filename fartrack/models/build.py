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
    init_weights(net)
    return net


@torch.no_grad()
def init_weights(net: FARTrackNet) -> None:
    """Random initialisation as in the reference: truncated-normal linears/embeddings, unit norms."""
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
