"""The cockpit App: tabs of panels over one run directory, fed by a tailing worker.

Data flows one way. A thread worker polls the run directory (`RunFeed`, incremental) and posts
`EventsBatch` messages; their handler folds the events into the `CockpitModel` and marks it
dirty; a 10 Hz timer redraws the visible panels from the model. However fast events arrive, the
screen is redrawn at most ten times a second, and a finished run replays in a few batches.

Nothing here may raise into Textual (it would end the app): every timer, handler, action and
worker is `guarded` (po_tui/guard.py), workers hand results back with `deliver` (never blocking),
and the panels are held by reference from compose, not looked up from timers that keep firing
while the app prunes its screens on the way out.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Header, Static, TabPane
from textual.worker import get_current_worker

from engine.core.inert import one_line
from engine.errors import InputError
from engine.views.controls import Control, Controls, controls
from po_tui.commands import CockpitCommands
from po_tui.feed import Batch, LogLine, RunFeed
from po_tui.guard import barrier, deliver, guarded, live, report
from po_tui.model import CockpitModel
from po_tui.screens.confirm import ConfirmScreen
from po_tui.screens.help import HelpScreen
from po_tui.screens.leave import CANCEL, DETACH, LeaveScreen
from po_tui.screens.report import ReportScreen
from po_tui.widgets.gate import GatePanel
from po_tui.widgets.gpu import GpuStrip
from po_tui.widgets.logs import LogsPanel
from po_tui.widgets.pipeline import PipelinePanel
from po_tui.widgets.tabs import CockpitTabs
from po_tui.widgets.teacher import TeacherPanel
from po_tui.widgets.training import TrainingPanel

POLL_S = 0.2  # how often the worker looks for appended events
REDRAW_S = 0.1  # at most 10 redraws a second
TICK_S = 1.0  # running clocks (elapsed, ETA) advance this often without events
EVAL_S = 1.0  # the evaluation table looks for new or grown results files this often

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


class CockpitApp(App[str | None]):
    """`po-tui attach RUN_DIR`: follow a run, live or finished.

    `owned`: this cockpit started the run (`po-tui run CONFIG`, the picker), so quitting while it
    goes asks whether to leave it running or cancel it. `back`: opened from the runs picker, `b`
    returns there. The app's return value says how it ended: "back", "detach", "cancel" or None.
    """

    CSS_PATH = "po_tui.tcss"
    TITLE = "po-tui"
    COMMANDS = App.COMMANDS | {CockpitCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("r", "open_report", "Report"),
        Binding("c", "cancel_run", "Cancel run"),
        Binding("R", "resume_run", "Resume", show=False),
        Binding("F", "resume_run(True)", "Retry failed", show=False),
        Binding("b", "back", "Runs", show=False),
        *[Binding(str(i), f"show_tab('{tab}')", title, show=False) for i, (tab, title) in enumerate(TABS, 1)],
    ]

    def __init__(self, run_dir: str | Path, *, poll_s: float = POLL_S, clock: Callable[[], float] = time.time,
                 owned: bool = False, back: bool = False) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.owned = owned
        self.back = back
        self.controls = controls(self.run_dir, None)
        self.model = CockpitModel(self.run_dir)
        self.poll_s = poll_s
        self.clock = clock
        self._dirty = True
        self._pending_logs: list[LogLine] = []
        self._folded = threading.Event()
        self._folded.set()
        self.sub_title = self.run_dir.name  # the full path rarely fits in the header
        # The panels, by reference: made once here, drawn by the timers without a DOM query.
        self.tabs = CockpitTabs(id="tabs")
        self.pipeline = PipelinePanel(id="pipeline-panel")
        self.teacher = TeacherPanel(id="teacher-panel")
        self.training = TrainingPanel(id="training-panel")
        self.evaluation: Any = _evaluation_panel(self.run_dir)
        self.gate = GatePanel(id="gate-panel")
        self.logs = LogsPanel(id="logs-panel")
        self.gpu = GpuStrip(id="gpu-strip")  # on the Pipeline tab, under its panel (hidden without GPU samples)

    def compose(self) -> ComposeResult:
        yield Header()
        panels = (self.pipeline, self.teacher, self.training, self.evaluation, self.gate, self.logs)
        with self.tabs:
            for (tab, title), panel in zip(TABS, panels, strict=True):
                with TabPane(title, id=tab):
                    yield panel
                    if tab == "pipeline":
                        yield self.gpu
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        self.set_interval(REDRAW_S, self._redraw)
        self.set_interval(TICK_S, self._tick)
        self.set_interval(EVAL_S, self._refresh_evaluation)
        self._follow()
        self._check_controls()

    # -- the worker and the fold ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="feed")
    @guarded
    def _follow(self) -> None:
        worker = get_current_worker()
        feed = RunFeed(self.run_dir)
        while not worker.is_cancelled:
            # At most one batch in flight: a UI thread held up never has slices piling up behind it.
            if not self._folded.wait(timeout=1.0):
                continue
            try:
                batch = feed.poll()
            except Exception as exc:  # an unreadable file must cost a notice (once), not the app
                report(self, "reading the run", exc)
                batch = Batch()
            if batch:
                self._folded.clear()
                if not self.post_message(EventsBatch(batch)):
                    return  # the app is closing: nobody will fold it
            if not batch.more:
                time.sleep(self.poll_s)

    @guarded
    def on_events_batch(self, message: EventsBatch) -> None:
        try:
            self._fold(message.batch)
        finally:
            self._folded.set()  # the worker may read the next slice

    def _fold(self, batch: Batch) -> None:
        for job in batch.resets:
            self.model.reset_job(job)
        if batch.manifest is not None:
            self.model.manifest = batch.manifest
            self._check_controls()
        for event in batch.events:
            # One event the fold cannot take (a stage's bug, a hand-edited log) is reported once and
            # passed over; it must not drop the rest of the batch.
            with barrier(self, f"event {one_line(event.get('type'), 40)} of {one_line(event.get('job'), 40)}"):
                self.model.apply(event)
        for line in batch.log_lines:
            self.model.add_log(line.job, line.stream, line.text)
        self._pending_logs.extend(batch.log_lines)
        self._dirty = True

    @guarded
    def on_gate_panel_formed(self, message: GatePanel.Formed) -> None:
        self._dirty = True  # the overview shows the criteria the gate panel computed

    @guarded
    def _tick(self) -> None:
        if not live(self.pipeline):
            return  # closing: no controls to check for nobody
        if any(j.state == "running" for j in self.model.run.jobs.values()):
            self.model.run.check_liveness()  # a job of this host whose process is gone turns stale
            self._dirty = True
        if self.gpu.live:
            self._dirty = True  # live GPU numbers turn stale when samples stop coming
        self._check_controls()

    @work(thread=True, exclusive=True, group="controls")
    @guarded
    def _check_controls(self) -> None:
        """Which controls can work (engine.pid, process groups): file and /proc reads, so a thread."""
        try:
            found = controls(self.run_dir, self.model.manifest and dict(self.model.manifest))
        except Exception as exc:  # never a crash: the controls say why instead
            no = Control(False, f"cannot tell ({type(exc).__name__})")
            found = Controls(no, no, no)
        deliver(self, self._set_controls, found)

    @guarded
    def _set_controls(self, found: Controls) -> None:
        if found != self.controls:
            self.controls = found
            self._dirty = True

    @guarded
    def _refresh_evaluation(self) -> None:
        panel = self._evaluation()
        if panel is not None and live(panel):
            panel.refresh_in_background()

    @guarded
    def _redraw(self) -> None:
        if not live(self.pipeline):
            return  # not mounted yet, or the screens are being taken down: the next draw is nobody's
        if self._pending_logs:
            lines, self._pending_logs = self._pending_logs, []
            self.logs.add_lines(lines)
        if not self._dirty:
            return
        self._dirty = False
        now = self.clock()
        self.sub_title = f"{self.run_dir.name}  {(self.model.manifest or {}).get('state', '')}".rstrip()
        with barrier(self, "controls"):
            self.pipeline.show_controls(self.controls)
        for panel in (self.gpu, self.teacher, self.training, self.gate):
            with barrier(self, type(panel).__name__):  # one panel's bug must not stop the others
                panel.show(self.model, now)
        with barrier(self, "PipelinePanel"):  # drawn after the gate panel: the criteria it knows so far
            self.pipeline.show(self.model, now, self.gate.criteria_so_far())

    # -- actions -------------------------------------------------------------------------------

    def tab_titles(self) -> list[tuple[str, str]]:
        return list(TABS)

    def _evaluation(self):
        """The evaluation panel; None where it is not installed or failed to start (a note instead)."""
        return None if isinstance(self.evaluation, Static) else self.evaluation

    def cases(self) -> list[tuple[str, str, str]]:
        """(concept, tier, status) of every evaluated case, for the palette's jump to a case."""
        panel = self._evaluation()
        with barrier(self, "cases"):
            return [(r.concept_id, r.tier, r.status) for r in panel.table.rows] if panel is not None else []
        return []

    @guarded
    def open_case(self, concept_id: str) -> None:
        panel = self._evaluation()
        self.action_show_tab("evaluation")
        if panel is None or not panel.open_concept(concept_id):
            self.notify(f"no evaluated case {concept_id}", severity="warning", markup=False)

    @guarded
    def action_show_tab(self, tab: str) -> None:
        """Show a tab and focus its first focusable widget, so its keys (Enter, sort, scroll) work at once.

        Focused here and now (Screen.set_focus), not with Widget.focus(), which defers it to a
        callback queued behind keys already typed: "4" then Enter read in one go sent the Enter to
        the tab left behind.

        A tab with nothing to focus takes the focus away from the tab left behind, so keys meant
        for this tab never reach a hidden one (and its pane's focus notice is dropped: CockpitTabs).
        """
        self.tabs.active = tab
        target = next((w for w in self.tabs.get_pane(tab).query("*") if w.focusable), None)
        self.tabs.screen.set_focus(target)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The cockpit's keys act on the cockpit only: under a pushed screen (diff, help, report, a
        question) they are inert, except quit, so `3` typed on the diff does not switch the tab
        behind it. The palette calls the actions directly and is not affected.
        """
        if action in _COCKPIT_ACTIONS and action != "quit" and len(self.screen_stack) > 1:
            return False
        return True

    @guarded
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    @guarded
    def action_open_report(self) -> None:
        path = self.run_dir / "report.md"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            self.notify(f"no report yet ({path.name} is written by the report stage)", severity="warning", markup=False)
            return
        self.push_screen(ReportScreen(text))

    @guarded
    def action_cancel_run(self) -> None:
        if not self.controls.cancel.ok:
            self.notify(f"cannot cancel: {self.controls.cancel.why}", severity="warning", markup=False)
            return

        def answered(yes: bool | None) -> None:
            with barrier(self, "cancel the run"):
                if yes:
                    self._cancel()

        self.push_screen(ConfirmScreen(f"Cancel the run in {self.run_dir}?"), answered)

    @guarded
    def action_resume_run(self, retry_failed: bool = False) -> None:
        control = self.controls.retry if retry_failed else self.controls.resume
        if not control.ok:
            verb = "retry the failed stage" if retry_failed else "resume"
            self.notify(f"cannot {verb}: {control.why}", severity="warning", markup=False)
            return
        self._resume(retry_failed)

    @work(thread=True, exclusive=True, group="resume")
    @guarded
    def _resume(self, retry_failed: bool) -> None:
        """The engine's own resume (fingerprints, skip/redo), started detached like `po-tui run --resume`."""
        from engine.pipeline.launch import resume_run

        try:
            resume_run(self.run_dir, retry_failed=retry_failed)
        except InputError as exc:
            deliver(self, self.notify, f"cannot resume: {exc}", severity="error", markup=False)
            return
        except Exception as exc:
            deliver(self, self.notify, f"resume failed: {type(exc).__name__}: {exc}", severity="error", markup=False)
            return
        self.owned = True  # this cockpit started the engine: quitting asks whether to leave it running
        deliver(self, self.notify, "resumed: the engine runs detached (engine.log in the run directory)", markup=False)
        deliver(self, self._check_controls)

    @guarded
    def action_back(self) -> None:
        """Back to the runs picker, without asking: the engine runs detached, so going back stops
        nothing, and the picker lists the run (open it again, or cancel it from its cockpit)."""
        if self.back:
            self.exit("back")
        else:
            self.notify("no runs list: this cockpit was opened on one run", markup=False)

    @guarded
    async def action_quit(self) -> None:
        self._leave()

    @guarded
    def _leave(self) -> None:
        """Quit; a run this cockpit started and that still goes asks first: leave it running, or cancel it."""
        state = (self.model.manifest or {}).get("state")
        if not (self.owned and state in ("running", "pending") and self.controls.cancel.ok):
            self.exit(None)
            return

        def answered(choice: str | None) -> None:
            with barrier(self, "leave the run"):
                if choice == DETACH:
                    self.exit(DETACH)
                elif choice == CANCEL:
                    self._cancel(then_exit=CANCEL)

        self.push_screen(LeaveScreen(str(self.run_dir)), answered)

    @work(thread=True, exclusive=True, group="cancel")
    @guarded
    def _cancel(self, then_exit: str | None = None) -> None:
        """`po-tui cancel RUN_DIR` in a child process: the engine's own cancel path."""
        cmd = [sys.executable, "-m", "engine", "cancel", str(self.run_dir), "--wait", "0" if then_exit is None else "15"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            ok, said = done.returncode == 0, (done.stdout + done.stderr).strip()
        except (OSError, subprocess.SubprocessError) as exc:
            ok, said = False, str(exc)
        deliver(self, self.notify, said[-400:] or ("cancel sent" if ok else "cancel failed"),
                severity="information" if ok else "error", markup=False)
        if then_exit is not None and ok:
            deliver(self, self.exit, then_exit)


# The action names of the cockpit's own keys (show_tab, cancel_run, ...), which check_action makes
# inert while another screen is on top.
_COCKPIT_ACTIONS = frozenset(b.action.split("(", 1)[0] for b in CockpitApp.BINDINGS if isinstance(b, Binding))
