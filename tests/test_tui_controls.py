"""Cockpit controls through the engine: what is offered where and why not, resume/retry, leaving a run, the picker."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.pipeline.config import parse_config
from engine.pipeline.manifest import pid_alive, read_manifest
from engine.pipeline.runner import create_run
from engine.views.controls import controls
from po_tui.app import CockpitApp
from po_tui.commands import CockpitCommands
from po_tui.picker import RunsApp
from po_tui.screens.confirm import ConfirmScreen
from po_tui.screens.diff import DiffScreen
from po_tui.screens.leave import LeaveScreen
from po_tui.screens.newrun import NewRunScreen
from tests.test_tui import notifications, screen_text, until
from tests.tui_run import T0, Recorder, finished_run, write_manifest


def _pidfile(run: Path, *, pid: int, host: str) -> None:
    (run / "engine.pid").write_text(json.dumps({"pid": pid, "pgid": pid, "host": host, "started_at": "x", "mode": "detached"}))


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def failing_run(tmp_path: Path) -> Path:
    """A real run whose first stage fails at once: a concepts file that is not JSON."""
    bad = tmp_path / "concepts.jsonl"
    bad.write_text("not json\n")
    run = create_run(tmp_path / "runs" / "r1", parse_config({"concepts": {"file": str(bad)}}))
    done = subprocess.run([sys.executable, "-m", "engine", "run", "--headless", "--resume", str(run)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    return run


# -- what can be done, and why not ------------------------------------------------------------


def test_controls_say_why_for_each_kind_of_run(tmp_path, sleeper):
    run = finished_run(tmp_path / "done")
    found = controls(run, read_manifest(run))
    assert not found.cancel.ok and "the run is succeeded" in found.cancel.why
    assert not found.resume.ok and "config.yaml" in found.resume.why  # a recorded run, not started by po-tui run
    assert not controls(run, None).resume.ok

    (run / "config.yaml").write_text("{}\n")
    found = controls(run, read_manifest(run))
    assert not found.resume.ok and "succeeded: nothing to resume" in found.resume.why  # it would only rewrite states
    write_manifest(run, {"teacher": "succeeded", "train": "cancelled"}, state="cancelled")
    found = controls(run, read_manifest(run))
    assert found.resume.ok and not found.retry.ok and "no failed stage" in found.retry.why

    live = tmp_path / "live"
    live.mkdir()
    write_manifest(live, {"teacher": "running"}, state="running")
    (live / "config.yaml").write_text("{}\n")
    _pidfile(live, pid=sleeper.pid, host="gpu-box-7")
    found = controls(live, read_manifest(live))
    for control in (found.cancel, found.resume, found.retry):
        assert not control.ok and "host gpu-box-7" in control.why
    _pidfile(live, pid=sleeper.pid, host=socket.gethostname())
    found = controls(live, read_manifest(live))
    assert found.cancel.ok and not found.resume.ok and f"pid {sleeper.pid}" in found.resume.why


async def test_a_run_driven_from_another_host_is_read_only_and_says_why(tmp_path, sleeper):
    run = tmp_path / "remote"
    run.mkdir()
    write_manifest(run, {"teacher": "running"}, state="running")
    Recorder(run / "teacher.events.jsonl", "teacher", T0).started("teacher")
    _pidfile(run, pid=sleeper.pid, host="gpu-box-7")
    app = CockpitApp(run, poll_s=0.05)
    said = notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "gpu-box-7" in screen_text(app))
        await pilot.press("c")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("cannot cancel: the engine runs on host gpu-box-7" in n.message for n in said)
        await pilot.press("R")
        await pilot.pause(0.1)
        assert any("cannot resume" in n.message for n in said)
        helps = {name: help_text for name, help_text, _ in CockpitCommands(app.screen).entries()}
        assert helps["Cancel run"].startswith("unavailable: the engine runs on host gpu-box-7")
        assert helps["Resume run"].startswith("unavailable:")


async def test_retry_failed_from_the_cockpit_goes_through_the_engine(tmp_path):
    run = failing_run(tmp_path)
    assert read_manifest(run)["state"] == "failed"
    app = CockpitApp(run, poll_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "F retry failed" in screen_text(app))
        await pilot.press("F")
        # the detached engine runs the failed stage again; it fails again on the same bad file
        await until(pilot, lambda: sum(json.loads(line)["type"] == "job_started"
                                       for line in (run / "teacher.events.jsonl").read_text().splitlines()) == 2, timeout=60)
        await until(pilot, lambda: read_manifest(run)["state"] == "failed" and not _engine_alive(run), timeout=60)
        assert app.owned
        await until(pilot, lambda: app.controls.retry.ok)
    assert "--retry-failed" in (run / "engine.log").read_text()


def _engine_alive(run: Path) -> bool:
    try:
        return pid_alive(json.loads((run / "engine.pid").read_text())["pid"])
    except (OSError, ValueError):
        return False  # the engine removes its pidfile when it ends


# -- leaving a run this cockpit started ----------------------------------------------------


async def test_quitting_a_live_owned_run_asks_to_leave_it_or_cancel(tmp_path, sleeper):
    run = tmp_path / "owned"
    run.mkdir()
    write_manifest(run, {"teacher": "running"}, state="running")
    Recorder(run / "teacher.events.jsonl", "teacher", T0).started("teacher")
    _pidfile(run, pid=sleeper.pid, host=socket.gethostname())
    app = CockpitApp(run, poll_s=0.05, owned=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.controls.cancel.ok)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, LeaveScreen))
        await pilot.press("escape")  # stay
        await until(pilot, lambda: not isinstance(app.screen, LeaveScreen))
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, LeaveScreen))
        await pilot.press("d")
    assert app.return_value == "detach"
    assert sleeper.poll() is None  # leaving it running touched nothing


async def test_quitting_an_attached_run_never_asks(tmp_path, sleeper):
    run = tmp_path / "theirs"
    run.mkdir()
    write_manifest(run, {"teacher": "running"}, state="running")
    _pidfile(run, pid=sleeper.pid, host=socket.gethostname())
    app = CockpitApp(run, poll_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.controls.cancel.ok)
        await pilot.press("q")
    assert app.return_value is None


# -- jump to a case and live evaluation --------------------------------------------------------


async def test_palette_jumps_to_a_case_and_new_results_appear_live(tmp_path):
    from tests.eval_files import scored_cases, write_results

    run = finished_run(tmp_path / "run")
    app = CockpitApp(run, poll_s=0.05)
    said = notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: len(app.cases()) == 4)
        names = [name for name, _, _ in CockpitCommands(app.screen).entries()]
        assert "Case POCON-0002" in names
        app.open_case("POCON-0002")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen))
        assert app.query_one("TabbedContent").active == "evaluation"
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DiffScreen))
        app.open_case("POCON-9999")
        await pilot.pause(0.1)
        assert any("no evaluated case POCON-9999" in n.message for n in said)
        # a teacher evaluation written after the cockpit opened shows up without a key press
        write_results(run / "eval", "teacher", "20251123_120000", scored_cases([0.97, 0.96, 0.95, 0.94]))
        await until(pilot, lambda: "0.970" in screen_text(app))


# -- the picker ---------------------------------------------------------------------------------


async def test_picker_lists_runs_newest_first_and_opens_one(tmp_path):
    root = tmp_path / "runs"
    old = finished_run(root / "20251120-090000-aaaa")
    new = finished_run(root / "20251122-090000-bbbb")
    for path, created in ((old, "2025-11-20T09:00:00Z"), (new, "2025-11-22T09:00:00Z")):
        doc = json.loads((path / "manifest.json").read_text())
        doc.update(run_id=path.name, created_at=created)
        (path / "manifest.json").write_text(json.dumps(doc))
    app = RunsApp([root, tmp_path / "absent"])
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: len(app.rows) == 2)
        assert [Path(r["path"]).name for r in app.rows] == [new.name, old.name]
        await until(pilot, lambda: "2 run(s)" in screen_text(app) and "PASS" in screen_text(app))
        await pilot.press("down")
        await pilot.press("enter")
    assert app.return_value == ("open", old)


async def test_picker_starts_a_run_from_a_config_and_refuses_a_bad_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("teacher:\n  min_scor: 0.8\n")
    bad = tmp_path / "concepts.jsonl"
    bad.write_text("not json\n")
    (tmp_path / "good.yaml").write_text(f"concepts:\n  file: {bad}\n")
    app = RunsApp([tmp_path / "runs"], runs_dir=tmp_path / "runs")
    said = notifications(app)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        screen = app.screen
        screen.query_one("Input").value = "missing.yaml"
        await pilot.press("enter")
        await until(pilot, lambda: "no such file" in screen_text(app))
        screen.query_one("Input").value = "bad.yaml"
        await pilot.press("enter")
        await until(pilot, lambda: any("bad.yaml:2: teacher.min_scor: unknown key" in n.message for n in said))
        assert not (tmp_path / "runs").exists()  # nothing created for a config that does not validate
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        app.screen.query_one("Input").value = "good.yaml"
        await pilot.press("enter")
        await until(pilot, lambda: app.return_value is not None, timeout=30)
    what, run = app.return_value
    assert what == "started" and run.parent == tmp_path / "runs"
    deadline = time.time() + 60
    while time.time() < deadline and read_manifest(run)["state"] not in ("failed", "succeeded"):
        time.sleep(0.2)
    assert read_manifest(run)["state"] == "failed"  # the engine really ran it (and the bad concepts failed it)


@pytest.mark.parametrize("module", ["po_tui", "engine"])
def test_po_tui_alone_without_a_terminal_prints_help(module):
    done = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 2 and "usage: po-tui" in done.stdout


def test_no_color_makes_the_cockpit_monochrome(tmp_path, monkeypatch):
    from textual.filter import Monochrome

    monkeypatch.setenv("NO_COLOR", "1")
    app = CockpitApp(finished_run(tmp_path / "run"))
    assert app.no_color and any(isinstance(f, Monochrome) for f in app.get_line_filters())


def test_gate_panel_judges_with_the_runs_own_gates(tmp_path):
    from engine.pipeline.config import run_gate_options
    from po_tui.widgets.gate import gate_options

    argv = ["gate", "b.json", "s.json", "--gates", "/x/pass.yaml", "--resamples", "500", "--seed", "3"]
    assert gate_options(argv) == {"gates_file": "/x/pass.yaml", "resamples": 500, "seed": 3}
    assert gate_options(["gate", "--preset", "seeds", "--seed"]) == {"preset": "seeds"}
    assert run_gate_options(tmp_path) == {}  # no config: the gate's defaults
    (tmp_path / "config.yaml").write_text("gate:\n  gates: /x/pass.yaml\n  resamples: 200\n")
    assert run_gate_options(tmp_path) == {"gates_file": "/x/pass.yaml", "resamples": 200, "seed": 0}


def test_run_without_a_terminal_runs_headless_with_a_note(tmp_path, capsys):
    from engine.cli import main

    bad = tmp_path / "concepts.jsonl"
    bad.write_text("not json\n")
    (tmp_path / "c.yaml").write_text(f"concepts:\n  file: {bad}\n")
    assert main(["run", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs")]) == 2  # the failed stage
    out = capsys.readouterr().out
    assert "no terminal for the cockpit: running headless" in out and "teacher: failed" in out


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")
@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_attach_in_a_real_terminal_under_tmux(tmp_path, size):
    """The real CLI in a tmux pane: every tab shows its data, keys work, q ends the process."""
    run = finished_run(tmp_path / "run")
    session = f"po-tui-test-{os.getpid()}-{size[0]}"
    socket_name = f"po-tui-test-{os.getpid()}"
    tmux = ["tmux", "-L", socket_name]
    command = f"{sys.executable} -m po_tui attach {run}; echo EXITED=$?; sleep 30"
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), command], check=True,
                   env={**os.environ, "TERM": "xterm-256color"})

    def pane() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def wait(*words: str, timeout: float = 20.0) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = pane()
            if all(w in text for w in words):
                return text
            time.sleep(0.2)
        raise AssertionError(f"{words} not on screen:\n{pane()}")

    try:
        wait("gate PASS", "8/8 steps", "eval-student")
        for key, words in (("2", ("3 / 8 target", "score histogram")), ("3", ("train loss: last",)), ("4", ("POCON-0001", "tier means")),
                           ("5", ("verdict PASS",)), ("6", ("teacher says hello",))):
            subprocess.run([*tmux, "send-keys", "-t", session, key], check=True)
            text = wait(*words)
        assert "[bold red]boom[/]" in text  # the hostile log line shows literally
        subprocess.run([*tmux, "send-keys", "-t", session, "4"], check=True)
        subprocess.run([*tmux, "send-keys", "-t", session, "Enter"], check=True)
        wait("baseline", "student", "score")
        subprocess.run([*tmux, "send-keys", "-t", session, "Escape"], check=True)
        wait("tier means")  # the escape was read on its own: followed at once by a key it reads as alt+key
        subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True)
        wait("EXITED=0")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
