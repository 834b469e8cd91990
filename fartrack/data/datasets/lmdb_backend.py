"""Read-only LMDB store: values are encoded images or UTF-8 text / JSON under ``/``-separated keys.

The environment is opened lazily, once per path in each process (readonly, no lock, no readahead, no meminit), so a store
built in the main process can be pickled into DataLoader workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Tuple

from fartrack.data.datasets.base import PathLike, Store
from fartrack.data.image_io import DatasetError

__all__ = ["LmdbStore"]

# One read-only environment per path and process (LMDB refuses to open the same environment twice).
_ENVS: Dict[Tuple[str, int], object] = {}


def _open_env(path: Path):
    key = (os.fspath(path.resolve()), os.getpid())
    env = _ENVS.get(key)
    if env is None:
        import lmdb

        env = lmdb.open(key[0], readonly=True, lock=False, readahead=False, meminit=False, max_readers=512)
        _ENVS[key] = env
    return env


class LmdbStore(Store):
    """Keys of one LMDB environment, with an optional key prefix (e.g. ``train/`` for GOT-10k)."""

    def __init__(self, path: PathLike, prefix: str = ""):
        self.path = Path(path)
        self.prefix = prefix
        if not (self.path / "data.mdb").is_file():
            raise DatasetError(f"LMDB environment not found: {os.fspath(self.path)} (expected data.mdb inside)")
        self._env = None
        self._pid = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_env"] = None
        state["_pid"] = None
        return state

    def _txn_env(self):
        if self._env is None or self._pid != os.getpid():
            self._env = _open_env(self.path)
            self._pid = os.getpid()
        return self._env

    def describe(self, key: str) -> str:
        """``<env path>[<key>]`` (for messages)."""
        return f"{os.fspath(self.path)}[{self.prefix}{key}]"

    def _get(self, key: str):
        with self._txn_env().begin(write=False) as txn:
            value = txn.get((self.prefix + key).encode("utf-8"))
            return None if value is None else bytes(value)

    def exists(self, key: str) -> bool:
        """Whether ``key`` is in the environment."""
        return self._get(key) is not None

    def read_bytes(self, key: str) -> bytes:
        """Value of ``key``; :class:`DatasetError` names the environment and key when absent."""
        value = self._get(key)
        if value is None:
            raise DatasetError(f"key not found in LMDB: {self.describe(key)}")
        return value
