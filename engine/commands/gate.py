"""`po-tui gate BASELINE STUDENT [--teacher TEACHER]`: the acceptance verdict, as tables and an exit code.

Exit 0 when every criterion holds, 1 when one fails, 2 on bad input (a gate with criteria on the
teacher and no --teacher is one). Everything read from the files (names, paths, reasons) is
printed as rich `Text`, never as markup, and cleaned of control characters first.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.commands import argtypes
from engine.core.inert import one_line
from engine.core.metric import METRICS
from engine.runlog.job import add_job_args, job_events
from engine.stages.gate import DEFAULT_RESAMPLES, DEFAULT_SEED, PRESETS, Verdict, run_gate
from engine.stages.grounding import SIDES
from engine.stages.results import RunSummary

EXIT_PASS, EXIT_FAIL = 0, 1


def add_gate_options(p: argparse.ArgumentParser) -> None:
    """Options shared with `po-tui report`, which prints the same verdict."""
    p.add_argument(
        "--preset", choices=sorted(PRESETS),
        help="criteria preset: seeds (default), v2-closeout, demo or grounded (these two need the teacher's results); "
             "with --gates, overrides the file's preset:",
    )
    p.add_argument("--gates", metavar="FILE", help="YAML file defining or overriding criteria (see docs/gate.md)")
    p.add_argument(
        "--rescore", choices=METRICS, metavar="METRIC",
        help="re-judge every case with this metric (po-v1|po-v2) instead of the recorded scores",
    )
    p.add_argument("--concepts", metavar="FILE", help="concepts (any layout with concept_id) for --rescore")
    p.add_argument(
        "--resamples", type=argtypes.positive_int, default=DEFAULT_RESAMPLES, metavar="N",
        help="bootstrap resamples for the ratio interval (default: %(default)s)",
    )
    p.add_argument("--seed", type=argtypes.seed, default=DEFAULT_SEED, help="bootstrap seed (default: %(default)s)")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "gate",
        parents=[common],
        help="acceptance gate: does the student pass against the baseline?",
        description=(
            "Compare a student's evaluation results with the baseline's on the acceptance "
            "criteria (preset seeds: student valid rate >= 0.90, baseline mean >= 0.75, student "
            "mean >= 0.90 x baseline mean; v2-closeout: the stricter set; demo: student valid rate "
            ">= 0.90, student mean >= 0.75 x teacher mean and >= baseline mean + 0.30, format errors "
            "as 0; grounded: demo's and student grounding >= a constant answer's + 0.25; see "
            "docs/gate.md) and print the verdict with a bootstrap interval on the mean ratio and each "
            "side's grounding. Exit 0 pass, 1 fail, 2 bad input."
        ),
    )
    p.add_argument("baseline", metavar="BASELINE.json")
    p.add_argument("student", metavar="STUDENT.json")
    p.add_argument("--teacher", metavar="TEACHER.json",
                   help="the teacher's results on the same concepts (the reference for teacher.* criteria)")
    add_gate_options(p)
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    add_job_args(p)
    p.set_defaults(func=run)


def _num(value: float | None, *, count: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if count else f"{value:.4f}"


def _side_lines(tag: str, path: str, s: RunSummary, model: str | None, adapter: str | None) -> list[Text]:
    head = Text(f"{tag}: ", style="bold").append(one_line(path, 300))
    lines = [head]
    if model or adapter:
        who = Text(f"  model {one_line(model or '-', 120)}")
        if adapter:
            who.append(f", adapter {one_line(adapter, 160)}")
        lines.append(who)
    numbers = Text(
        f"  {s.n} cases, {s.valid} valid, mean {_num(s.mean)}, std {_num(s.std)}, "
        f"min {_num(s.min)}, max {_num(s.max)}"
    )
    return lines + [numbers]


def verdict_table(verdict: Verdict) -> Table:
    title = Text(f"gate [{one_line(verdict.gates, 80)}] on {verdict.basis}")
    table = Table(title=title, title_justify="left")
    for name, justify in (("criterion", "left"), ("value", "right"), ("threshold", "right"), ("result", "center")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in verdict.results:
        count = r.criterion.metric.split(".")[-1] in ("n", "valid", "format_errors", "format_check_errors")
        table.add_row(
            Text(r.criterion.label),
            Text(_num(r.value, count=count)),
            Text(r.criterion.condition),
            Text("pass", style="green") if r.passed else Text("FAIL", style="bold red"),
        )
    return table


def grounding_table(verdict: Verdict) -> Table | None:
    """Per side: mean (format errors as 0), valid rate and how its answers belong to their concepts."""
    g = verdict.grounding
    if g is None or not g.sides:
        return None
    summaries = {"student": verdict.student, "baseline": verdict.baseline, "teacher": verdict.teacher,
                 "constant": verdict.constant}
    table = Table(title=Text("grounding (format errors as 0)"), title_justify="left")
    for name in ("side", "mean", "valid rate", "name match", "id precision", "id coverage", "grounding"):
        table.add_column(name, justify="left" if name == "side" else "right")
    for side in SIDES:
        sg = g.sides.get(side)
        if sg is None:
            continue
        s = summaries[side]
        table.add_row(
            Text("constant answer" if side == "constant" else side),
            Text(_num(s.mean_with_errors_as_zero if s else None)), Text(_num(s.valid_rate if s else None)),
            Text(_num(sg.name_match)), Text(_num(sg.id_precision)), Text(_num(sg.id_coverage)), Text(_num(sg.grounding)),
        )
    return table


def print_verdict(verdict: Verdict, console: Console) -> None:
    sides = [
        ("baseline", verdict.baseline_file, verdict.baseline, verdict.baseline_model, None),
        ("student", verdict.student_file, verdict.student, verdict.student_model, verdict.student_adapter),
    ]
    if verdict.teacher is not None:
        sides.append(("teacher", verdict.teacher_file or "-", verdict.teacher, verdict.teacher_model, None))
    for tag, path, summary, model, adapter in sides:
        for line in _side_lines(tag, path, summary, model, adapter):
            console.print(line)
    if verdict.purpose:
        console.print(Text(one_line(f"{verdict.gates}: {verdict.purpose}", 400)))
    console.print(verdict_table(verdict))
    grounding = grounding_table(verdict)
    if grounding is not None:
        console.print(grounding)
    console.print(Text(verdict.interval.describe()))
    for note in verdict.notes:
        console.print(Text("note: " + one_line(note, 400), style="yellow"))
    passed = sum(r.passed for r in verdict.results)
    word = Text("PASS", style="bold green") if verdict.passed else Text("FAIL", style="bold red")
    console.print(Text("verdict: ").append(word).append(f" ({passed}/{len(verdict.results)} criteria)"))


def verdict_summary(verdict: Verdict) -> dict:
    """The job_finished summary: what a status view shows for the gate."""
    return {
        "verdict": "pass" if verdict.passed else "fail",
        "gates": verdict.gates,
        "passed": sum(r.passed for r in verdict.results),
        "criteria": len(verdict.results),
        "ratio": verdict.interval.ratio,
        "ratio_low": verdict.interval.low,
        "ratio_high": verdict.interval.high,
        "student_mean": verdict.student.mean,  # of the valid answers (None when there is none)
        "baseline_mean": verdict.baseline.mean,
        # The means the cockpit shows (Evaluation and Gate tabs alike): a format error counts 0.
        "student_mean_with_errors_as_zero": verdict.student.mean_with_errors_as_zero,
        "baseline_mean_with_errors_as_zero": verdict.baseline.mean_with_errors_as_zero,
        "teacher_mean": verdict.teacher.mean if verdict.teacher is not None else None,
        "constant_mean": verdict.constant.mean if verdict.constant is not None else None,
        "student_grounding": verdict.grounding.value("student", "grounding") if verdict.grounding else None,
        "constant_grounding": verdict.grounding.value("constant", "grounding") if verdict.grounding else None,
    }


def run(args: argparse.Namespace) -> int:
    with job_events(args, "gate") as events:
        verdict = judge_and_print(args)
        events.summary.update(verdict_summary(verdict))
        events.exit_code = EXIT_PASS if verdict.passed else EXIT_FAIL
    return events.exit_code


def judge_and_print(args: argparse.Namespace) -> Verdict:
    verdict = run_gate(
        args.baseline,
        args.student,
        preset=args.preset,
        gates_file=args.gates,
        rescore=args.rescore,
        concepts_path=args.concepts,
        teacher_path=args.teacher,
        resamples=args.resamples,
        seed=args.seed,
    )
    if args.json:
        sys.stdout.write(json.dumps(verdict.as_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        print_verdict(verdict, Console(highlight=False, soft_wrap=False))
    sys.stdout.flush()
    return verdict
