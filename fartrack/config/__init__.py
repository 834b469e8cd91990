"""Configuration: one declared schema of defaults, YAML loading with validation, and local path settings.

Typical use::

    from fartrack.config import load_config
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full", overrides={"MODEL.LAYERS": 10})
    cfg.MODEL.SPARSE.RETAIN_RATIO  # 0.75
"""

from fartrack.config.defaults import (
    BASE_DEPTH,
    DATASET_NAMES,
    SCHEMA,
    SCRIPTS,
    Key,
    default_config,
    default_dict,
    describe,
    get_key,
    iter_keys,
)
from fartrack.config.loader import (
    ConfigError,
    ConfigFileNotFoundError,
    config_to_dict,
    list_configs,
    load_config,
    merge_overrides,
    parse_overrides,
    resolve_config_path,
)
from fartrack.config.local_settings import (
    GENERATE_COMMAND,
    LocalSettings,
    LocalSettingsError,
    LocalSettingsNotFoundError,
    MissingSettingError,
    load_test_settings,
    load_train_settings,
    write_local_settings,
)

__all__ = [
    "BASE_DEPTH",
    "DATASET_NAMES",
    "GENERATE_COMMAND",
    "SCHEMA",
    "SCRIPTS",
    "ConfigError",
    "ConfigFileNotFoundError",
    "Key",
    "LocalSettings",
    "LocalSettingsError",
    "LocalSettingsNotFoundError",
    "MissingSettingError",
    "config_to_dict",
    "default_config",
    "default_dict",
    "describe",
    "get_key",
    "iter_keys",
    "list_configs",
    "load_config",
    "load_test_settings",
    "load_train_settings",
    "merge_overrides",
    "parse_overrides",
    "resolve_config_path",
    "write_local_settings",
]
