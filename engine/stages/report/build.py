"""Assemble a report: numbers, verdict, side-by-side rows, plots, Markdown and a JSON summary.

Plots are written before the Markdown that links them, each atomically; the caller writes the
Markdown atomically too, so a reader never finds a half report or a link to a missing image.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.stages.gate import DEFAULT_RESAMPLES, DEFAULT_SEED, GateSpec, TeacherMissing, evaluate
from engine.stages.grounding import ground_runs
from engine.stages.report import charts
from engine.stages.report.inputs import ReportInputs
from engine.stages.report.markdown import ReportData, render
from engine.stages.results import check_same_metric, summarize_run
from engine.stages.sidebyside import regressions, side_by_side

DEFAULT_TOP = 5


@dataclass
class Report:
    markdown: str
    summary: dict[str, Any]
    images: list[Path] = field(default_factory=list)


def _reference_scores(data_rows: list) -> list[float]:
    out = []
    for row in data_rows:
        score = (row.reference or {}).get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            out.append(float(score))
    return out


def _plots(inputs: ReportInputs, out: Path) -> tuple[dict[str, str], list[Path]]:
    links: dict[str, str] = {}
    written: list[Path] = []
    series = {
        tag: [c.score for c in run.cases if c.valid and c.score is not None] for tag, run in inputs.runs.items()
    }
    if any(series.values()):
        path = charts.png_histograms(series, out.parent / f"{out.stem}-scores.png")
        links["scores"], written = urllib.parse.quote(path.name), written + [path]
    t = inputs.training
    if t is not None and (t.losses or t.eval_losses):
        path = charts.png_loss(t.losses, t.eval_losses, out.parent / f"{out.stem}-loss.png")
        links["loss"], written = urllib.parse.quote(path.name), written + [path]
    return links, written


def build_report(
    inputs: ReportInputs,
    spec: GateSpec,
    *,
    out: Path | None,
    plots: bool = True,
    top: int = DEFAULT_TOP,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Report:
    """The report for `inputs`; PNG plots beside `out` when asked for and matplotlib is present."""
    runs = inputs.runs
    check_same_metric(list(runs.values()))
    summaries = {tag: summarize_run(run) for tag, run in runs.items()}
    verdict = None
    no_gate = None
    if inputs.baseline is not None and inputs.student is not None:
        try:
            verdict = evaluate(inputs.student, inputs.baseline, spec, teacher=runs.get("teacher"), resamples=resamples,
                               seed=seed, give_teacher="give its results (teacher_*.json) with the others")
        except TeacherMissing as exc:  # the report is still written: it says why there is no verdict
            no_gate = str(exc)
    else:
        missing = [t for t in ("baseline", "student") if t not in runs]
        no_gate = f"no {' and no '.join(missing)} results"
    grounding = verdict.grounding if verdict is not None else ground_runs(runs) if runs else None
    rows = side_by_side(runs)
    drops = regressions(rows, limit=top) if verdict is not None else []
    links: dict[str, str] = {}
    images: list[Path] = []
    if plots and out is not None and charts.have_matplotlib():
        links, images = _plots(inputs, out)
    data = ReportData(
        inputs=inputs,
        summaries=summaries,
        verdict=verdict,
        no_gate_reason=no_gate,
        rows=rows,
        regressions=drops,
        generated_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        images=links,
        reference_scores=_reference_scores(rows),
        grounding=grounding,
    )
    summary = {
        "runs": {
            tag: {"file": str(run.path), "model": run.model, "adapter_path": run.adapter_path,
                  "metric": run.metric, "rescored": run.rescored, **summaries[tag].as_dict()}
            for tag, run in runs.items()
        },
        "gate": verdict.as_dict() if verdict else None,
        "no_gate": no_gate,
        "grounding": grounding.as_dict() if grounding is not None else None,
        "training": inputs.training.as_dict() if inputs.training else None,
        "regressions": [
            {"concept_id": row.concept_id, "tier": row.tier, "baseline": row.score("baseline"),
             "student": row.score("student"), "delta": delta}
            for row, delta in drops
        ],
        "format_errors": [
            {"tag": tag, "concept_id": c.concept_id, "reason": c.reason}
            for tag, run in runs.items() for c in run.cases if not c.valid
        ],
        "images": [str(p) for p in images],
        "ignored": [{"file": f, "why": why} for f, why in inputs.ignored],
    }
    return Report(render(data), summary, images)
