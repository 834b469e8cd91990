"""Tiny random-weight models and in-process loading of the ``tracking/`` scripts (test helper).

:func:`write_tiny_sparse` writes a config YAML for a tiny sparse FARTrack (32-px templates, 64-px search,
width 32, 2 heads, 2 layers) and a checkpoint of a freshly built network, so CLI tests run in seconds on a CPU.
:func:`load_script` imports a script such as ``tracking/test.py`` as a module, so its ``main`` can be called
in-process.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Optional, Tuple

from fartrack.config import load_config
from fartrack.models.build import build_network
from fartrack.models.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]

#: Config of the tiny sparse model, for the ``fartrack_sparse`` script (no ``TEST.EPOCH``).
TINY_SPARSE_YAML = """\
DATA:
  TEMPLATE: {SIZE: 32}
  SEARCH: {SIZE: 64}
MODEL:
  EMBED_DIM: 32
  NUM_HEADS: 2
  EXTENSION: 0
  LAYERS: 2
  SPARSE: {ENABLED: true}
TEST:
  TEMPLATE_SIZE: 32
  SEARCH_SIZE: 64
"""


def write_tiny_sparse(folder: Path, checkpoint_name: str, epoch: int,
                      test_epoch: Optional[int] = None) -> Tuple[str, str]:
    """Write ``folder/tiny.yaml`` (:data:`TINY_SPARSE_YAML`, plus ``TEST.EPOCH: test_epoch`` when given) and
    ``folder/checkpoint_name``, a random-weight network of that config saved at ``epoch``.

    Returns ``(config path, checkpoint path)`` as strings.
    """
    folder = Path(folder)
    config = folder / "tiny.yaml"
    config.write_text(TINY_SPARSE_YAML + ("" if test_epoch is None else f"  EPOCH: {test_epoch}\n"))
    net = build_network(load_config("fartrack_sparse", str(config)))
    ckpt = save_checkpoint(folder / checkpoint_name, net, net_type=net.net_type, epoch=epoch)
    return str(config), str(ckpt)


def load_script(path: Path, module_name: str) -> ModuleType:
    """Import the script at ``path`` as a fresh module named ``module_name`` (its ``main`` is not run)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
