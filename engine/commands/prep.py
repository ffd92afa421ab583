"""`po-tui prep`: filter, dedupe and split a teacher dataset into train/val, accounting for every record."""

from __future__ import annotations

import argparse
import sys

from engine.commands import argtypes
from engine.core.inert import one_line
from engine.core.metric import DEFAULT_METRIC, METRICS
from engine.errors import InputError
from engine.runlog.job import add_job_args, job_events
from engine.stages.prep import FORMATS, STRATA_KEYS, PrepOptions, parse_map_status, prepare
from engine.store.lock import output_lock
from engine.store.outpath import check_out_dir


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "prep",
        parents=[common],
        help="filter, dedupe and split teacher records into train.jsonl / val.jsonl",
        description=(
            "Write DIR/train.jsonl (supervised or chat records), DIR/val.jsonl (held-out teacher records, "
            "usable as an evaluation set) and DIR/prep_report.json. Every input record is accounted for."
        ),
    )
    p.add_argument("--teacher", required=True, metavar="FILE", help="teacher records (any layout with answers)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--min-score", type=float, default=0.82, help="default: %(default)s")
    p.add_argument("--metric", choices=METRICS, default=DEFAULT_METRIC, help="metric for --min-score (default: %(default)s)")
    p.add_argument("--max-samples", type=int, metavar="N", help="keep at most N records (seeded random choice)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of concepts held out (default: %(default)s)")
    p.add_argument("--split-by", choices=("concept",), default="concept", help="all variants of a concept stay on one side")
    p.add_argument("--stratify", default=",".join(STRATA_KEYS), help="comma list from tier,status ('' for none)")
    p.add_argument("--seed", type=argtypes.seed, default=42)
    p.add_argument("--dedupe", action="store_true", help="drop exact duplicates (always reported)")
    p.add_argument("--format", choices=FORMATS, default="prompt-response", help="chat keeps messages for the tokenizer's chat template")
    p.add_argument("--map-status", action="append", default=[], metavar="OLD=NEW", help="map a legacy status, e.g. conflicts=misaligned")
    p.add_argument("--strict", action="store_true", help="fail on any invalid record (and on an eval-set leak)")
    p.add_argument("--eval-set", metavar="FILE", help="report how many of its concepts are in the training set")
    p.add_argument("--exclude-eval-set", action="store_true", help="hold the --eval-set concepts out of train and val")
    p.add_argument("--prompt-template", metavar="FILE", help="student prompt template (default: prompts/student.md)")
    add_job_args(p)
    p.set_defaults(func=run)


def options(args: argparse.Namespace) -> PrepOptions:
    stratify = tuple(k for k in (s.strip() for s in args.stratify.split(",")) if k)
    unknown = set(stratify) - set(STRATA_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(sorted(unknown))}: choose from {', '.join(STRATA_KEYS)}", field="--stratify")
    if args.max_samples is not None and args.max_samples < 1:
        raise InputError("must be at least 1", field="--max-samples")
    if args.exclude_eval_set and not args.eval_set:
        raise InputError("needs --eval-set FILE", field="--exclude-eval-set")
    return PrepOptions(
        min_score=args.min_score,
        max_samples=args.max_samples,
        val_fraction=args.val_fraction,
        stratify=stratify,
        seed=args.seed,
        dedupe=args.dedupe,
        format=args.format,
        map_status=parse_map_status(args.map_status),
        strict=args.strict,
        metric=args.metric,
        eval_set=args.eval_set,
        exclude_eval_set=args.exclude_eval_set,
        template=args.prompt_template,
    )


def report_lines(r: dict) -> list[str]:
    o = r["outcomes"]
    lines = [
        f"prep: {r['records']} records: {o['train']} train, {o['val']} val, {o['below_min_score']} below min-score, "
        f"{o['duplicate']} duplicate, {o['over_max_samples']} over --max-samples, {o['in_eval_set']} in eval set, {o['invalid']} invalid",
    ]
    if r["invalid_reasons"]:
        lines.append("  invalid: " + ", ".join(f"{k} {v}" for k, v in sorted(r["invalid_reasons"].items())))
    d = r["exact_duplicates"]
    if d["count"]:
        kept = " removed" if d["removed"] else " kept: use --dedupe to drop them"
        lines.append(f"  exact duplicates: {d['count']} (lines {', '.join(map(str, d['lines'][:10]))}){kept}")
    if r["legacy_statuses"]:
        mapping = r["status_mapping"]
        parts = [
            f"{k} {v} ({'mapped to ' + mapping[k] if k in mapping else 'not mapped: see --map-status'})"
            for k, v in sorted(r["legacy_statuses"].items())
        ]
        lines.append("  statuses outside the allowed set: " + ", ".join(parts))
    s = r["split"]
    lines.append(
        f"  split by concept (seed {s['seed']}): train {s['train_records']} records / {s['train_concepts']} concepts, "
        f"val {s['val_records']} records / {s['val_concepts']} concepts; concept overlap train/val: {s['concept_overlap_train_val']}"
    )
    e = r.get("eval_set_overlap")
    if e:
        flag = "  LEAK: " if e["in_train_by_content"] or e["in_train_by_id"] else "  "
        lines.append(f"{flag}eval set {e['file']}: {e['in_train_by_content']} of {e['concepts']} concepts are in train "
                     f"(by content), {e['in_train_by_id']} by id")
    sc = r["kept"]["score"]
    if sc.get("n"):
        lines.append(f"  kept score ({r['options']['metric']}): mean {sc['mean']:.4f}, median {sc['median']:.4f}, "
                     f"min {sc['min']:.4f}, max {sc['max']:.4f}")
    return lines


def run(args: argparse.Namespace) -> int:
    opts = options(args)

    def warn(message: str) -> None:
        sys.stderr.write(f"po-tui prep: warning: {message}\n")

    check_out_dir(args.out)  # before any work or lock: nothing is created for a bad --out
    # One writer per output directory, taken before the event log is opened.
    with output_lock(args.out, stage="prep"), job_events(args, "prep") as events:
        report = prepare(args.teacher, args.out, opts, warn=warn)
        events.summary.update(records=report["records"], **report["outcomes"])
    for line in report_lines(report):
        sys.stderr.write(line + "\n")
    sys.stderr.write(f"  wrote {one_line(args.out)}/train.jsonl, val.jsonl, prep_report.json\n")
    return 0
