"""Safe reading of checkpoint files, including reference checkpoints that pickle foreign classes.

Restricted-unpickler fallback
-----------------------------
:func:`read_checkpoint` first calls ``torch.load(path, map_location="cpu", weights_only=True)``. Only when
that raises :class:`pickle.UnpicklingError` (a global that torch's weights-only unpickler does not allow),
and the file is structurally a PyTorch archive, it loads the file a second time with
``torch.load(..., weights_only=False, pickle_module=<restricted module>)``. The restricted module's
``Unpickler.find_class`` resolves only this explicit allow-list:

* ``collections.OrderedDict``;
* ``torch._utils._rebuild_tensor_v2`` and ``torch._utils._rebuild_parameter`` (wrapped: the storage must be
  one produced by torch's own ``persistent_load``, and pickled backward hooks are dropped);
* ``torch.device``, ``torch.Size`` and the ``torch.<dtype>`` objects (``torch.float32``, ...);
* the container/scalar builtins ``set, frozenset, list, tuple, dict, int, float, bool, str, bytes,
  bytearray, complex, slice, range``;
* ``_codecs.encode`` restricted to the ``latin1`` codec (protocol-2 pickles store ``bytes`` that way).

Every other global (the reference classes above, but also ``os.system``, ``builtins.eval``, ...) is replaced
by an inert :class:`PlaceholderObject` subclass: it accepts any constructor arguments, ``__setstate__``,
item assignment and appends, stores that data, does nothing else, and records the qualified name it stands
in for (``placeholder_for``). No pickled callable outside the allow-list is ever resolved, so no arbitrary
code runs. Tensor storages arrive through torch's ``persistent_load``, so no storage class needs allowing.
The substituted names are logged (``logging``, logger ``fartrack.models.safe_load``, level INFO).
TorchScript archives are never loaded (torch would dispatch them to ``torch.jit.load``).
"""

from __future__ import annotations

import codecs
import collections
import io
import logging
import os
import pickle
import re
import types
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import torch
from torch import nn

__all__ = ["CheckpointError", "PlaceholderObject", "read_checkpoint"]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not fit the model.

    ``str(err)`` is ``"checkpoint <path>: <reason>"``; ``err.path`` and ``err.reason`` hold the parts.
    """

    def __init__(self, path: Any, reason: str = "unreadable checkpoint") -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"checkpoint {self.path!r}: {self.reason}"


def short_error(exc: BaseException, limit: int = 240) -> str:
    """First meaningful line of an exception message, shortened (no traceback soup in user messages)."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else ""
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    name = type(exc).__name__
    return f"{name}: {line}" if line else name


# ---------------------------------------------------------------------------------------------------------------
# Restricted unpickler
# ---------------------------------------------------------------------------------------------------------------


class PlaceholderObject:
    """Inert stand-in for a pickled global that is not on the allow-list.

    A fresh subclass is made per substituted global; its ``placeholder_for`` is the qualified name
    (``module.name``) from the pickle. Instances accept any constructor arguments, ``__setstate__``, item
    assignment, ``append`` and ``extend``; they only store that data (``placeholder_args``,
    ``placeholder_kwargs``, ``placeholder_state``, ``placeholder_items``, ``placeholder_list``) for
    inspection and never run anything.
    """

    placeholder_for: str = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "PlaceholderObject":
        obj = object.__new__(cls)
        object.__setattr__(obj, "placeholder_args", args)
        object.__setattr__(obj, "placeholder_kwargs", kwargs)
        object.__setattr__(obj, "placeholder_state", None)
        object.__setattr__(obj, "placeholder_items", {})
        object.__setattr__(obj, "placeholder_list", [])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "placeholder_state", state)

    def __setitem__(self, key: Any, value: Any) -> None:
        try:
            self.placeholder_items[key] = value
        except TypeError:  # unhashable key: keep the pair anyway
            self.placeholder_list.append((key, value))

    def append(self, value: Any) -> None:
        self.placeholder_list.append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self.placeholder_list.extend(values)

    def __repr__(self) -> str:
        return f"<placeholder for {self.placeholder_for}>"


def _checked_storage(storage: Any) -> Any:
    if not isinstance(storage, torch.storage.TypedStorage):
        raise pickle.UnpicklingError(
            f"tensor rebuilt from a {type(storage).__name__}, not from a storage record of the archive"
        )
    return storage


def _safe_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` for archive storages only; pickled backward hooks are dropped."""
    if backward_hooks:
        logger.warning("dropping %d pickled backward hook(s) attached to a tensor", len(backward_hooks))
    return torch._utils._rebuild_tensor_v2(
        _checked_storage(storage), storage_offset, size, stride, requires_grad, OrderedDict(), metadata
    )


def _safe_rebuild_parameter(data, requires_grad, backward_hooks):
    """``torch._utils._rebuild_parameter`` without the pickled backward hooks."""
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter rebuilt from a {type(data).__name__}, not a tensor")
    if backward_hooks:
        logger.warning("dropping %d pickled backward hook(s) attached to a parameter", len(backward_hooks))
    return nn.Parameter(data, requires_grad=bool(requires_grad))


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles for ``bytes``: only str -> latin1 is allowed."""
    if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode only allowed for str with latin1, got {encoding!r}")
    return codecs.encode(obj, "latin1")


_ALLOWED_BUILTINS = (
    "set",
    "frozenset",
    "list",
    "tuple",
    "dict",
    "int",
    "float",
    "bool",
    "str",
    "bytes",
    "bytearray",
    "complex",
    "slice",
    "range",
)


def _allowed_global(module: str, name: str) -> Any:
    """The object for an allowed ``module.name`` global, or ``None`` when it is not on the allow-list."""
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "torch._utils":
        if name == "_rebuild_tensor_v2":
            return _safe_rebuild_tensor_v2
        if name == "_rebuild_parameter":
            return _safe_rebuild_parameter
        return None
    if module == "torch":
        if name == "device":
            return torch.device
        if name == "Size":
            return torch.Size
        value = getattr(torch, name, None) if name.isidentifier() and not name.startswith("_") else None
        return value if isinstance(value, torch.dtype) else None
    if module == "builtins" and name in _ALLOWED_BUILTINS:
        import builtins

        return getattr(builtins, name)
    if module == "_codecs" and name == "encode":
        return _safe_codecs_encode
    return None


def _python2_name(module: str, name: str) -> tuple[str, str]:
    """Map python-2 names written by protocol < 3 pickles (``__builtin__.set``) to python-3 ones."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _make_restricted_pickle_module(substituted: dict[str, type]) -> types.ModuleType:
    """A module-like object with ``Unpickler`` and ``load`` for ``torch.load(pickle_module=...)``.

    ``substituted`` collects the placeholder classes created during the load (qualified name -> class).
    """

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
            # python-2 names (protocol < 3 pickles, e.g. torch's default protocol 2) -> python-3 names;
            # the mapped name still has to pass the allow-list
            module, name = _python2_name(str(module), str(name))
            obj = _allowed_global(module, name)
            if obj is not None:
                return obj
            qualified = f"{module}.{name}"
            cls = substituted.get(qualified)
            if cls is None:
                cls = type(
                    f"Placeholder[{qualified}]",
                    (PlaceholderObject,),
                    {"placeholder_for": qualified, "__module__": __name__},
                )
                substituted[qualified] = cls
            return cls

    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()

    def loads(data: bytes, **kwargs: Any) -> Any:
        return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()

    module = types.ModuleType("fartrack_restricted_pickle")
    module.Unpickler = RestrictedUnpickler
    module.load = load
    module.loads = loads
    module.UnpicklingError = pickle.UnpicklingError
    return module


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _sniff_non_checkpoint(head: bytes) -> str | None:
    """A human description of well-known non-checkpoint contents, or ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return "looks like a JPEG image"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "looks like a PNG image"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "looks like a GIF image"
    if head.startswith(b"\x1f\x8b"):
        return "looks like a gzip file"
    if head.startswith(b"%PDF"):
        return "looks like a PDF document"
    if head.startswith(b"\x93NUMPY"):
        return "looks like a numpy .npy file"
    if len(head) >= 10 and head[8:10] == b'{"':
        return "looks like a safetensors file (not supported here)"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive (the pre-1.0 torch tar format is not supported)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character may be cut at the end of the sniffed head
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is not None and all(ch.isprintable() or ch in "\r\n\t\f\v" for ch in text):
        return "looks like a text file"
    return None


def _inspect_zip(path: Path) -> None:
    """Check that a zip file is a torch archive (``<folder>/data.pkl``) and not TorchScript."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        raise CheckpointError(
            path, "not a PyTorch checkpoint (truncated or corrupt archive: zip directory missing or damaged)"
        ) from None
    except (EOFError, ValueError, OSError) as exc:
        raise CheckpointError(
            path, f"not a PyTorch checkpoint (truncated or corrupt archive: {short_error(exc)})"
        ) from None
    records = {name.split("/", 1)[1] if "/" in name else name for name in names}
    if "constants.pkl" in records or any(name.startswith("code/") for name in records):
        raise CheckpointError(path, "a TorchScript archive, not a checkpoint (it is not loaded)")
    if "data.pkl" not in records:
        raise CheckpointError(path, "a zip archive but not a PyTorch checkpoint (no data.pkl record)")


def read_checkpoint(path: PathLike) -> dict:
    """Load a checkpoint file safely (CPU tensors) and return its top-level dict.

    ``torch.load(weights_only=True)`` first; for reference checkpoints that pickle non-allowed classes, the
    restricted unpickler described in the module docstring. Every failure raises :class:`CheckpointError`
    naming the file and the reason (missing, directory, empty, truncated/corrupt, not a checkpoint, ...).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(p, "file not found")
    if p.is_dir():
        raise CheckpointError(p, "is a directory, not a checkpoint file")
    if not p.is_file():
        raise CheckpointError(p, "not a regular file")
    try:
        size = p.stat().st_size
        with open(p, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise CheckpointError(p, f"cannot be read ({short_error(exc)})") from None
    if size == 0:
        raise CheckpointError(p, "empty file (0 bytes), not a PyTorch checkpoint")

    if len(head) < 4 and any(magic.startswith(head) for magic in _ZIP_MAGIC):
        raise CheckpointError(p, f"not a PyTorch checkpoint (truncated or corrupt archive: only {size} byte(s))")
    is_zip = head.startswith(_ZIP_MAGIC)
    is_pickle = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    if is_zip:
        _inspect_zip(p)
    elif not is_pickle:
        what = _sniff_non_checkpoint(head) or "unrecognised content"
        raise CheckpointError(p, f"not a PyTorch checkpoint ({what})")
    kind = "archive" if is_zip else "legacy pickle"

    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        logger.debug("%s: weights-only load refused (%s); using the restricted unpickler", p, short_error(exc))
        obj = _restricted_load(p, kind)
    except Exception as exc:  # torch raises RuntimeError / EOFError / ... for damaged files
        raise CheckpointError(p, f"not a PyTorch checkpoint (truncated or corrupt {kind}: {short_error(exc)})") from None

    if not isinstance(obj, dict):
        raise CheckpointError(p, f"top-level object is a {type(obj).__name__}, expected a dict")
    _drop_tensor_hooks(obj)
    return obj


def _restricted_load(p: Path, kind: str) -> Any:
    substituted: dict[str, type] = {}
    module = _make_restricted_pickle_module(substituted)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False, pickle_module=module)
    except Exception as exc:
        raise CheckpointError(
            p, f"not a loadable PyTorch checkpoint (corrupt {kind}, restricted unpickler: {short_error(exc)})"
        ) from None
    if substituted:
        logger.info(
            "%s: substituted inert placeholders for %d pickled global(s) not on the allow-list: %s",
            p,
            len(substituted),
            ", ".join(sorted(substituted)),
        )
    return obj


def _drop_tensor_hooks(obj: Any, _seen: set | None = None) -> None:
    """Clear ``_backward_hooks`` that a pickle may have set on tensors via ``__setstate__``."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        if getattr(obj, "_backward_hooks", None):
            logger.warning("dropping pickled backward hooks of a loaded tensor")
            obj._backward_hooks = OrderedDict()
        return
    if isinstance(obj, Mapping):
        for value in obj.values():
            _drop_tensor_hooks(value, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for value in obj:
            _drop_tensor_hooks(value, seen)


