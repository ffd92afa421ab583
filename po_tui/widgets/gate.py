"""Gate panel: the run's gates (preset, what it proves, its criteria), each criterion's value and
verdict, the ratio interval, and each side's grounding beside the constant-answer control.

The gate job's summary gives the verdict; the criteria come from the gate job's argv (or the
run's config.yaml before it starts); the per-criterion values come from `run_gate` on the newest
baseline, student (and teacher) eval results, computed in a worker thread once baseline and
student exist (so the panel also answers while the gate job has not run yet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from engine.pipeline.config import run_gate_options
from engine.stages.grounding import CLEAR_MARGIN
from engine.views.evaltable import score_text
from po_tui.guard import deliver, guarded, live
from po_tui.model import CockpitModel
from po_tui.widgets.text import inert, num


def gate_options(argv: list[Any]) -> dict[str, Any]:
    """The gate job's --preset / --gates / --resamples / --seed from its manifest argv (so the panel judges alike)."""
    opts: dict[str, Any] = {}
    for flag, key, kind in (("--preset", "preset", str), ("--gates", "gates_file", str), ("--resamples", "resamples", int),
                            ("--seed", "seed", int), ("--teacher", "teacher_path", str)):
        if flag in argv:
            i = argv.index(flag)
            if i + 1 < len(argv) and isinstance(argv[i + 1], str):
                try:
                    opts[key] = kind(argv[i + 1])
                except ValueError:
                    pass
    return opts


_SIDES = (("student", "student"), ("baseline", "baseline"), ("teacher", "teacher"), ("constant", "constant answer"))


def grounding_table(verdict: dict[str, Any]) -> Table | None:
    """Per side: mean (format errors as 0), valid rate, name match, id precision and coverage, grounding."""
    grounding = verdict.get("grounding") or {}
    sides = grounding.get("sides") or {}
    if not sides:
        return None
    table = Table(expand=True, box=None, pad_edge=False, title="grounding (format errors as 0)", title_justify="left")
    for col in ("side", "mean", "valid", "name", "ids ok", "ids cov", "ground"):
        table.add_column(col, no_wrap=True, justify="left" if col == "side" else "right")
    for side, label in _SIDES:
        g = sides.get(side)
        if not isinstance(g, dict):
            continue
        summary = (grounding.get("constant") if side == "constant" else verdict.get(side)) or {}
        table.add_row(Text(label), *(Text(num(v, "{:.2f}")) for v in (
            summary.get("mean_with_errors_as_zero"), summary.get("valid_rate"), g.get("name_match"),
            g.get("id_precision"), g.get("id_coverage"), g.get("grounding"))))
    return table


def grounding_margin(verdict: dict[str, Any]) -> float | None:
    """Student grounding − the constant answer's, when both are numbers."""
    sides = (verdict.get("grounding") or {}).get("sides") or {}
    values = [(sides.get(side) or {}).get("grounding") if isinstance(sides.get(side), dict) else None
              for side in ("student", "constant")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return float(values[0]) - float(values[1])


def means_line(verdict: dict[str, Any]) -> Text:
    """Each side's mean as the Evaluation tab's tier means show it (format errors as 0), and its valid answers."""
    means, valid = [], []
    for side in ("student", "baseline", "teacher"):
        summary = verdict.get(side)
        if not isinstance(summary, dict):
            continue
        means.append(f"{side} {score_text(summary.get('mean_with_errors_as_zero'))}")
        valid.append(f"{side} {num(summary.get('valid'))}/{num(summary.get('n'))}")
    return Text("means (format errors as 0)  " + "  ".join(means) + "\nvalid answers  " + "  ".join(valid))


# Criteria on the mean of the valid answers only: no value when a side they read has none.
_VALID_ONLY = {"mean", "std", "min", "max", "median"}
_COMPARE_VALID_ONLY = {"compare.ratio", "compare.delta", "compare.abs_delta"}


def value_cell(crit: dict[str, Any], verdict: dict[str, Any]) -> Text:
    """A criterion's value; where there is none because a side had no valid answer, it says so
    (the means line above shows that side's mean with format errors as 0, e.g. 0.000)."""
    value = crit.get("value")
    if value is not None:
        return Text(num(value, "{:.4g}"))
    metric = str(crit.get("metric") or "")
    side, _, name = metric.partition(".")
    sides = [side] if name in _VALID_ONLY else ["student", "baseline"] if metric in _COMPARE_VALID_ONLY else []
    if any(isinstance(verdict.get(s), dict) and verdict[s].get("valid") == 0 for s in sides):
        return Text("– (0 valid)")
    return Text(num(None))


def summary_means(summary: dict[str, Any]) -> str:
    """The gate job's means: format errors as 0 (as on the Evaluation tab); an older gate log has
    only the means of the valid answers, and says so."""
    if "student_mean_with_errors_as_zero" in summary or "baseline_mean_with_errors_as_zero" in summary:
        return (f"means (format errors as 0)  student {score_text(_number(summary.get('student_mean_with_errors_as_zero')))}  "
                f"baseline {score_text(_number(summary.get('baseline_mean_with_errors_as_zero')))}")
    if "student_mean" in summary or "baseline_mean" in summary:
        return (f"means of the valid answers  student {score_text(_number(summary.get('student_mean')))}  "
                f"baseline {score_text(_number(summary.get('baseline_mean')))}")
    return ""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def judge_known(criteria: Any, shown: list[dict[str, Any]], sides: dict[str, Path | None]) -> None:
    """Before baseline and student are both evaluated: judge the criteria on one side's own summary
    (`baseline.mean`, `student.valid_rate` ...) from the results already there, adding `value` and
    `passed` to their entries in `shown`; the others stay pending. A file that cannot be read yet
    leaves its criteria pending (the whole verdict, computed later, says why)."""
    from engine.stages.results import SUMMARY_FIELDS, load_results, summarize_run

    values: dict[str, float] = {}
    for side, path in sides.items():
        if path is None:
            continue
        try:
            summary = summarize_run(load_results(path))
        except Exception:  # half-written or foreign: pending, not a notice every second
            continue
        for name in SUMMARY_FIELDS:
            value = getattr(summary, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[f"{side}.{name}"] = float(value)
    for criterion, entry in zip(criteria, shown, strict=True):
        if criterion.metric in values:
            entry["value"] = values[criterion.metric]
            entry["passed"] = criterion.holds(values[criterion.metric])


class GatePanel(VerticalScroll):
    """Shows the gate summary and, once computed, the verdict of each criterion."""

    class Formed(Message):
        """The criteria or their verdicts were (re)computed: the overview shows them too."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key: tuple[Any, ...] | None = None
        self._verdict: dict[str, Any] | None = None
        self._spec: dict[str, Any] | None = None  # the gates to judge by: name, purpose, criteria
        self._error: str | None = None

    def compose(self):
        yield Static("No gate yet: it needs baseline and student eval results.", id="gate-body")

    def show(self, model: CockpitModel, now: float) -> None:
        results = model.eval_results()
        baseline, student = results.get("eval-baseline"), results.get("eval-student")
        teacher = results.get("eval-teacher")
        argv = model.manifest_job("gate").get("argv")
        key = (baseline, student, teacher, tuple(argv) if isinstance(argv, list) else None)
        if key != self._key:
            self._key = key
            self._compute(baseline, student, teacher, list(argv) if isinstance(argv, list) else None, model.run_dir)
        self._draw(model)

    @work(thread=True, exclusive=True, group="gate")
    @guarded
    def _compute(self, baseline: Path | None, student: Path | None, teacher: Path | None, argv: list[Any] | None,
                 run_dir: Path) -> None:
        from engine.errors import InputError
        from engine.stages.gate import load_gates, run_gate

        spec = verdict = error = None
        try:
            opts = gate_options(argv) if argv is not None else run_gate_options(run_dir)
            # The newest teacher results stand in for a gate job that has not named its own yet.
            opts.setdefault("teacher_path", teacher)
            gates = load_gates(opts.get("preset"), opts.get("gates_file"))
            spec = {"name": gates.name, "purpose": gates.purpose,
                    "criteria": [{**c.as_dict(), "condition": c.condition} for c in gates.criteria]}
            if baseline is not None and student is not None:
                verdict = run_gate(baseline, student, **opts).as_dict()
            else:
                judge_known(gates.criteria, spec["criteria"], {"baseline": baseline, "student": student, "teacher": teacher})
        except InputError as exc:  # e.g. a gate on the teacher without its results: the one line says so
            error = str(exc)
        except Exception as exc:  # a half-written or foreign results file: say so, keep going
            error = f"{type(exc).__name__}: {exc}"
        deliver(self, self._computed, verdict, error, spec)

    @guarded
    def _computed(self, verdict: dict[str, Any] | None, error: str | None, spec: dict[str, Any] | None = None) -> None:
        self._verdict, self._error = verdict, error
        if spec is not None:
            self._spec = spec
        if not live(self):
            return  # the app is closing
        self.post_message(self.Formed())
        if error:
            self.app.notify(f"gate: {error}", severity="warning", markup=False)
        model = getattr(self.app, "model", None)
        if model is not None:
            self._draw(model)

    def criteria_so_far(self) -> list[tuple[str, str, str]]:
        """(criterion, condition or value, pass | FAIL | pending): the verdict as it forms, for the overview.

        Pending while baseline and student results are not both there; judged once they are."""
        if self._verdict is not None:
            return [(str(c.get("label") or c.get("metric")), f"{num(c.get('value'), '{:.4g}')} {c.get('op', '')} "
                     f"{num(c.get('threshold'), '{:g}')}", "pass" if c.get("passed") else "FAIL")
                    for c in self._verdict.get("criteria", [])]
        if self._spec is not None:
            return [(str(c.get("label") or c.get("metric")),
                     f"{num(c['value'], '{:.4g}')} {c.get('condition') or ''}" if "passed" in c else str(c.get("condition") or ""),
                     ("pass" if c["passed"] else "FAIL") if "passed" in c else "pending")
                    for c in self._spec.get("criteria", [])]
        return []

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
        spec = self._spec
        if spec is not None:
            parts.append(Text("gates ").append(inert(spec.get("name"), "bold", limit=60)).append(
                inert(f": {spec['purpose']}", limit=300) if spec.get("purpose") else Text("")))
        verdict = self._verdict
        if verdict is None and spec is not None:
            # Before baseline and student results exist: what the gate will check.
            table = Table(expand=True, box=None, pad_edge=False)
            table.add_column("criterion")
            table.add_column("condition", no_wrap=True)
            for crit in spec.get("criteria", []):
                table.add_row(inert(crit.get("label") or crit.get("metric"), limit=60), inert(crit.get("condition"), limit=20))
            parts.append(table)
        if verdict is not None:
            word = "PASS" if verdict.get("passed") else "FAIL"
            parts.append(Text(f"computed verdict: {word}", style="bold"))
            parts.append(means_line(verdict))
            table = Table(expand=True, box=None, pad_edge=False)
            for col in ("criterion", "value", "condition", "result"):
                table.add_column(col, no_wrap=col != "criterion")
            for crit in verdict.get("criteria", []):
                threshold = crit.get("threshold")
                table.add_row(
                    inert(crit.get("label") or crit.get("metric"), limit=60),
                    value_cell(crit, verdict),
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
            grounding = grounding_table(verdict)
            if grounding is not None:
                parts.append(grounding)
                margin = grounding_margin(verdict)
                if margin is not None and margin < CLEAR_MARGIN:
                    parts.append(Text(
                        f"not shown to depend on the concept: student grounding {margin:+.2f} from a constant "
                        f"answer's (clear: {CLEAR_MARGIN:+.2f})", style="bold yellow"))
            for note in verdict.get("notes", [])[:5]:
                parts.append(inert(f"note: {note}", "dim", limit=200))
        elif summary.get("verdict"):
            parts.append(Text(
                f"ratio {num(summary.get('ratio'), '{:.3f}')}  interval [{num(summary.get('ratio_low'), '{:.3f}')}, "
                f"{num(summary.get('ratio_high'), '{:.3f}')}]  {summary_means(summary)}"))
        if self._error:
            parts.append(inert(f"could not compute the criteria: {self._error}", "italic", limit=300))
        if parts:
            self.query_one("#gate-body", Static).update(Group(*parts))
