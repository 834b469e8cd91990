"""Checking, converting, loading and writing FARTrack checkpoints (file reading: :mod:`fartrack.models.safe_load`).

Two kinds of files are handled:

* **Reference checkpoints** (``<NetClass>_ep%04d.pth.tar`` written by the released reference trainer).
  They are ``torch.save`` zip archives holding a dict with ``epoch, actor_type, net_type, net, net_info,
  constructor, optimizer, stats, settings``. The weights are the ``OrderedDict`` under ``net``; ``stats`` and
  ``settings`` are pickled objects of reference classes (``lib.train.admin.settings.Settings``,
  ``lib.train.admin.local.EnvironmentSettings``, ``lib.train.admin.stats.AverageMeter`` /
  ``StatValue``), so ``torch.load(weights_only=True)`` refuses the file and ``weights_only=False``
  would need the reference package (and would run whatever code the pickle names).
* **Our checkpoints** (:func:`save_checkpoint`): ``{"epoch", "net_type", "net", **extra}`` holding only
  tensors and plain python values. They load with ``torch.load(weights_only=True)``, and because the
  weights sit under ``net`` with the reference key names, the reference loader can read them too.

State-dict vocabulary
---------------------
The model uses the reference key names exactly (see ``docs/reference/STATE_DICT_KEYS.txt``): stage-1 and
distill models have 193 keys; the sparse model has those plus ``backbone.pos_embed_z``,
``backbone.prev_position_embeddings.weight`` and 60 ``backbone.{blocks.i,extension.j}.masknorm{1,2}.norm.*``
keys (255). The reference's unused tensors (:data:`DEAD_KEY_PATTERNS`; in sparse models also
:data:`SPARSE_DEAD_KEY_PATTERNS`) are held by the model as persistent buffers, so a strict load/save
round-trips the reference layout; :func:`load_state_dict_checked` tolerates them being absent from a file.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import nn

from fartrack.models.safe_load import CheckpointError, PlaceholderObject, read_checkpoint, short_error
from fartrack.utils.io import atomic_torch_save

__all__ = [
    "CheckpointError",
    "PlaceholderObject",
    "DEAD_KEY_PATTERNS",
    "SPARSE_DEAD_KEY_PATTERNS",
    "is_dead_key",
    "read_checkpoint",
    "extract_state_dict",
    "load_state_dict_checked",
    "dense_to_sparse_state_dict",
    "checkpoint_kind",
    "num_template_slots",
    "save_checkpoint",
    "load_model_weights",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: How many offending keys an error message lists per category.
_MAX_LISTED_KEYS = 10


# ---------------------------------------------------------------------------------------------------------------
# State dicts
# ---------------------------------------------------------------------------------------------------------------

#: Reference keys that no model uses at inference (MODEL.md §2.2); the model holds them as buffers.
DEAD_KEY_PATTERNS: tuple[re.Pattern, ...] = (
    re.compile(r"^backbone\.cls_token$"),  # ViT leftover
    re.compile(r"^backbone\.pos_embed$"),  # MAE pos-embed, only the interpolation source at construction
    re.compile(r"^backbone\.pos_embed_z1$"),
    re.compile(r"^backbone\.pos_embed_z$"),  # seq/sparse only
    re.compile(r"^backbone\.prev_position_embeddings\.weight$"),  # seq/sparse only (trajectory tokens)
)

#: Additionally dead in sparse models: the per-layer LayerNorms replaced by ``masknorm{1,2}`` (MODEL.md §2.2).
SPARSE_DEAD_KEY_PATTERNS: tuple[re.Pattern, ...] = (
    re.compile(r"^backbone\.(?:blocks|extension)\.\d+\.norm[12]\.(?:weight|bias)$"),
)

_MASKNORM_KEY = re.compile(r"(?:^|\.)masknorm[12]\.")
_LAYER_NORM_KEY = re.compile(r"^(?P<layer>.+)\.norm(?P<idx>[12])\.(?P<leaf>[^.]+)$")


def is_dead_key(key: str, sparse: bool) -> bool:
    """Whether ``key`` is unused at inference (``sparse``: in a model with ``masknorm`` layers)."""
    patterns = DEAD_KEY_PATTERNS + (SPARSE_DEAD_KEY_PATTERNS if sparse else ())
    return any(pattern.match(key) for pattern in patterns)


def checkpoint_kind(state_dict: Mapping[str, Any]) -> str:
    """``"sparse"`` if the state dict has ``masknorm`` keys, else ``"dense"``."""
    return "sparse" if any(_MASKNORM_KEY.search(key) for key in state_dict) else "dense"


def num_template_slots(state_dict: Mapping[str, Any], source: str = "state dict") -> int:
    """Number of template slots encoded by ``identity`` (rows - 1; the last row is the search region)."""
    identity = state_dict.get("identity")
    if not isinstance(identity, torch.Tensor) or identity.dim() < 2:
        raise CheckpointError(source, "no 'identity' tensor of shape (1, slots + 1, D)")
    return int(identity.shape[-2]) - 1


def extract_state_dict(ckpt: Any, path: PathLike) -> "OrderedDict[str, torch.Tensor]":
    """The model state dict inside a loaded checkpoint.

    Accepts a dict with ``net`` (reference trainer layout and ours), a dict with ``model`` (MAE files) or
    ``state_dict``, or a bare state dict of tensors. A ``module.`` (DDP) prefix shared by all keys is stripped.
    """
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(path, f"top-level object is a {type(ckpt).__name__}, expected a dict")
    where = None
    for container in ("net", "model", "state_dict"):
        if container in ckpt:
            where = container
            break
    if where is not None:
        candidate = ckpt[where]
        label = f"'{where}'"
        if not isinstance(candidate, Mapping):
            raise CheckpointError(path, f"{label} is a {type(candidate).__name__}, expected a state dict")
    else:
        candidate = ckpt
        label = "the top-level dict"
        if not any(isinstance(value, torch.Tensor) for value in candidate.values()):
            keys = ", ".join(repr(k) for k in list(candidate)[:_MAX_LISTED_KEYS])
            raise CheckpointError(
                path, f"no tensors found: no 'net'/'model'/'state_dict' entry and no tensor values (keys: {keys})"
            )

    if not candidate:
        raise CheckpointError(path, f"no tensors found ({label} is empty)")
    bad = [(k, type(v).__name__) for k, v in candidate.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        listed = ", ".join(f"{k!r} ({t})" for k, t in bad[:_MAX_LISTED_KEYS])
        raise CheckpointError(path, f"{label} holds {len(bad)} non-tensor entr{'y' if len(bad) == 1 else 'ies'}: {listed}")

    keys = list(candidate)
    if all(k.startswith("module.") for k in keys):
        keys_out = [k[len("module.") :] for k in keys]
    else:
        keys_out = keys
    return OrderedDict((new, candidate[old]) for new, old in zip(keys_out, keys))


def dense_to_sparse_state_dict(state_dict: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Add ``<layer>.masknorm{1,2}.norm.*`` copies of every ``<layer>.norm{1,2}.*`` (originals kept).

    Starts a sparse model from a stage-1/distill checkpoint: 60 keys for the 15 layers. The copies follow their
    source group, giving the reference sparse order. Keys already present are left alone (idempotent).
    """
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    pending: list[tuple[str, torch.Tensor]] = []
    current_group: tuple[str, str] | None = None
    for key, value in state_dict.items():
        match = _LAYER_NORM_KEY.match(key)
        group = (match["layer"], match["idx"]) if match else None
        if group != current_group:
            out.update(pending)
            pending = []
            current_group = group
        out[key] = value
        if match:
            new_key = f"{match['layer']}.masknorm{match['idx']}.norm.{match['leaf']}"
            if new_key not in state_dict:
                pending.append((new_key, value.detach().clone()))
    out.update(pending)
    return out


def _unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def _listing(items: list[str]) -> str:
    shown = items[:_MAX_LISTED_KEYS]
    text = "; ".join(shown)
    if len(items) > len(shown):
        text += f"; ... and {len(items) - len(shown)} more"
    return text


def _mismatch_hints(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    hints = []
    file_kind, model_kind = checkpoint_kind(state_dict), checkpoint_kind(expected)
    if file_kind == "sparse" and model_kind == "dense":
        hints.append(
            "checkpoint is a FARTrackSparse checkpoint (it has masknorm keys); "
            "build the model with the fartrack_sparse config"
        )
    elif file_kind == "dense" and model_kind == "sparse":
        hints.append(
            "checkpoint is a dense FARTrack/FARTrackDistill checkpoint (no masknorm keys) but the model is "
            "FARTrackSparse; build the model with the fartrack or fartrack_distill config, or load it with "
            "load_model_weights(..., from_dense_to_sparse=True) to start a sparse model from it"
        )
    ident_file, ident_model = state_dict.get("identity"), expected.get("identity")
    if (
        isinstance(ident_file, torch.Tensor)
        and isinstance(ident_model, torch.Tensor)
        and ident_file.dim() >= 2
        and ident_model.dim() >= 2
        and ident_file.shape[-2] != ident_model.shape[-2]
    ):
        rows_f, rows_m = int(ident_file.shape[-2]), int(ident_model.shape[-2])
        hints.append(
            f"the template number differs: 'identity' has {rows_f} rows in the checkpoint ({rows_f - 1} template "
            f"slot(s) + search) but {rows_m} in the model ({rows_m - 1} template slot(s)); build the model with "
            f"DATA.TEMPLATE.NUMBER = {rows_f - 1}"
        )
    if state_dict and expected and not set(state_dict) & set(expected):
        hints.append("no key in common with the model: is this a FARTrack checkpoint?")
    return hints


def load_state_dict_checked(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    allow_missing_dead: bool = True,
) -> list[str]:
    """Strictly check ``state_dict`` against ``model.state_dict()`` and load it.

    Missing keys are allowed only for dead tensors (:func:`is_dead_key`, when ``allow_missing_dead``); they
    keep the model's own values and are reported in the returned list of notes (a dtype cast is noted too).
    Any other missing key, unexpected key or shape mismatch raises :class:`CheckpointError` naming ``source``,
    listing up to 10 offending keys per category with their shapes, plus a hint (sparse vs dense model,
    different template number). The load itself is ``model.load_state_dict(..., strict=True)``.
    """
    model = _unwrap_model(model)
    expected = model.state_dict()
    not_tensors = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(source, f"non-tensor state-dict entries: {_listing(not_tensors)}")

    sparse_model = checkpoint_kind(expected) == "sparse"
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    dead_missing = [k for k in missing if allow_missing_dead and is_dead_key(k, sparse_model)]
    bad_missing = [k for k in missing if k not in dead_missing]

    if bad_missing or unexpected or mismatched:
        counts = []
        lines = []
        if bad_missing:
            counts.append(f"{len(bad_missing)} missing")
            lines.append(
                f"  missing from the checkpoint ({len(bad_missing)}): "
                + _listing([f"{k} {_shape(expected[k])}" for k in bad_missing])
            )
        if unexpected:
            counts.append(f"{len(unexpected)} unexpected")
            lines.append(
                f"  unexpected in the checkpoint ({len(unexpected)}): "
                + _listing([f"{k} {_shape(state_dict[k])}" for k in unexpected])
            )
        if mismatched:
            counts.append(f"{len(mismatched)} with a different shape")
            lines.append(
                f"  shape differs ({len(mismatched)}): "
                + _listing(
                    [f"{k}: checkpoint {_shape(state_dict[k])} vs model {_shape(expected[k])}" for k in mismatched]
                )
            )
        lines.extend(f"  hint: {hint}" for hint in _mismatch_hints(state_dict, expected))
        raise CheckpointError(
            source, f"state dict does not fit the model ({', '.join(counts)} key(s))\n" + "\n".join(lines)
        )

    full = OrderedDict((k, state_dict[k] if k in state_dict else expected[k]) for k in expected)
    try:
        model.load_state_dict(full, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(source, f"load_state_dict failed ({short_error(exc)})") from None

    notes = [
        f"{k} {_shape(expected[k])}: not in the checkpoint; kept the model's value (unused at inference)"
        for k in dead_missing
    ]
    for k in expected:
        if k in state_dict and state_dict[k].dtype != expected[k].dtype:
            notes.append(f"{k}: cast from {state_dict[k].dtype} to {expected[k].dtype}")
    return notes


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------

_PLAIN_SCALARS = (str, int, float, bool, type(None))
_PLAIN_CONTAINERS = (list, tuple, dict, OrderedDict)
_RESERVED_KEYS = ("epoch", "net_type", "net")


def _plain_copy(value: Any, where: str, active: set[int]) -> Any:
    """Validate that ``value`` holds only plain python types / tensors; tensors are copied to the CPU."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:  # exact types: bool/int/float subclasses (numpy scalars, enums) are refused
        return value
    if kind in (torch.Tensor, nn.Parameter):
        return value.detach().to("cpu").clone()
    if kind in _PLAIN_CONTAINERS:
        if id(value) in active:
            raise TypeError(f"extra value {where} contains a reference cycle")
        active.add(id(value))
        try:
            if kind in (dict, OrderedDict):
                out = kind()
                for key, item in value.items():
                    if type(key) not in (str, int):
                        raise TypeError(
                            f"extra value {where} has a key {key!r} of type {type(key).__name__}; only str/int keys"
                        )
                    out[key] = _plain_copy(item, f"{where}[{key!r}]", active)
                return out
            items = [_plain_copy(item, f"{where}[{i}]", active) for i, item in enumerate(value)]
            return items if kind is list else tuple(items)
        finally:
            active.discard(id(value))
    raise TypeError(
        f"extra value {where} is a {kind.__module__}.{kind.__qualname__}; checkpoints hold only "
        "str/int/float/bool/None/list/tuple/dict/tensor values"
    )


def _cpu_state_dict(model_or_state_dict: Union[nn.Module, Mapping[str, torch.Tensor]]) -> "OrderedDict[str, torch.Tensor]":
    if isinstance(model_or_state_dict, nn.Module):
        state = _unwrap_model(model_or_state_dict).state_dict()
    elif isinstance(model_or_state_dict, Mapping):
        state = model_or_state_dict
    else:
        raise TypeError(f"expected an nn.Module or a state dict, got {type(model_or_state_dict).__name__}")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"state-dict key {key!r} is a {type(key).__name__}, not a str")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state-dict entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key] = value.detach().to("cpu").clone()
    if not out:
        raise ValueError("refusing to save an empty state dict")
    return out


def save_checkpoint(
    path: PathLike,
    model_or_state_dict: Union[nn.Module, Mapping[str, torch.Tensor]],
    *,
    net_type: str,
    epoch: int,
    extra: dict | None = None,
) -> Path:
    """Atomically write ``{"epoch", "net_type", "net": state_dict, **extra}`` to ``path``; return the path.

    ``net`` holds CPU copies of the tensors under the reference key names (the model's own), so the
    reference loader (``checkpoint["net"]``) can read the file as well. ``extra`` may hold only
    str/int/float/bool/None/list/tuple/dict/tensor values (checked recursively; ``TypeError`` naming the
    offending key otherwise) and may not override the three fixed keys. The file loads with
    ``torch.load(weights_only=True)``.
    """
    if not isinstance(net_type, str) or not net_type:
        raise TypeError(f"net_type must be a non-empty str, got {net_type!r}")
    if type(epoch) is not int:
        raise TypeError(f"epoch must be an int, got {type(epoch).__name__}")
    payload: dict[str, Any] = {"epoch": epoch, "net_type": net_type, "net": _cpu_state_dict(model_or_state_dict)}
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
        for key, value in extra.items():
            if not isinstance(key, str):
                raise TypeError(f"extra key {key!r} is a {type(key).__name__}; top-level keys must be str")
            if key in _RESERVED_KEYS:
                raise ValueError(f"extra may not override the checkpoint key {key!r}")
            payload[key] = _plain_copy(value, f"extra[{key!r}]", set())
    return atomic_torch_save(payload, Path(path))


# ---------------------------------------------------------------------------------------------------------------
# One call for users
# ---------------------------------------------------------------------------------------------------------------


def load_model_weights(
    model: nn.Module, path: PathLike, *, from_dense_to_sparse: bool = False, ckpt: Any = None
) -> list[str]:
    """Read ``path`` and load its weights into ``model`` with the strict key check; return the notes.

    A dense (stage-1/distill) file is converted with :func:`dense_to_sparse_state_dict` when
    ``from_dense_to_sparse`` is set or when the model is sparse and the file is not. ``ckpt`` is the
    file's content when the caller has already read it (``path`` then only names it in messages). Errors
    are :class:`CheckpointError` naming the file.
    """
    if ckpt is None:
        ckpt = read_checkpoint(path)
    state_dict = extract_state_dict(ckpt, path)
    model = _unwrap_model(model)
    model_sparse = checkpoint_kind(model.state_dict()) == "sparse"
    notes: list[str] = []
    if checkpoint_kind(state_dict) == "dense" and (from_dense_to_sparse or model_sparse):
        if not model_sparse:
            raise CheckpointError(
                path, "from_dense_to_sparse=True but the model has no masknorm layers (it is not FARTrackSparse)"
            )
        before = len(state_dict)
        state_dict = dense_to_sparse_state_dict(state_dict)
        notes.append(
            f"dense checkpoint converted for the sparse model: {len(state_dict) - before} masknorm tensors "
            "copied from norm1/norm2"
        )
    notes.extend(load_state_dict_checked(model, state_dict, source=str(path)))
    net_type = ckpt.get("net_type") if isinstance(ckpt, Mapping) else None
    logger.info(
        "loaded %d tensors from %s%s",
        len(state_dict),
        path,
        f" (net_type {net_type})" if isinstance(net_type, str) else "",
    )
    for note in notes:
        logger.info("%s: %s", path, note)
    return notes
