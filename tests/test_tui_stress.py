"""The cockpit under churn: events stream in while every modal is pushed and popped, tabs switch, the app quits.

No timer, worker, handler or callback may raise (Textual ends the app: `NoMatches ... LogsPanel` from
the redraw timer firing while the app pruned its screens on the way out was one), and none may even
fault quietly: po_tui.guard records what its guards caught, and these tests ask for none. They are
deterministic by construction: the test writes the events itself between steps and waits on
conditions (`until`), never on a sleep; the timers are made fast so they fire during every step.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import pytest
from textual import events
from textual.command import CommandPalette

import po_tui.app as cockpit
import po_tui.picker as picker
from po_tui.app import CockpitApp
from po_tui.feed import LogLine
from po_tui.guard import FAULT_TITLE, deliver, faults, guarded
from po_tui.picker import RunsApp
from po_tui.screens.confirm import ConfirmScreen
from po_tui.screens.diff import DiffScreen
from po_tui.screens.help import HelpScreen
from po_tui.screens.leave import LeaveScreen
from po_tui.screens.newrun import NewRunScreen
from po_tui.screens.report import ReportScreen
from po_tui.widgets.logs import LogsPanel
from tests.eval_files import scored_cases, write_results
from tests.test_tui import notifications, until
from tests.tui_run import HOSTILE, T0, Recorder, finished_run, write_manifest

QUITS = ("q", "exit under help", "exit under diff", "exit under palette", "exit while pushing")  # one session each
WAIT = 20.0  # generous: the machine may be shared; a pass never waits this long


@pytest.fixture(autouse=True)
def fast_timers(monkeypatch):
    """Redraw, tick and evaluation timers many times a second, so they fire inside every step below."""
    monkeypatch.setattr(cockpit, "REDRAW_S", 0.03)
    monkeypatch.setattr(cockpit, "TICK_S", 0.1)
    monkeypatch.setattr(cockpit, "EVAL_S", 0.1)
    monkeypatch.setattr(picker, "REFRESH_S", 0.02)


class Stream:
    """A live job the test appends to between steps: events, stdout/stderr lines, a replaced log."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self.events = run / "stress.events.jsonl"
        self.rec = Recorder(self.events, "stress", T0 + 500)
        self.done = 0
        self.rec.started("train")

    def step(self, n: int = 8) -> None:
        lines = []
        for _ in range(n):
            self.done += 1
            lines.append(self.rec.line("train_step", step=self.done, max_steps=100_000, loss=1.0 / self.done,
                                       learning_rate=1e-4, tokens_per_s=1000.0))
            lines.append(self.rec.line("progress", done=self.done, total=100_000, unit="steps"))
        lines.append(self.rec.line("log", level="warning", message=HOSTILE))
        with open(self.events, "a", encoding="utf-8") as fh:
            fh.writelines(lines)
        for stream in ("stdout", "stderr"):
            with open(self.run / f"stress.{stream}.log", "a", encoding="utf-8") as fh:
                fh.writelines(f"{stream} line {self.done}-{i} {HOSTILE}\n" for i in range(5))

    def replace(self) -> None:
        """The job's log replaced by a shorter one (a job started again): the cockpit resets it."""
        self.rec = Recorder(self.events, "stress", T0 + 500)
        self.events.write_text(self.rec.line("job_started", stage="train", pid=None, host="recorded-host", resumed=True))
        self.rec.seq, self.done = 1, 0


async def pushed(pilot, app, kind) -> None:
    await until(pilot, lambda: isinstance(app.screen, kind), timeout=WAIT)


async def popped(pilot, app) -> None:
    await until(pilot, lambda: len(app.screen_stack) == 1, timeout=WAIT)


MODALS = (HelpScreen, ReportScreen, CommandPalette, DiffScreen, ConfirmScreen, LeaveScreen, NewRunScreen)
KEYS = {HelpScreen: "question_mark", ReportScreen: "r", CommandPalette: "ctrl+p"}  # opened by their key too


def open_modal(app: CockpitApp, kind) -> None:
    """What the cockpit does on the key or command that shows `kind` (the actions, not the keys: see below)."""
    if kind is HelpScreen:
        app.action_help()
    elif kind is ReportScreen:
        app.action_open_report()
    elif kind is CommandPalette:
        app.action_command_palette()
    elif kind is DiffScreen:
        app.open_case("POCON-0001")
    elif kind is ConfirmScreen:
        app.push_screen(ConfirmScreen("Cancel the run?"), lambda yes: None)
    elif kind is LeaveScreen:
        app.push_screen(LeaveScreen(str(app.run_dir)), lambda choice: None)
    else:
        app.push_screen(NewRunScreen())


async def every_modal_once(pilot, app: CockpitApp, stream: Stream, by_key: type) -> None:
    """Push and pop each screen the cockpit can show, streaming events while each is up.

    Actions and dismiss() rather than key presses: a press waits for the app to go idle (up to
    two seconds while it is busy ingesting). One modal per session goes through the keys.
    """
    for kind in MODALS:
        if kind is by_key and kind in KEYS:
            await pilot.press(KEYS[kind])
        else:
            open_modal(app, kind)
        await pushed(pilot, app, kind)
        stream.step()
        await pilot.pause(0.05)  # the feed and the timers run under the modal
        stream.step()
        if kind is by_key:
            await pilot.press("escape")
        else:
            app.screen.dismiss(None)
        await popped(pilot, app)
        stream.step()


async def test_streaming_while_every_modal_comes_and_goes_and_the_app_quits(tmp_path):
    run = finished_run(tmp_path / "run")
    stream = Stream(run)
    for session, how in enumerate(QUITS):
        if session == 2:
            stream.replace()
        if session == 3:  # new results while a diff of the older ones may be open
            write_results(run / "eval", "teacher", f"20251123_12000{session}", scored_cases([0.97, 0.96, 0.95, 0.94]))
        app = CockpitApp(run, poll_s=0.02)
        said = notifications(app)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda app=app: len(app.cases()) == 4, timeout=WAIT)
            for tab, _ in cockpit.TABS:
                app.action_show_tab(tab)
                stream.step()
                await pilot.pause(0.02)
            await pilot.press(str(1 + session % 6))  # and one tab by its key
            assert app.query_one("TabbedContent").active == cockpit.TABS[session % 6][0]
            await every_modal_once(pilot, app, stream, MODALS[session % len(MODALS)])
            want = stream.done
            await until(pilot, lambda app=app, want=want: app.model.run.jobs["stress"].progress_done == want, timeout=WAIT)
            assert app.query_one(LogsPanel).line_count > 0
            stream.step()
            if how == "q":
                await pilot.press("q")
            elif how == "exit under help":
                await pilot.press("question_mark")
                await pushed(pilot, app, HelpScreen)
                app.exit()
            elif how == "exit under diff":
                app.open_case("POCON-0002")
                await pushed(pilot, app, DiffScreen)
                app.exit()
            elif how == "exit under palette":
                await pilot.press("ctrl+p")
                await pushed(pilot, app, CommandPalette)
                app.exit()
            else:  # the stack changes and the app goes in the same breath
                app.push_screen(HelpScreen())
                app.exit()
            stream.step()
        assert app.return_code == 0, how
        assert faults(app) == [], how
        assert not [n for n in said if n.title == FAULT_TITLE], how


async def test_the_runs_picker_refreshing_under_its_new_run_screen_and_quitting(tmp_path):
    root = tmp_path / "runs"

    def add(name: str) -> None:
        (root / name).mkdir(parents=True)
        write_manifest(root / name, {"teacher": "succeeded"})

    add("20251120-090000-aaaa")
    for session in range(2):
        app = RunsApp([root], runs_dir=root)
        async with app.run_test(size=(100, 30)) as pilot:
            for i in range(4):
                by_key = i == session
                if by_key:
                    await pilot.press("n")
                else:
                    app.action_new_run()
                await pushed(pilot, app, NewRunScreen)
                add(f"20251121-09000{i}-s{session}")  # the list grows and shrinks under the modal
                shutil.rmtree(root / f"20251121-09000{i}-s{session}")
                add(f"20251121-09000{i}-s{session}")
                want = len(list(root.iterdir()))
                await pilot.pause(0.05)
                if by_key:
                    await pilot.press("escape")
                else:
                    app.screen.dismiss(None)
                await popped(pilot, app)
                await until(pilot, lambda app=app, want=want: len(app.rows) == want, timeout=WAIT)
            app.action_new_run()
            await pushed(pilot, app, NewRunScreen)
            add(f"20251122-090000-s{session}")
            app.exit()
        assert app.return_code == 0
        assert faults(app) == []


async def test_callbacks_that_land_after_the_app_closed_do_nothing(tmp_path):
    """A timer tick, a worker's late result or a dismiss callback after the screens are gone."""
    run = finished_run(tmp_path / "run")
    app = CockpitApp(run, poll_s=0.01)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.events > 0 and len(app.cases()) == 4, timeout=WAIT)
    app._pending_logs.append(LogLine("teacher", "stdout", "a line read as the app closed", time.time()))
    app._dirty = True
    app._redraw()
    app._tick()
    app._refresh_evaluation()
    app._set_controls(app.controls)
    app.gate._computed(None, "late")
    app.evaluation._after_refresh(True)
    assert faults(app) == []
    started = time.monotonic()
    assert deliver(app, app.notify, "nobody is listening") is False  # dropped, not waited on
    assert time.monotonic() - started < 1.0


async def test_a_fault_in_a_panel_is_one_notification_and_the_app_goes_on(tmp_path):
    run = finished_run(tmp_path / "run")
    app = CockpitApp(run, poll_s=0.01)
    said = notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.events > 0, timeout=WAIT)
        await app.teacher.remove_children()  # its show() now finds no body: a bug stand-in
        for _ in range(3):
            Recorder(run / "teacher.events.jsonl", "teacher", T0 + 50).log("info", "more")
            await until(pilot, lambda: len(faults(app)) >= 1, timeout=WAIT)
            await pilot.pause(0.05)
        shown = [n for n in said if n.title == FAULT_TITLE]
        assert len(shown) == 1 and "TeacherPanel: NoMatches" in shown[0].message
        await pilot.press("5")  # still answering keys, the other panels still drawn
        assert app.query_one("TabbedContent").active == "gate"
        app.exit()
    assert app.return_code == 0


async def test_a_failing_worker_or_handler_is_reported_not_raised(tmp_path):
    run = finished_run(tmp_path / "run")
    app = CockpitApp(run, poll_s=0.01)
    said = notifications(app)
    seen = threading.Event()

    class Boom:
        @guarded
        def from_a_thread(self) -> None:
            seen.set()
            raise RuntimeError("worker bug")

    boom = Boom()
    boom.app = app  # what a widget's .app gives
    async with app.run_test(size=(100, 30)) as pilot:
        thread = threading.Thread(target=boom.from_a_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert seen.is_set()
        await until(pilot, lambda: any(n.title == FAULT_TITLE and "worker bug" in n.message for n in said),
                    timeout=WAIT)
        app.exit()
    assert app.return_code == 0 and faults(app) == ["Boom.from_a_thread: RuntimeError: worker bug"]


async def test_the_new_run_screen_refuses_a_path_the_system_cannot_take(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = RunsApp([tmp_path / "runs"], runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("n")
        await pushed(pilot, app, NewRunScreen)
        for value, said in (("x" * 5000, "not a usable path (File name too long)"), ("a\x00b.yaml", "no such file")):
            app.screen.query_one("Input").value = value
            await pilot.press("enter")
            await until(pilot, lambda said=said: said in str(app.screen.query_one("#newrun-error").content), timeout=WAIT)
            assert isinstance(app.screen, NewRunScreen)
            app.screen.query_one("#newrun-error").update("")
        app.exit()
    assert app.return_code == 0 and faults(app) == []


async def test_a_tab_key_and_enter_read_in_one_go_open_the_case(tmp_path):
    """Keys typed faster than the app reads them: the Enter after "4" goes to the table "4" focused."""
    run = finished_run(tmp_path / "run")
    app = CockpitApp(run, poll_s=0.01)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda app=app: len(app.cases()) == 4, timeout=WAIT)
        await pilot.press("6")
        for key, char in (("4", "4"), ("enter", "\r")):  # both queued before either is handled
            app.post_message(events.Key(key, char))
        await pushed(pilot, app, DiffScreen)
        app.exit()
    assert app.return_code == 0 and faults(app) == []


def test_nothing_in_the_cockpit_calls_call_from_thread():
    """It blocks its worker until the UI thread runs the callback: forever, when the app closed first."""
    root = Path(cockpit.__file__).parent
    users = [str(p.relative_to(root)) for p in root.rglob("*.py") if "call_from_thread(" in p.read_text(encoding="utf-8")]
    assert users == []


async def test_hostile_event_payloads_are_folded_or_passed_over_never_a_fault(tmp_path):
    """Valid envelopes with payloads no stage writes (infinite or huge scores, lists where strings go,
    devices that are not mappings): the fold takes what it can, reports nothing, and the events
    after them are still folded."""
    run = finished_run(tmp_path / "run")
    rec = Recorder(run / "teacher.events.jsonl", "teacher", T0 + 60)
    rec.emit("teacher_sample", concept_id="x", variant=0, outcome="accepted", score=-1e308, status="aligned")
    rec.emit("teacher_sample", concept_id=["x"], variant={"v": 1}, outcome="rejected", score=None, status=["s"])
    rec.emit("teacher_sample", concept_id=["x"], variant={"v": 1}, outcome="accepted", score=1e308, status="aligned")
    rec.emit("teacher_batch", job=5, state=["x"], requests="many", eta_s="soon")
    rec.emit("teacher_stats", accepted="NaN", rejected=None, per_phase=[None, 5, {"phase": "x", "model": ["m"]}], statuses=[1])
    rec.emit("gpu", interval_s=-1, devices=[None, 3, {"index": "a", "util_pct": 1e308, "name": "[red]GPU\x07"}])
    rec.emit("teacher_sample", concept_id="last", variant=0, outcome="accepted", score=0.95, status="aligned")
    app = CockpitApp(run, poll_s=0.01)
    said = notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.model.samples.accepted >= 3, timeout=WAIT)
        for key in "123456":
            await pilot.press(key)
            await pilot.pause(0.1)
        assert faults(app) == [] and not [n for n in said if n.title == FAULT_TITLE]
        assert app.model.samples.bins[0] >= 1 and app.model.samples.bins[-1] >= 2  # -1e308 and 1e308 at the ends
        app.exit()
    assert app.return_code == 0
