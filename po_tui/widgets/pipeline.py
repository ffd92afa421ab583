"""Pipeline panel: one row per job with its state, a progress bar, elapsed time and ETA."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, ProgressBar, Static

from engine.core.timefmt import duration
from engine.runlog.cause import error_text
from engine.runlog.state import JobState
from engine.views.controls import Controls
from po_tui.guard import guarded
from po_tui.model import CockpitModel
from po_tui.widgets.text import STATE_STYLE, inert


class JobRow(Horizontal):
    """One job: name and state, progress bar, done/total, elapsed, ETA."""

    def __init__(self, job: str) -> None:
        super().__init__(classes="job-row")
        self.job = job

    def compose(self) -> ComposeResult:
        yield Label(inert(self.job, limit=18), classes="job-name")
        yield Label("", classes="job-state")
        yield ProgressBar(total=None, show_eta=False, show_percentage=True, classes="job-bar")
        yield Label("", classes="job-times")

    @guarded  # also runs as a call_after_refresh callback, when the row may already be gone
    def show(self, job: JobState, manifest_state: str | None, now: float) -> None:
        state = job.state if job.state != "pending" or not manifest_state else manifest_state
        self.query_one(".job-state", Label).update(Text(state, style=STATE_STYLE.get(state, "")))
        bar = self.query_one(ProgressBar)
        if job.progress_total:
            bar.update(total=job.progress_total, progress=job.progress_done or 0)
        elif state in ("succeeded", "skipped"):
            bar.update(total=1, progress=1)
        elif state == "running":
            bar.update(total=None)  # busy, amount unknown: the bar pulses
        else:
            bar.update(total=1, progress=0)  # pending, failed, cancelled: still, not busy
        done = ""
        if job.progress_done is not None:
            total = f"/{job.progress_total:g}" if job.progress_total else ""
            done = f"{job.progress_done:g}{total} {job.progress_unit or ''} ".rstrip() + "  "
        eta = job.eta_at(now) if job.state == "running" else None
        times = f"{done}{duration(job.elapsed_at(now))}" + (f"  ETA {duration(eta)}" if eta is not None else "")
        self.query_one(".job-times", Label).update(inert(times))


class PipelinePanel(VerticalScroll):
    """All jobs of the run in the manifest's order; rows are added as jobs appear."""

    def compose(self) -> ComposeResult:
        yield Static("", id="pipeline-headline")
        yield Static("", id="pipeline-errors")
        yield Static("", id="pipeline-controls")

    def show_controls(self, found: Controls) -> None:
        """Which of cancel (c), resume (R) and retry (F) can work here; the others, grouped by why not."""
        line = Text()
        why_not: dict[str, list[str]] = {}
        for key, name, control in (("c", "cancel", found.cancel), ("R", "resume", found.resume), ("F", "retry failed", found.retry)):
            if control.ok:
                line.append(("  " if line else "") + f"{key} {name}", style="bold")
            else:
                why_not.setdefault(control.why, []).append(name)
        for why, names in why_not.items():
            line.append(("  " if line else "") + f"{', '.join(names)}: ", style="dim")
            line.append(inert(why, "dim", limit=100))
        self.query_one("#pipeline-controls", Static).update(line)

    def show(self, model: CockpitModel, now: float) -> None:
        manifest = model.manifest or {}
        head = Text("run ")
        head.append(inert(manifest.get("run_id") or model.run_dir.name, "bold"))
        head.append(f"  {manifest.get('state', '?')}  ")
        counts = model.run.counts()
        head.append("  ".join(f"{k} {v}" for k, v in counts.items() if v))
        gate = manifest.get("gate")
        if isinstance(gate, dict) and gate.get("verdict"):
            head.append(f"  gate {str(gate['verdict']).upper()}", style="bold")
        self.query_one("#pipeline-headline", Static).update(head)
        rows = {row.job: row for row in self.query(JobRow)}
        for job in model.jobs():
            row = rows.get(job.job)
            if row is None:
                row = JobRow(job.job)
                self.mount(row, before="#pipeline-errors")
                row.call_after_refresh(row.show, job, model.manifest_job(job.job).get("state"), now)
                continue
            row.show(job, model.manifest_job(job.job).get("state"), now)
        errors = self._errors(model)
        box = self.query_one("#pipeline-errors", Static)
        box.display = bool(errors)
        box.update(errors)

    @staticmethod
    def _errors(model: CockpitModel) -> Text:
        """The latest error of each job's latest attempt (why a run failed, at a glance; a retry clears it)."""
        out = Text()
        for job in model.jobs():
            if not job.errors:
                continue
            last = job.errors[-1]
            out.append("\n" if out else "")
            out.append(inert(f"{job.job}: ", "bold"))
            out.append(inert(error_text(last), limit=200))  # the cause from stderr first, when it names one
            if job.error_count > 1:
                out.append(f" (+{job.error_count - 1} more)")
        return out
