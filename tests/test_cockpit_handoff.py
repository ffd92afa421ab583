"""The UI hands the engine its cockpit: `po-tui` (po_tui/cli.py) opens it, `python -m engine` never does.

Dependencies point one way (tests/test_architecture.py): the engine's `run`, `demo`, `attach` and
bare `po-tui` reach the cockpit only through the `Cockpit` that `po_tui.cli.main` hands
`engine.cli.main`. Here the terminal check is forced true and the cockpit and the detached engine
are stand-ins, so what each side does with a terminal is seen without opening a UI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import engine.cli
import engine.commands.attach
import engine.commands.demo
import engine.commands.run
import engine.pipeline.launch
import po_tui.cli
from engine.pipeline.config import parse_config
from engine.pipeline.runner import create_run


@pytest.fixture
def terminal(monkeypatch):
    """A terminal on both ends, as far as every command is concerned."""
    for module in (engine.cli, engine.commands.attach, engine.commands.run, engine.commands.demo):
        monkeypatch.setattr(module, "can_show_cockpit", lambda: True)


@pytest.fixture
def opened(monkeypatch) -> list[tuple]:
    """Each cockpit the UI side opens (po_tui.cli.attach and pick), recorded instead of drawn."""
    calls: list[tuple] = []

    def attach(run_dir, *, owned=False, back=False):
        calls.append(("attach", Path(run_dir), owned))
        return "detach"

    monkeypatch.setattr(po_tui.cli, "attach", attach)
    monkeypatch.setattr(po_tui.cli, "pick", lambda *runs_dir: calls.append(("pick",)) or 0)
    return calls


@pytest.fixture
def spawned(monkeypatch) -> list[Path]:
    """Runs started detached (for the cockpit to follow), recorded instead of started."""
    runs: list[Path] = []
    monkeypatch.setattr(engine.pipeline.launch, "spawn_engine", lambda run_dir, **kw: runs.append(Path(run_dir)))
    return runs


def _config(tmp_path: Path) -> Path:
    bad = tmp_path / "concepts.jsonl"
    bad.write_text("not json\n")  # the teacher fails at once when the run really goes
    config = tmp_path / "c.yaml"
    config.write_text(f"concepts:\n  file: {bad}\n")
    return config


def test_po_tui_run_on_a_terminal_follows_the_detached_engine_in_the_cockpit(tmp_path, terminal, opened, spawned):
    assert po_tui.cli.main(["run", str(_config(tmp_path)), "--runs-dir", str(tmp_path / "runs")]) == 0  # left running
    assert len(spawned) == 1 and opened == [("attach", spawned[0], True)]


def test_the_engine_alone_runs_headless_on_a_terminal(tmp_path, terminal, opened, spawned, capsys):
    assert engine.cli.main(["run", str(_config(tmp_path)), "--runs-dir", str(tmp_path / "runs")]) == 2  # the failed stage
    assert spawned == [] and opened == []
    out = capsys.readouterr().out
    assert "no cockpit in `python -m engine`: running headless" in out and "teacher: failed" in out


def test_po_tui_demo_on_a_terminal_opens_the_cockpit(tmp_path, terminal, opened, spawned):
    assert po_tui.cli.main(["demo", "--out", str(tmp_path / "demo")]) == 0  # detached from the cockpit
    assert spawned == [tmp_path / "demo"] and opened == [("attach", tmp_path / "demo", True)]


def test_attach_opens_the_cockpit_it_was_handed_and_only_that(tmp_path, terminal, opened):
    run_dir = create_run(tmp_path / "run", parse_config({"teacher": {"provider": "synthetic"}}))
    assert po_tui.cli.main(["attach", str(run_dir)]) == 0
    assert opened == [("attach", run_dir, False)]
    assert engine.cli.main(["attach", str(run_dir)]) == 2
    assert opened == [("attach", run_dir, False)]


def test_po_tui_alone_picks_a_run_and_the_engine_alone_prints_help(terminal, opened, capsys):
    assert po_tui.cli.main([]) == 0 and opened == [("pick",)]
    assert engine.cli.main([]) == 2 and opened == [("pick",)]
    assert "usage: po-tui" in capsys.readouterr().out


def test_po_tui_dir_opens_a_run_or_the_picker_over_a_folder_of_runs(tmp_path, terminal, monkeypatch):
    """`po-tui DIR`: a run directory is attached, any other directory is the picker's runs folder;
    a name that is neither a command nor a directory stays a usage error."""
    calls: list[tuple] = []
    monkeypatch.setattr(po_tui.cli, "attach", lambda run_dir, **kw: calls.append(("attach", Path(run_dir))) or "detach")
    monkeypatch.setattr(po_tui.cli, "pick", lambda runs_dir: calls.append(("pick", Path(runs_dir))) or 0)
    run_dir = create_run(tmp_path / "runs" / "r1", parse_config({"teacher": {"provider": "synthetic"}}))
    assert po_tui.cli.main([str(run_dir)]) == 0
    assert po_tui.cli.main([str(tmp_path / "runs")]) == 0
    assert calls == [("attach", run_dir), ("pick", tmp_path / "runs")]
    with pytest.raises(SystemExit) as exit_:
        po_tui.cli.main([str(tmp_path / "nowhere")])
    assert exit_.value.code == 2 and len(calls) == 2
