"""Load experiment YAML files over the declared defaults, with validation.

A YAML file (``experiments/<script>/<config>.yaml`` or any path) is merged recursively into a fresh copy of
the defaults: mappings recurse, every other value replaces the default. Each value is checked against its
declaration in :mod:`fartrack.config.defaults`; problems are collected and raised together as one
:class:`ConfigError` whose lines read ``<file>: <dotted key> ...``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import yaml
from easydict import EasyDict

from fartrack.config.defaults import BASE_DEPTH, SCHEMA, SCRIPTS, Key, Schema, default_dict

__all__ = [
    "ConfigError",
    "ConfigFileNotFoundError",
    "config_to_dict",
    "list_configs",
    "load_config",
    "merge_overrides",
    "parse_overrides",
    "resolve_config_path",
]

PathLike = Union[str, "os.PathLike[str]"]

_REPO_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    """An invalid configuration: unknown key, wrong type, value out of range or missing file.

    ``errors`` holds one message per problem; ``str(error)`` joins them with newlines.
    """

    def __init__(self, errors: Union[str, List[str]]):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """The requested YAML file does not exist."""


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that reads ``4e-4`` as a float and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # other key types are left to the base constructor
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _repo_root(repo_root: Optional[PathLike]) -> Path:
    return Path(repo_root) if repo_root is not None else _REPO_ROOT


def _display(path: Path, root: Path) -> str:
    """``path`` relative to the repository root when inside it (POSIX separators), else as given."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def list_configs(script: str, repo_root: Optional[PathLike] = None) -> List[str]:
    """Names (without ``.yaml``) of the configs in ``experiments/<script>/``, sorted."""
    folder = _repo_root(repo_root) / "experiments" / script
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _check_script(script: str) -> None:
    if script not in SCRIPTS:
        close = difflib.get_close_matches(script, SCRIPTS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown script {script!r}{hint}; choose from {', '.join(SCRIPTS)}")


def resolve_config_path(script: str, config: PathLike, repo_root: Optional[PathLike] = None) -> Path:
    """Path of the YAML file for ``script`` / ``config``.

    ``config`` is a config name (``experiments/<script>/<config>.yaml``) or, when it ends in ``.yaml`` /
    ``.yml`` or contains a path separator, a file path (relative paths: current directory, then repo root).
    Raises :class:`ConfigFileNotFoundError` naming the path and the configs available for ``script``.
    """
    _check_script(script)
    root = _repo_root(repo_root)
    text = os.fspath(config)
    if text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_absolute() and not path.exists() and (root / path).exists():
            path = root / path
    else:
        path = root / "experiments" / script / f"{text}.yaml"
    if not path.is_file():
        available = ", ".join(list_configs(script, root)) or "(none)"
        raise ConfigFileNotFoundError(
            f"config file not found: {_display(path, root)}; available configs for script {script!r} "
            f"(experiments/{script}/): {available}"
        )
    return path


def _read_yaml(path: Path, label: str) -> Dict[str, Any]:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        sections = ", ".join(SCHEMA)
        raise ConfigError(
            f"{label}: the top level must be a mapping of sections ({sections}), got {type(data).__name__}"
        )
    return data


def _all_paths(schema: Schema = SCHEMA, prefix: str = "") -> List[str]:
    out = []
    for name, node in schema.items():
        out.append(prefix + name)
        if isinstance(node, dict):
            out.extend(_all_paths(node, prefix + name + "."))
    return out


def _suggest(name: str, prefix: str, siblings: Schema) -> Optional[str]:
    """Closest declared key for an unknown ``prefix + name``: a sibling, the same name elsewhere, any path."""
    by_upper = {k.upper(): k for k in siblings}
    close = difflib.get_close_matches(name.upper(), list(by_upper), n=1, cutoff=0.6)
    if close:
        return prefix + by_upper[close[0]]
    paths = _all_paths()
    same_name = [p for p in paths if p.rsplit(".", 1)[-1] == name.upper()]
    if same_name:
        return same_name[0]
    close = difflib.get_close_matches((prefix + name).upper(), paths, n=1, cutoff=0.6)
    return close[0] if close else None


_TYPE_WORDS = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}
_ITEM_WORDS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_scalar(value: Any, kind: type) -> Any:
    """``value`` converted to ``kind`` (int -> float only), or raise TypeError."""
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise TypeError
    return value


def _check_bounds(value: Any, key: Key) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if (key.low is not None and value < key.low) or (key.high is not None and value > key.high):
        low = "-inf" if key.low is None else key.low
        high = "inf" if key.high is None else key.high
        return f"{value!r} is out of range [{low}, {high}]"
    return None


def _choice_message(value: Any, choices: Iterable[Any]) -> str:
    choices = list(choices)
    msg = f"{value!r} is not one of {', '.join(map(str, choices))}"
    if isinstance(value, str):
        same_case = [str(c) for c in choices if str(c).lower() == value.lower()]
        close = same_case or difflib.get_close_matches(value, [str(c) for c in choices], n=1)
        if close:
            msg += f" (did you mean {close[0]}?)"
    return msg


def _coerce(value: Any, key: Key) -> Any:
    """Validated (and int->float converted) ``value`` for ``key``; raises ValueError with the reason."""
    if key.kind is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list of {_ITEM_WORDS[key.item]}, got {_describe(value)}")
        items = []
        for index, item in enumerate(value):
            try:
                item = _check_scalar(item, key.item)
            except TypeError:
                raise ValueError(f"item {index}: expected {_TYPE_WORDS[key.item]}, got {_describe(item)}") from None
            if key.item_choices is not None and item not in key.item_choices:
                raise ValueError(f"item {index}: {_choice_message(item, key.item_choices)}")
            problem = _check_bounds(item, key)
            if problem:
                raise ValueError(f"item {index}: {problem}")
            items.append(item)
        return items
    try:
        value = _check_scalar(value, key.kind)
    except TypeError:
        if isinstance(value, (list, tuple, dict)):
            raise ValueError(f"expected a single value ({_TYPE_WORDS[key.kind]}), got {_describe(value)}") from None
        raise ValueError(f"expected {_TYPE_WORDS[key.kind]}, got {_describe(value)}") from None
    if key.choices is not None and value not in key.choices:
        raise ValueError(_choice_message(value, key.choices))
    problem = _check_bounds(value, key)
    if problem:
        raise ValueError(problem)
    return value


def _merge(
    base: Dict[str, Any], update: Mapping, schema: Schema, label: str, errors: List[str], prefix: str = ""
) -> None:
    """Merge ``update`` into ``base`` in place, validating against ``schema``; problems go to ``errors``."""
    for name, value in update.items():
        path = f"{prefix}{name}"
        node = schema.get(name) if isinstance(name, str) else None
        if node is None:
            hint = _suggest(str(name), prefix, schema)
            errors.append(f"{label}: unknown key {path}" + (f" (did you mean {hint}?)" if hint else ""))
        elif isinstance(node, dict):
            if value is None:
                continue
            if not isinstance(value, Mapping):
                keys = ", ".join(node)
                errors.append(
                    f"{label}: {path} is a section; expected a mapping of its keys ({keys}), got {_describe(value)}"
                )
                continue
            _merge(base[name], value, node, label, errors, prefix=f"{path}.")
        else:
            try:
                base[name] = _coerce(value, node)
            except ValueError as exc:
                errors.append(f"{label}: {path}: {exc}")


def _check_consistency(cfg: Mapping, label: str) -> List[str]:
    """Checks that involve several keys (ranges depending on other keys, matching list lengths)."""
    errors = []
    model, data, train = cfg["MODEL"], cfg["DATA"], cfg["TRAIN"]
    depth = BASE_DEPTH + model["EXTENSION"]
    if not 1 <= model["LAYERS"] <= depth:
        errors.append(
            f"{label}: MODEL.LAYERS = {model['LAYERS']} is out of range 1..{depth} ({BASE_DEPTH} + MODEL.EXTENSION)"
        )
    outside = [e for e in model["EXITS"] if not 1 <= e <= depth]
    if outside:
        errors.append(f"{label}: MODEL.EXITS: {outside} out of range 1..{depth} ({BASE_DEPTH} + MODEL.EXTENSION)")
    if list(model["EXITS"]) != sorted(set(model["EXITS"])):
        errors.append(f"{label}: MODEL.EXITS must be strictly increasing, got {list(model['EXITS'])}")
    for name in ("MEAN", "STD"):
        if len(data[name]) != 3:
            errors.append(f"{label}: DATA.{name} must hold 3 values (R, G, B), got {len(data[name])}")
    for split in ("TRAIN", "VAL"):
        names, ratios = data[split]["DATASETS_NAME"], data[split]["DATASETS_RATIO"]
        if len(names) != len(ratios):
            errors.append(
                f"{label}: DATA.{split}.DATASETS_RATIO has {len(ratios)} values but DATA.{split}.DATASETS_NAME "
                f"has {len(names)}"
            )
    if not data["TRAIN"]["DATASETS_NAME"]:
        errors.append(f"{label}: DATA.TRAIN.DATASETS_NAME is empty")
    milestones = list(train["SCHEDULER"]["MILESTONES"])
    if train["SCHEDULER"]["TYPE"] == "Mstep" and not milestones:
        errors.append(f"{label}: TRAIN.SCHEDULER.MILESTONES must be set when TRAIN.SCHEDULER.TYPE is Mstep")
    if milestones != sorted(set(milestones)):
        errors.append(f"{label}: TRAIN.SCHEDULER.MILESTONES must be strictly increasing, got {milestones}")
    return errors


def _raise_if(errors: List[str]) -> None:
    if errors:
        raise ConfigError(errors)


def load_config(
    script: str,
    config: PathLike,
    repo_root: Optional[PathLike] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> EasyDict:
    """Defaults merged with the YAML of ``script`` / ``config`` (and then ``overrides``), validated.

    Args:
        script: ``fartrack``, ``fartrack_distill`` or ``fartrack_sparse``.
        config: config name (file ``experiments/<script>/<config>.yaml``) or a path to a YAML file.
        repo_root: folder holding ``experiments/`` (default: the checkout this package lives in).
        overrides: optional ``{"MODEL.LAYERS": 6, ...}`` applied after the YAML (see :func:`merge_overrides`).

    Raises:
        ConfigError: unknown key, wrong type or value (all problems in one message), or a missing file
            (:class:`ConfigFileNotFoundError`, also a ``FileNotFoundError``).
    """
    root = _repo_root(repo_root)
    path = resolve_config_path(script, config, root)
    label = _display(path, root)
    cfg = default_dict()
    errors: List[str] = []
    _merge(cfg, _read_yaml(path, label), SCHEMA, label, errors)
    _raise_if(errors)
    _raise_if(_check_consistency(cfg, label))
    result = EasyDict(cfg)
    return merge_overrides(result, overrides) if overrides else result


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> List[tuple]:
    """``{"A": {"B": v}, "C.D": w}`` -> ``[("A.B", v), ("C.D", w)]``."""
    items = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, prefix=f"{path}."))
        else:
            items.append((path, value))
    return items


def _nest(overrides: Mapping[str, Any], label: str, errors: List[str]) -> Dict[str, Any]:
    """Dotted and/or nested overrides -> one nested mapping; setting a key twice is an error."""
    nested: Dict[str, Any] = {}
    for dotted, value in _flatten(overrides):
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        if not isinstance(node, dict) or leaf in node:
            errors.append(f"{label}: conflicting overrides for {dotted}")
        else:
            node[leaf] = value
    return nested


def merge_overrides(cfg: Mapping, overrides: Mapping[str, Any], source: str = "overrides") -> EasyDict:
    """A new config: ``cfg`` with ``overrides`` (``{"MODEL.LAYERS": 6}`` or nested) applied and validated.

    ``cfg`` itself is not modified. ``source`` labels the error messages (e.g. ``"--layers"``).
    """
    base = config_to_dict(cfg)
    errors: List[str] = []
    _merge(base, _nest(overrides, source, errors), SCHEMA, source, errors)
    _raise_if(errors)
    _raise_if(_check_consistency(base, source))
    return EasyDict(base)


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """``["MODEL.LAYERS=6", "TRAIN.LR=1e-3"]`` -> ``{"MODEL.LAYERS": 6, "TRAIN.LR": 0.001}`` (values as YAML)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form KEY=VALUE (e.g. MODEL.LAYERS=6)")
        try:
            value = yaml.load(text, Loader=_Loader) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: invalid value: {exc}") from exc
        out[key.strip()] = value
    return out


def config_to_dict(cfg: Any) -> Any:
    """Plain ``dict`` / ``list`` / scalar copy of a config tree (for checkpoints, JSON and YAML dumps)."""
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    return cfg
