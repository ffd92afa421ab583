"""Gate panel: each criterion's value, threshold and verdict, and the ratio interval.

The gate job's summary gives the verdict; the per-criterion values come from `run_gate` on the
newest baseline and student eval results, computed in a worker thread once both files exist (so
the panel also answers while the gate job has not run yet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.containers import VerticalScroll
from textual.widgets import Static

from po_tui.guard import deliver, guarded, live
from po_tui.model import CockpitModel
from po_tui.widgets.text import inert, num


def gate_options(argv: list[Any]) -> dict[str, Any]:
    """The gate job's --preset / --gates / --resamples / --seed from its manifest argv (so the panel judges alike)."""
    opts: dict[str, Any] = {}
    for flag, key, kind in (("--preset", "preset", str), ("--gates", "gates_file", str), ("--resamples", "resamples", int),
                            ("--seed", "seed", int)):
        if flag in argv:
            i = argv.index(flag)
            if i + 1 < len(argv) and isinstance(argv[i + 1], str):
                try:
                    opts[key] = kind(argv[i + 1])
                except ValueError:
                    pass
    return opts


def planned_gate_options(run_dir: Path) -> dict[str, Any]:
    """Before the gate job has an argv: the gates the run's config.yaml asks for (none: the defaults)."""
    from engine.pipeline.config import load_config

    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    g = load_config(path).gate
    opts: dict[str, Any] = {"gates_file": g.gates} if g.gates else {"preset": g.preset}
    return {**opts, "resamples": g.resamples, "seed": g.seed}


class GatePanel(VerticalScroll):
    """Shows the gate summary and, once computed, the verdict of each criterion."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key: tuple[Any, ...] | None = None
        self._verdict: dict[str, Any] | None = None
        self._error: str | None = None

    def compose(self):
        yield Static("No gate yet: it needs baseline and student eval results.", id="gate-body")

    def show(self, model: CockpitModel, now: float) -> None:
        results = model.eval_results()
        baseline, student = results.get("eval-baseline"), results.get("eval-student")
        argv = model.manifest_job("gate").get("argv")
        key = (baseline, student, tuple(argv) if isinstance(argv, list) else None)
        if baseline is not None and student is not None and key != self._key:
            self._key = key
            self._compute(baseline, student, list(argv) if isinstance(argv, list) else None, model.run_dir)
        self._draw(model)

    @work(thread=True, exclusive=True, group="gate")
    @guarded
    def _compute(self, baseline: Path, student: Path, argv: list[Any] | None, run_dir: Path) -> None:
        try:
            from engine.stages.gate import run_gate

            opts = gate_options(argv) if argv is not None else planned_gate_options(run_dir)
            verdict = run_gate(baseline, student, **opts).as_dict()
            error = None
        except Exception as exc:  # a half-written or foreign results file: say so, keep going
            verdict, error = None, f"{type(exc).__name__}: {exc}"
        deliver(self, self._computed, verdict, error)

    @guarded
    def _computed(self, verdict: dict[str, Any] | None, error: str | None) -> None:
        self._verdict, self._error = verdict, error
        if not live(self):
            return  # the app is closing
        if error:
            self.app.notify(f"gate: {error}", severity="warning", markup=False)
        model = getattr(self.app, "model", None)
        if model is not None:
            self._draw(model)

    def _draw(self, model: CockpitModel) -> None:
        parts: list[Any] = []
        job = model.gate_job()
        summary = job.summary if job is not None else {}
        if job is not None:
            head = Text("gate job: ")
            head.append(job.state)
            if summary.get("verdict"):
                head.append(f"   verdict {str(summary['verdict']).upper()}", style="bold")
                head.append(f"   {num(summary.get('passed'))}/{num(summary.get('criteria'))} criteria   preset ")
                head.append(inert(summary.get("gates"), limit=30))
            parts.append(head)
        verdict = self._verdict
        if verdict is not None:
            word = "PASS" if verdict.get("passed") else "FAIL"
            parts.append(Text(f"computed verdict: {word}", style="bold"))
            table = Table(expand=True, box=None, pad_edge=False)
            for col in ("criterion", "value", "condition", "result"):
                table.add_column(col, no_wrap=col != "criterion")
            for crit in verdict.get("criteria", []):
                threshold = crit.get("threshold")
                table.add_row(
                    inert(crit.get("label") or crit.get("metric"), limit=40),
                    Text(num(crit.get("value"), "{:.4g}")),
                    Text(f"{crit.get('op', '')} {num(threshold, '{:g}')}"),
                    Text("pass" if crit.get("passed") else "FAIL", style="bold" if not crit.get("passed") else ""),
                )
            parts.append(table)
            interval = verdict.get("ratio_interval") or {}
            parts.append(Text(
                f"student/baseline ratio {num(interval.get('ratio'), '{:.3f}')}  "
                f"interval [{num(interval.get('low'), '{:.3f}')}, {num(interval.get('high'), '{:.3f}')}]  "
                f"({num(interval.get('resamples'), '{:,}')} resamples)"))
            if interval.get("pairing_note"):
                parts.append(inert(interval.get("pairing_note"), "dim", limit=120))
            for note in verdict.get("notes", [])[:5]:
                parts.append(inert(f"note: {note}", "dim", limit=200))
        elif summary.get("verdict"):
            parts.append(Text(
                f"ratio {num(summary.get('ratio'), '{:.3f}')}  interval [{num(summary.get('ratio_low'), '{:.3f}')}, "
                f"{num(summary.get('ratio_high'), '{:.3f}')}]  student mean {num(summary.get('student_mean'))}  "
                f"baseline mean {num(summary.get('baseline_mean'))}"))
        if self._error:
            parts.append(inert(f"could not compute the criteria: {self._error}", "italic", limit=300))
        if parts:
            self.query_one("#gate-body", Static).update(Group(*parts))
