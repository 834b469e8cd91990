"""Shared pytest fixtures: the location of the reference golden files and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_fixtures_dir() -> Path:
    """Folder of the golden files made by the released reference code (env var overrides the default)."""
    env = os.environ.get("FARTRACK_REFERENCE_FIXTURES")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "fixtures" / "official"


@pytest.fixture(scope="session")
def official_dir() -> Path:
    """The reference fixtures folder; skips the test with a clear message when it is absent."""
    path = reference_fixtures_dir()
    if not (path / "checkpoint_sparse.pth").is_file():
        pytest.skip(
            f"reference fixtures not found at {path} (set FARTRACK_REFERENCE_FIXTURES to the folder "
            "holding checkpoint_sparse.pth, network_io.pt and tracker_*.npz/json)"
        )
    return path


@pytest.fixture(scope="session")
def training_fixtures_dir(official_dir: Path) -> Path:
    """The reference training fixtures folder (``official/training``); skips when absent."""
    path = official_dir / "training"
    if not (path / "losses.pt").is_file():
        pytest.skip(f"reference training fixtures not found at {path}")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for the module's tests (the previous count is restored afterwards).

    The machine is shared and the models are tiny: one thread keeps these tests fast and their timings stable.
    Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
