"""`po-tui report RUN_DIR | FILES... -o report.md`: the distillation report, generated.

Exit 0 once the report is written (a failing gate is reported, not an error), 2 on bad input
with nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.commands import argtypes
from engine.commands.gate import add_gate_options
from engine.core.inert import one_line
from engine.errors import InputError
from engine.pipeline.config import run_gate_options
from engine.runlog.job import add_job_args, job_events
from engine.stages.gate import DEFAULT_RESAMPLES, DEFAULT_SEED, load_gates
from engine.stages.report.build import DEFAULT_TOP, build_report
from engine.stages.report.inputs import collect
from engine.store.atomic import atomic_write_text, is_stream
from engine.store.outpath import check_out_file


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        parents=[common],
        help="write the distillation report (Markdown) for a run directory or results files",
        description=(
            "Build the report from a run directory (the newest {tag}_{YYYYmmdd_HHMMSS}.json per "
            "tag, and the training outputs of the student's adapter) or from explicit results "
            "files: context, training snapshot, scores, tiers, REVIEW statuses, speed, the gate "
            "verdict, every format error, the largest regressions with YAML diffs, and plots."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="RUN_DIR | FILE")
    p.add_argument(
        "-o", "--out", metavar="OUT",
        help="Markdown output (default: RUN_DIR/report.md; required with files; '-' for stdout)",
    )
    p.add_argument("--train", metavar="DIR", help="adapter or training folder (po_tui_train.json, loss_history.json)")
    p.add_argument("--top", type=argtypes.non_negative_int, default=DEFAULT_TOP, metavar="N",
                   help="regressions to show with diffs (default: %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="text charts even when matplotlib is installed")
    p.add_argument("--json", action="store_true", help="also print a JSON summary on stdout")
    add_gate_options(p)
    add_job_args(p)
    p.set_defaults(func=run)


def _out_path(args: argparse.Namespace, run_dir: Path | None) -> Path | None:
    """Where the Markdown goes; None means stdout."""
    if args.out == "-":
        return None
    if args.out:
        return Path(args.out)
    if run_dir is not None:
        return run_dir / "report.md"
    raise InputError("required when the inputs are files (or '-' for stdout)", field="-o/--out")


def _use_the_runs_gates(args: argparse.Namespace, run_dir: Path) -> None:
    """A run directory is judged by the gates its config.yaml set (the run's gate job used them),
    not by the default preset: `po-tui report RUN_DIR` must not contradict the run's own verdict.
    --resamples and --seed typed on the command line still win."""
    opts = run_gate_options(run_dir)
    args.preset, args.gates = opts.get("preset"), opts.get("gates_file")
    if args.resamples == DEFAULT_RESAMPLES and "resamples" in opts:
        args.resamples = opts["resamples"]
    if args.seed == DEFAULT_SEED and "seed" in opts:
        args.seed = opts["seed"]


def run(args: argparse.Namespace) -> int:
    if args.json and args.out == "-":
        raise InputError("--json and -o - both write to stdout: give -o a file")
    given = [Path(p) for p in args.paths]
    run_dir = given[0] if len(given) == 1 and given[0].is_dir() else None
    if run_dir is not None and args.preset is None and args.gates is None:
        _use_the_runs_gates(args, run_dir)
    spec = load_gates(args.preset, args.gates)
    out = _out_path(args, run_dir)  # checked before any work
    if out is not None:
        check_out_file(out, field="-o/--out")
    with job_events(args, "report") as events:
        inputs = collect(args.paths, rescore=args.rescore, concepts_path=args.concepts, train_dir=args.train)
        report = build_report(
            # A device or FIFO as -o (/dev/null, a pipe) has no folder for plots to sit beside.
            inputs, spec, out=out, plots=not args.no_plots and not (out is not None and is_stream(out)), top=args.top,
            resamples=args.resamples, seed=args.seed
        )
        if out is None:
            sys.stdout.write(report.markdown)
        else:
            atomic_write_text(out, report.markdown)
            events.artifact(str(out), "report")
        gate = report.summary["gate"]
        events.summary.update(report=str(out) if out else None, runs=len(inputs.runs),
                              verdict=None if gate is None else ("pass" if gate["passed"] else "fail"))
    if out is not None:
        verdict = "no gate" if gate is None else f"gate {'PASS' if gate['passed'] else 'FAIL'}"
        plots = f", {len(report.images)} plot(s)" if report.images else ", text charts"
        sys.stderr.write(f"po-tui report: wrote {one_line(out)} ({len(inputs.runs)} run(s), {verdict}{plots})\n")
    if args.json:
        sys.stdout.write(json.dumps({"report": str(out) if out else None, **report.summary}, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0
