"""Initial weights of a training run (stage chaining, TRAINING_AND_EVAL.md §4) and depth variants.

* ``MODEL.PRETRAIN_PTH`` (a previous stage's checkpoint, relative to ``--save_dir`` or absolute) wins when
  set: its ``net`` is loaded with the strict key check; a dense stage-1/2 file is converted for a sparse
  model (``masknorm`` copies of ``norm1``/``norm2``). The MAE file is then not read (the reference loads it
  first and overwrites every tensor with the previous stage anyway).
* Otherwise ``MODEL.PRETRAIN_FILE`` (MAE ViT-Tiny, a file name in the settings' ``pretrained_networks``
  folder, or an absolute path) initialises the encoder: the file's ``model`` weights (``module.model.`` /
  ``module.`` prefixes stripped) go to ``backbone.*``; the 14x14 patch position embedding is resized
  bicubically to the template grid (``pos_embed_z0``, ``pos_embed_z1``) and the search grid (``pos_embed_x``);
  MAE blocks ``12 - EXTENSION ..11`` (9, 10, 11) are copied into ``extension.0..``. The embeddings, head bias
  and ``identity`` keep their random initialisation.
* Neither set: the random initialisation stays.

:func:`check_pretrained_paths` resolves and checks these files before any training work starts.
:func:`extract_variant` / :func:`load_variant_network` make and load a depth-truncated (nano/pico) checkpoint.
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from fartrack.models.checkpoint import (
    CheckpointError,
    _unwrap_model,
    dense_to_sparse_state_dict,
    extract_state_dict,
    load_model_weights,
    read_checkpoint,
)
from fartrack.models.encoder import FARTrackNet, NetConfig

__all__ = [
    "resolve_pretrain_pth",
    "resolve_pretrain_file",
    "check_pretrained_paths",
    "load_pretrained",
    "mae_state_dict",
    "state_dict_depth",
    "variant_state_dict",
    "variant_net_config",
    "load_variant_network",
]

_MAE_PREFIXES = ("module.model.", "module.", "model.", "backbone.")


def resolve_pretrain_pth(cfg: Mapping[str, Any], save_dir: str | os.PathLike) -> Optional[Path]:
    """``MODEL.PRETRAIN_PTH`` as a path (relative to ``save_dir`` unless absolute), or None when unset."""
    name = str(cfg["MODEL"]["PRETRAIN_PTH"]).strip()
    if not name:
        return None
    path = Path(os.path.expanduser(name))
    return path if path.is_absolute() else Path(save_dir) / path


def resolve_pretrain_file(cfg: Mapping[str, Any], settings: Any = None) -> Optional[Path]:
    """``MODEL.PRETRAIN_FILE`` as a path (in ``settings.pretrained_networks`` unless absolute), or None."""
    name = str(cfg["MODEL"]["PRETRAIN_FILE"]).strip()
    if not name:
        return None
    path = Path(os.path.expanduser(name))
    if path.is_absolute():
        return path
    if settings is None:
        from fartrack.config import load_train_settings

        settings = load_train_settings()
    return Path(getattr(settings, "pretrained_networks")) / path


def check_pretrained_paths(cfg: Mapping[str, Any], save_dir: str | os.PathLike, settings: Any = None) -> None:
    """Raise ``FileNotFoundError`` naming the key and the path if the file the run would load is missing.

    Only the file actually used is checked: ``MODEL.PRETRAIN_PTH`` when set, else ``MODEL.PRETRAIN_FILE``.
    """
    pth = resolve_pretrain_pth(cfg, save_dir)
    if pth is not None:
        if not pth.is_file():
            raise FileNotFoundError(
                f"MODEL.PRETRAIN_PTH: previous-stage checkpoint {pth} does not exist (the value "
                f"{cfg['MODEL']['PRETRAIN_PTH']!r} is relative to --save_dir {save_dir} unless absolute; train the "
                "previous stage first or fix the path)"
            )
        return
    mae = resolve_pretrain_file(cfg, settings)
    if mae is not None and not mae.is_file():
        raise FileNotFoundError(
            f"MODEL.PRETRAIN_FILE: MAE weights {mae} do not exist (download them into the pretrained_networks "
            "folder of lib/train/admin/local.py, see pretrained_models/README.md, or set MODEL.PRETRAIN_FILE: '')"
        )


def _resize_grid(pos: torch.Tensor, size: int) -> torch.Tensor:
    """(1, g*g, C) position embedding -> (1, size*size, C) by bicubic interpolation (align_corners False)."""
    n, dim = pos.shape[1], pos.shape[2]
    grid = int(round(math.sqrt(n)))
    if grid * grid != n:
        raise ValueError(f"MAE position embedding has {n} patch entries, not a square grid")
    image = pos.reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    if grid != size:
        image = F.interpolate(image, size=(size, size), mode="bicubic", align_corners=False)
    return image.permute(0, 2, 3, 1).reshape(1, size * size, dim)


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MAE keys without their wrapper prefix (``module.model.``, ``module.``, ``model.``, ``backbone.``)."""
    clean: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in _MAE_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        clean[key] = value
    return clean


def _is_mae_encoder_key(key: str) -> bool:
    return key.startswith(("blocks.", "patch_embed.", "norm.")) or key in ("cls_token", "pos_embed")


def mae_state_dict(mae: Mapping[str, torch.Tensor], net: FARTrackNet) -> "OrderedDict[str, torch.Tensor]":
    """Map MAE ViT weights onto ``net``'s keys (partial: only what MAE provides).

    Blocks, patch embedding and final norm are renamed under ``backbone.``; ``pos_embed`` (with or without its
    class-token row) is resized to the template and search grids; extension block j copies MAE block
    ``12 - EXTENSION + j``. Keys of ``net`` that MAE does not provide are absent from the result.
    """
    cfg = net.cfg
    clean = _strip_prefixes(mae)
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    expected = net.state_dict()
    for key, value in clean.items():
        if _is_mae_encoder_key(key) and key != "pos_embed":
            target = f"backbone.{key}"
            if target in expected:
                out[target] = value
    if "pos_embed" in clean:
        pos = clean["pos_embed"]
        patches = pos[:, 1:] if int(round(math.sqrt(pos.shape[1] - 1))) ** 2 == pos.shape[1] - 1 else pos
        if expected["backbone.pos_embed"].shape == pos.shape:
            out["backbone.pos_embed"] = pos
        z = _resize_grid(patches, cfg.template_size // cfg.patch_size)
        out["backbone.pos_embed_z0"] = z
        out["backbone.pos_embed_z1"] = z.clone()
        if "backbone.pos_embed_z" in expected:
            out["backbone.pos_embed_z"] = z.clone()
        out["backbone.pos_embed_x"] = _resize_grid(patches, cfg.search_grid)
    first_copied = cfg.num_blocks - cfg.extension
    pattern = re.compile(r"^blocks\.(\d+)\.(.+)$")
    for key, value in clean.items():
        match = pattern.match(key)
        if match and int(match[1]) >= first_copied and cfg.extension > 0:
            j = int(match[1]) - first_copied
            target = f"backbone.extension.{j}.{match[2]}"
            if target in expected:
                out[target] = value.clone()
    if net.cfg.sparse:
        out = dense_to_sparse_state_dict(out)
    return out


def load_pretrained(
    net: torch.nn.Module, cfg: Mapping[str, Any], save_dir: str | os.PathLike, *, settings: Any = None
) -> dict:
    """Initialise ``net`` for training from ``MODEL.PRETRAIN_PTH`` or ``MODEL.PRETRAIN_FILE`` (module doc).

    Returns ``{"source": "previous_stage" | "mae" | "none", "path": str | None, "loaded": int,
    "missing": list[str], "ignored": list[str], "notes": list[str]}``. Raises ``FileNotFoundError`` naming
    the key and path for a missing file, :class:`CheckpointError` for a file that does not fit.
    """
    model = _unwrap_model(net)
    check_pretrained_paths(cfg, save_dir, settings)
    pth = resolve_pretrain_pth(cfg, save_dir)
    if pth is not None:
        notes = load_model_weights(model, pth)
        return {"source": "previous_stage", "path": str(pth), "loaded": len(model.state_dict()), "missing": [],
                "ignored": [], "notes": notes}
    mae_path = resolve_pretrain_file(cfg, settings)
    if mae_path is None:
        return {"source": "none", "path": None, "loaded": 0, "missing": [], "ignored": [], "notes": []}
    ckpt = read_checkpoint(mae_path)
    raw = extract_state_dict(ckpt, mae_path)
    mapped = mae_state_dict(raw, model)
    if not mapped:
        raise CheckpointError(mae_path, "no MAE ViT weights found (expected blocks.*, patch_embed.*, pos_embed)")
    expected = model.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}" for k, v in mapped.items()
           if v.shape != expected[k].shape]
    if bad:
        raise CheckpointError(mae_path, "MAE weights do not fit the model: " + "; ".join(bad[:10]))
    full = OrderedDict((k, mapped.get(k, v)) for k, v in expected.items())
    model.load_state_dict(full, strict=True)
    ignored = [k for k in _strip_prefixes(raw) if not _is_mae_encoder_key(k)]
    return {
        "source": "mae",
        "path": str(mae_path),
        "loaded": len(mapped),
        "missing": [k for k in expected if k not in mapped],
        "ignored": ignored,
        "notes": [],
    }


# ---------------------------------------------------------------------------------------------------------------
# Depth variants (nano / pico) of a distilled checkpoint
# ---------------------------------------------------------------------------------------------------------------

_LAYER_KEY = re.compile(r"^backbone\.(blocks|extension)\.(\d+)\.(.+)$")


def state_dict_depth(state_dict: Mapping[str, torch.Tensor], num_blocks: int = 12) -> int:
    """Number of layers (blocks + extension) a state dict holds."""
    indices = set()
    for key in state_dict:
        match = _LAYER_KEY.match(key)
        if match:
            indices.add(int(match[2]) + (num_blocks if match[1] == "extension" else 0))
    return len(indices)


def variant_state_dict(
    state_dict: Mapping[str, torch.Tensor], layers: Sequence[int], num_blocks: int = 12
) -> "OrderedDict[str, torch.Tensor]":
    """Keep the 1-based ``layers`` (in execution order: blocks 1..num_blocks, then extension) and renumber
    them as a prefix: the i-th kept layer becomes ``blocks.i-1`` (up to ``num_blocks``), then ``extension.*``.

    Non-layer tensors (embeddings, final norm, head bias, identity) are kept unchanged.
    """
    layer_keys: dict[int, list[tuple[str, torch.Tensor]]] = {}
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state_dict.items():
        match = _LAYER_KEY.match(key)
        if match is None:
            out[key] = value
            continue
        index = int(match[2]) + (num_blocks if match[1] == "extension" else 0) + 1
        layer_keys.setdefault(index, []).append((match[3], value))
    available = sorted(layer_keys)
    missing = [l for l in layers if l not in layer_keys]
    if missing:
        raise ValueError(f"layers {missing} are not in the checkpoint (it has layers {available[0]}..{available[-1]})")
    for new_index, old in enumerate(layers):
        group, local = ("blocks", new_index) if new_index < num_blocks else ("extension", new_index - num_blocks)
        for leaf, value in layer_keys[old]:
            out[f"backbone.{group}.{local}.{leaf}"] = value
    return out


def variant_net_config(cfg: NetConfig, layers: int, num_blocks: int = 12) -> NetConfig:
    """Architecture of a ``layers``-deep variant: ``min(layers, 12)`` blocks and the rest as extension."""
    from dataclasses import replace

    return replace(cfg, num_blocks=min(layers, num_blocks), extension=max(0, layers - num_blocks), exits=())


def load_variant_network(
    cfg: Mapping[str, Any], checkpoint: str | os.PathLike, device: str | torch.device = "cpu"
) -> FARTrackNet:
    """Build the network of a variant checkpoint written by ``tracking/extract_variant.py`` and load it
    strictly (eval mode). The depth comes from the file's ``layers`` entry."""
    from fartrack.models.build import net_config_from

    ckpt = read_checkpoint(checkpoint)
    layers = ckpt.get("layers") if isinstance(ckpt, Mapping) else None
    if not isinstance(layers, int) or layers < 1:
        raise CheckpointError(checkpoint, "no integer 'layers' entry: not a variant written by extract_variant.py")
    net = FARTrackNet(variant_net_config(net_config_from(cfg), layers))
    load_model_weights(net, checkpoint, ckpt=ckpt)
    return net.to(device).eval()
