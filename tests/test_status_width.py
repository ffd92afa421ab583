"""`po-tui status` at 80 columns: no line wider than the terminal, no word split across lines,
and the same information as on a wide terminal (columns cut with an ellipsis, never folded)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from engine.cli import main
from tests.test_status import Log, recorded_run
from tests.tui_run import finished_run

STATES = ("succeeded", "running", "failed", "pending", "cancelled", "skipped")


def _live_run(run: Path) -> Path:
    """A run mid-flight: a job alive on this host with progress, rate, ETA and a long label."""
    t = 1_763_900_000.0
    Log(run, "teacher", t).start("teacher", pid=os.getpid(), host=socket.gethostname())(
        "progress", done=70, total=80, unit="records", label="concept POCON-0070 medium tier")(
        "progress", done=71, total=80, unit="records")
    Log(run, "train", t).start("train")("progress", done=3, total=10, unit="steps").finish("failed", exit_code=2)
    Log(run, "eval-baseline-with-a-long-job-name", t).start("eval")("progress", done=4, total=4, unit="cases").finish()
    return run


def _status_text(capsys, monkeypatch, run: Path, columns: int) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["status", str(run)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("make", [finished_run, recorded_run, _live_run])
def test_status_fits_80_columns_without_splitting_words(tmp_path, capsys, monkeypatch, make):
    run = tmp_path / "run"
    made = make(run)
    run = made if isinstance(made, Path) else run
    narrow = _status_text(capsys, monkeypatch, run, 80)
    wide = _status_text(capsys, monkeypatch, run, 1000)
    lines = narrow.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), narrow
    wide_words = set(wide.split())
    for word in (w for w in narrow.split() if set(w) != {"─"}):  # the table's rule is not a word
        # every word is whole (a word of the wide rendering), or cut at its end with an ellipsis
        # (a narrow layout moves process, rate and numbers to a `job: pid ...` line under the table)
        whole = word in wide_words or word.rstrip(":") in wide_words or word == "pid"
        cut = word.endswith("…") and any(w.startswith(word[:-1]) for w in wide_words)
        assert whole or cut, f"{word!r} split in:\n{narrow}"
    for state in STATES:  # the states are never cut
        assert wide.count(state) == narrow.count(state) == sum(w == state for w in narrow.split())
    assert len(lines) <= len(wide.splitlines()) + 12  # compact: not one word a line
