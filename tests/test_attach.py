"""`po-tui attach` without a terminal: one line and exit 2 (it used to wait forever for keys).

The `po-tui` script is po_tui/cli.py (`python -m po_tui`), which hands the engine its cockpit;
`python -m engine` has none, so there `attach` says so in one line instead of opening the UI.
"""

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


def _attach(run_dir: Path, *, stdin: int, stdout: int, term: str = "xterm", module: str = "po_tui") -> tuple[int, str]:
    env = {**os.environ, "TERM": term}
    proc = subprocess.run([sys.executable, "-m", module, "attach", str(run_dir)], cwd=ROOT, stdin=stdin, stdout=stdout,
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


def test_the_engine_alone_has_no_cockpit_and_says_so_even_on_a_terminal(run_dir):
    """`python -m engine attach` on a real terminal: one line, exit 2, no UI (it used to import po_tui)."""
    primary, secondary = os.openpty()
    try:
        code, err = _attach(run_dir, stdin=secondary, stdout=secondary, module="engine")
    finally:
        os.close(primary)
        os.close(secondary)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("po-tui attach: error: the cockpit is not part of `python -m engine`")
    assert f"po-tui attach {run_dir}" in err and f"po-tui status --follow {run_dir}" in err
