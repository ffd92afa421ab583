"""`po-tui score`: re-score any supported file with po-v1 or po-v2."""

from __future__ import annotations

import argparse
import json
import sys

from engine.core.metric import DEFAULT_METRIC, METRICS
from engine.core.records import read_concepts, read_samples
from engine.core.scoring import ScoreSummary, score_sample, summarize
from engine.errors import InputError
from engine.runlog.job import add_job_args, job_events
from engine.store.atomic import atomic_write_jsonl
from engine.store.outpath import check_out_file


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "score",
        parents=[common],
        help="score a teacher, validation, supervised or eval-results file",
        description=(
            "Score every record of FILE and write one JSON line per record "
            '({"id","score","breakdown","valid","reason"}) in input order to OUT or stdout; '
            "a summary goes to stderr. Exit 0 when scored, 2 on bad input (a file with no "
            "records included), with nothing written."
        ),
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--concepts",
        metavar="FILE",
        help="concepts (any layout with concept_id) to join eval results to their requirements",
    )
    p.add_argument("--metric", choices=METRICS, default=DEFAULT_METRIC, help="default: %(default)s")
    p.add_argument("-o", "--out", metavar="OUT", help="write JSONL here (atomically) instead of stdout")
    add_job_args(p)
    p.set_defaults(func=run)


def _warn(message: str) -> None:
    sys.stderr.write(f"po-tui score: warning: {message}\n")


def format_summary(summary: ScoreSummary, metric: str) -> list[str]:
    s = summary.stats
    basis = " as recorded" if summary.uses_recorded_status else ""
    if s["n"]:
        head = (
            f"score [{metric}]: {summary.n} records, mean {s['mean']:.4f} over "
            f"{summary.counted_valid} valid{basis} (std {s['std']:.4f}, min {s['min']:.4f}, "
            f"max {s['max']:.4f})"
        )
    else:
        head = f"score [{metric}]: {summary.n} records, none valid{basis}"
    lines = [head]
    invalid = summary.n - summary.format_valid
    if invalid or summary.uses_recorded_status:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.reasons.items()))
        lines.append(
            f"format check: {summary.format_valid} valid, {invalid} format_error"
            + (f" ({reasons})" if reasons else "")
        )
    if summary.recorded_compared:
        lines.append(
            f"recorded scores: {summary.recorded_matched}/{summary.recorded_compared} reproduced "
            f"within 1e-9 (max |diff| {summary.max_diff:.3g})"
        )
    if summary.recorded_other_metric:
        names = ", ".join(sorted(summary.recorded_other_metric))
        lines.append(f"recorded scores are {names}: not compared with {metric}")
    return lines


def run(args: argparse.Namespace) -> int:
    if args.out:
        check_out_file(args.out)  # before any work: nothing is written for a bad OUT
    with job_events(args, "score") as events:
        concepts = read_concepts(args.concepts, warn=_warn) if args.concepts else None
        kind, samples = read_samples(args.file, concepts=concepts, warn=_warn)
        if not samples:  # an empty output and exit 0 would read as success
            raise InputError("no records: nothing to score", path=args.file)
        for sample in samples:
            if sample.concept is None:
                raise InputError(
                    "no requirements to score against: pass --concepts FILE to join by concept_id",
                    path=args.file,
                    field=f"{sample.where}.concept_id" if sample.where else "concept_id",
                )
        scored = [score_sample(s, args.metric) for s in samples]
        events.progress(len(scored), len(samples), unit="records")
        rows = [r.as_row() for r in scored]
        if args.out:
            path = atomic_write_jsonl(args.out, rows)
            events.artifact(str(path), "scores", size=path.stat().st_size)
        else:
            out = sys.stdout
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
        summary = summarize(scored)
        events.summary.update(
            file_kind=kind, metric=args.metric, n=summary.n, valid=summary.counted_valid,
            mean=summary.stats["mean"], format_errors=dict(summary.reasons),
        )
    for line in format_summary(summary, args.metric):
        sys.stderr.write(line + "\n")
    return 0
