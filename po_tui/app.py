"""The cockpit App: tabs of panels over one run directory, fed by a tailing worker.

Data flows one way. A thread worker polls the run directory (`RunFeed`, incremental) and posts
`EventsBatch` messages; their handler folds the events into the `CockpitModel` and marks it
dirty; a 10 Hz timer redraws the visible panels from the model. However fast events arrive, the
screen is redrawn at most ten times a second, and a finished run replays in a few batches.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from po_tui.commands import CockpitCommands
from po_tui.feed import Batch, RunFeed
from po_tui.model import CockpitModel
from po_tui.screens.confirm import ConfirmScreen
from po_tui.screens.help import HelpScreen
from po_tui.screens.report import ReportScreen
from po_tui.widgets.gate import GatePanel
from po_tui.widgets.logs import LogsPanel
from po_tui.widgets.pipeline import PipelinePanel
from po_tui.widgets.teacher import TeacherPanel
from po_tui.widgets.training import TrainingPanel

POLL_S = 0.2  # how often the worker looks for appended events
REDRAW_S = 0.1  # at most 10 redraws a second
TICK_S = 1.0  # running clocks (elapsed, ETA) advance this often without events

TABS = (("pipeline", "Pipeline"), ("teacher", "Teacher"), ("training", "Training"),
        ("evaluation", "Evaluation"), ("gate", "Gate"), ("logs", "Logs"))


class EventsBatch(Message):
    """New events and log lines from the feed worker."""

    def __init__(self, batch: Batch) -> None:
        super().__init__()
        self.batch = batch


def _evaluation_panel(run_dir: Path) -> Any:
    """The Evaluation tab's panel, when po_tui.widgets.evaluation is installed; else a note."""
    try:
        from po_tui.widgets.evaluation import EvaluationPanel
    except ImportError:
        return Static("The evaluation panel is not available in this build.", id="evaluation-missing")
    try:
        return EvaluationPanel(run_dir)
    except Exception as exc:  # its constructor failing must not take the cockpit down
        return Static(f"The evaluation panel failed to start: {type(exc).__name__}", id="evaluation-missing")


class CockpitApp(App[None]):
    """`po-tui attach RUN_DIR`: follow a run, live or finished."""

    CSS_PATH = "po_tui.tcss"
    TITLE = "po-tui"
    COMMANDS = App.COMMANDS | {CockpitCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("r", "open_report", "Report"),
        Binding("c", "cancel_run", "Cancel run"),
        *[Binding(str(i), f"show_tab('{tab}')", title, show=False) for i, (tab, title) in enumerate(TABS, 1)],
    ]

    def __init__(self, run_dir: str | Path, *, poll_s: float = POLL_S, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.model = CockpitModel(self.run_dir)
        self.poll_s = poll_s
        self.clock = clock
        self._dirty = True
        self._pending_logs: list[tuple[str, str, str]] = []
        self.sub_title = self.run_dir.name  # the full path rarely fits in the header

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs"):
            with TabPane("Pipeline", id="pipeline"):
                yield PipelinePanel(id="pipeline-panel")
            with TabPane("Teacher", id="teacher"):
                yield TeacherPanel(id="teacher-panel")
            with TabPane("Training", id="training"):
                yield TrainingPanel(id="training-panel")
            with TabPane("Evaluation", id="evaluation"):
                yield _evaluation_panel(self.run_dir)
            with TabPane("Gate", id="gate"):
                yield GatePanel(id="gate-panel")
            with TabPane("Logs", id="logs"):
                yield LogsPanel(id="logs-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(REDRAW_S, self._redraw)
        self.set_interval(TICK_S, self._tick)
        self._follow()

    # -- the worker and the fold ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="feed")
    def _follow(self) -> None:
        worker = get_current_worker()
        feed = RunFeed(self.run_dir)
        while not worker.is_cancelled:
            try:
                batch = feed.poll()
            except Exception as exc:  # an unreadable file must cost a notice, not the app
                self.call_from_thread(self.notify, f"reading the run: {type(exc).__name__}: {exc}",
                                      severity="error", markup=False)
                batch = Batch()
            if batch:
                self.post_message(EventsBatch(batch))
            if not batch.more:
                time.sleep(self.poll_s)

    def on_events_batch(self, message: EventsBatch) -> None:
        batch = message.batch
        for job in batch.resets:
            self.model.reset_job(job)
        if batch.manifest is not None:
            self.model.manifest = batch.manifest
        for event in batch.events:
            self.model.apply(event)
        for job, stream, line in batch.log_lines:
            self.model.add_log(job, stream, line)
        self._pending_logs.extend(batch.log_lines)
        self._dirty = True

    def _tick(self) -> None:
        if any(j.state == "running" for j in self.model.run.jobs.values()):
            self.model.run.check_liveness()  # a job of this host whose process is gone turns stale
            self._dirty = True

    def _redraw(self) -> None:
        if self._pending_logs:
            lines, self._pending_logs = self._pending_logs, []
            self.query_one(LogsPanel).add_lines(lines)
        if not self._dirty:
            return
        self._dirty = False
        now = self.clock()
        for panel in (PipelinePanel, TeacherPanel, TrainingPanel, GatePanel):
            try:
                self.query_one(panel).show(self.model, now)
            except Exception as exc:  # one panel's bug must not stop the others or the app
                self.notify(f"{panel.__name__}: {type(exc).__name__}: {exc}", severity="error", markup=False)

    # -- actions -------------------------------------------------------------------------------

    def tab_titles(self) -> list[tuple[str, str]]:
        return list(TABS)

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_open_report(self) -> None:
        path = self.run_dir / "report.md"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            self.notify(f"no report yet ({path.name} is written by the report stage)", severity="warning", markup=False)
            return
        self.push_screen(ReportScreen(text))

    def action_cancel_run(self) -> None:
        state = (self.model.manifest or {}).get("state")
        if state not in (None, "running", "pending"):
            self.notify(f"nothing to cancel: the run is {state}", severity="warning", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel()

        self.push_screen(ConfirmScreen(f"Cancel the run in {self.run_dir}?"), answered)

    @work(thread=True, exclusive=True, group="cancel")
    def _cancel(self) -> None:
        """`po-tui cancel RUN_DIR --wait 0` in a child process: the engine's own cancel path."""
        cmd = [sys.executable, "-m", "engine", "cancel", str(self.run_dir), "--wait", "0"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            ok, said = done.returncode == 0, (done.stdout + done.stderr).strip()
        except (OSError, subprocess.SubprocessError) as exc:
            ok, said = False, str(exc)
        self.call_from_thread(self.notify, said[-400:] or ("cancel sent" if ok else "cancel failed"),
                              severity="information" if ok else "error", markup=False)
