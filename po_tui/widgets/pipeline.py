"""Pipeline panel, the cockpit's overview: every stage's state, progress, rate, elapsed time, ETA
and headline numbers, the loss curve, the gate as it forms and why a stage failed.

From about 120 columns wide it uses two columns (stages left; numbers, loss and gate right);
below, one. The cause of a failure comes right under the run's line, above the stages, so it is
on screen at 80x24 without scrolling.
"""

from __future__ import annotations

import socket

from rich.console import Group, RenderableType
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Container, Vertical, VerticalScroll
from textual.widgets import Static

from engine.runlog.cause import error_text
from engine.views.controls import Controls
from engine.views.snapshot import job_row
from po_tui.model import CockpitModel
from po_tui.widgets.overview import LossLine, StagesView, gate_lines, numbers_table
from po_tui.widgets.text import inert

WIDE = 120  # terminal columns from which the overview uses two columns


class PipelinePanel(VerticalScroll):
    """All jobs of the run in the manifest's order, with the run's numbers beside or under them."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._host = socket.gethostname()

    def compose(self) -> ComposeResult:
        yield Static("", id="pipeline-headline")
        yield Static("", id="pipeline-errors")
        with Container(id="pipeline-columns"):
            yield Static("", id="pipeline-stages")
            with Vertical(id="pipeline-side"):
                yield Static("", id="pipeline-numbers")
                yield Static("", id="pipeline-loss")
                yield Static("", id="pipeline-gate")
        yield Static("", id="pipeline-controls")

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(self.app.size.width >= WIDE, "wide")

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

    def show(self, model: CockpitModel, now: float, gate_criteria: list[tuple[str, str, str]] | None = None) -> None:
        manifest = model.manifest or {}
        head = Text("run ")
        head.append(inert(manifest.get("run_id") or model.run_dir.name, "bold"))
        head.append(f"  {manifest.get('state', '?')}  ")
        counts = model.run.counts()
        head.append("  ".join(f"{k} {v}" for k, v in counts.items() if v))
        gate = manifest.get("gate")
        verdict = str(gate["verdict"]) if isinstance(gate, dict) and gate.get("verdict") else None
        if verdict:
            head.append(f"  gate {verdict.upper()}", style="bold")
        self.query_one("#pipeline-headline", Static).update(head)
        rows = [job_row(job, model.manifest_job(job.job), now, self._host) for job in model.jobs()]
        self.query_one("#pipeline-stages", Static).update(StagesView(rows, numbers=not self.has_class("wide")))
        numbers = numbers_table(rows)
        self.query_one("#pipeline-numbers", Static).update(numbers if numbers is not None else Text("no numbers yet", style="dim"))
        loss: list[RenderableType] = [LossLine("train loss", list(model.loss))]
        if model.eval_loss:
            loss.append(LossLine("eval loss", list(model.eval_loss)))
        self.query_one("#pipeline-loss", Static).update(Group(*loss))
        gate_job = model.gate_job()
        if verdict is None and gate_job is not None and isinstance(gate_job.summary.get("verdict"), str):
            verdict = gate_job.summary["verdict"]
        self.query_one("#pipeline-gate", Static).update(gate_lines(verdict, gate_criteria or []))
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
