"""`po-tui attach` without a terminal: one line and exit 2 (it used to wait forever for keys)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.pipeline.config import parse_config
from engine.pipeline.runner import create_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return create_run(tmp_path / "run", parse_config({"teacher": {"provider": "synthetic"}}))


def _attach(run_dir: Path, *, stdin: int, stdout: int, term: str = "xterm") -> tuple[int, str]:
    env = {**os.environ, "TERM": term}
    proc = subprocess.run([sys.executable, "-m", "engine", "attach", str(run_dir)], cwd=ROOT, stdin=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, env=env, timeout=60)
    return proc.returncode, proc.stderr.decode()


def _assert_refused(code: int, err: str, run_dir: Path) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("po-tui attach: error: the cockpit needs a terminal") and f"po-tui status --follow {run_dir}" in err


def test_attach_with_pipes_for_stdin_and_stdout_is_refused_at_once(run_dir):
    _assert_refused(*_attach(run_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE), run_dir)


def test_attach_needs_a_terminal_on_both_ends_that_can_draw(run_dir):
    primary, secondary = os.openpty()
    try:
        _assert_refused(*_attach(run_dir, stdin=secondary, stdout=subprocess.PIPE), run_dir)  # output piped
        _assert_refused(*_attach(run_dir, stdin=subprocess.DEVNULL, stdout=secondary), run_dir)  # input from nowhere
        _assert_refused(*_attach(run_dir, stdin=secondary, stdout=secondary, term="dumb"), run_dir)
    finally:
        os.close(primary)
        os.close(secondary)


def test_attach_still_checks_the_run_directory_first(tmp_path):
    code, err = _attach(tmp_path / "nope", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert code == 2 and "no such run directory" in err and err.count("\n") == 1
