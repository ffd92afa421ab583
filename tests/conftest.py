"""Shared fixtures. Tests that read ../shared/reference skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Runs that tests drive through the engine never sample the GPUs of the machine running the suite
# (on a GPU box their logs would gain `gpu` events): the engine's environment wins over the config.
# tests/test_gpu.py turns sampling on with a fake NVML where it tests it.
os.environ["PO_TUI_GPU_SAMPLE_S"] = "0"
REFERENCE = Path(os.environ.get("PO_TUI_REFERENCE", ROOT.parent / "shared" / "reference"))


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not present at {REFERENCE}")
    return REFERENCE
