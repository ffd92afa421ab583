"""`make test` lints: ruff (pyflakes, pycodestyle, import order, bugbear, builtins shadowing) passes
on the whole tree, with the rules in pyproject.toml's [tool.ruff]. ruff is a test dependency, so a
venv without it is a broken venv: the test fails and says how to fix it, it never skips."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_passes_on_the_whole_tree():
    assert importlib.util.find_spec("ruff") is not None, (
        "ruff is not installed in this venv; it is a test dependency: run `make venv` (pip install -e '.[test]')"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, f"ruff check . failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
