"""`po-tui stats FILE`: what a dataset holds (counts, duplicates, scores, statuses, tokens)."""

from __future__ import annotations

import argparse
import json
import sys

from engine.commands import argtypes
from engine.core.metric import DEFAULT_METRIC, METRICS
from engine.stages.dataset_stats import dataset_stats, format_stats


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stats",
        parents=[common],
        help="what a dataset holds: counts, duplicates, scores, statuses, token lengths",
        description=(
            "Summarise a teacher, supervised, chat, validation or eval-results file before "
            "training: records, distinct concepts, exact duplicates, score distribution "
            "(recorded, or computed with --metric), tiers, REVIEW statuses, models, format "
            "validity and, with --tokenizer, token lengths and truncation at --max-seq-len."
        ),
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="a local tokenizer directory (AutoTokenizer, offline) to measure token lengths",
    )
    p.add_argument(
        "--max-seq-len",
        metavar="N",
        type=argtypes.positive_int,
        help="count samples whose prompt+response exceeds N tokens (needs --tokenizer)",
    )
    p.add_argument(
        "--metric",
        choices=METRICS,
        default=DEFAULT_METRIC,
        help="metric for records without a recorded score (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=run)


def _warn(message: str) -> None:
    sys.stderr.write(f"po-tui stats: warning: {message}\n")


def run(args: argparse.Namespace) -> int:
    stats = dataset_stats(
        args.file,
        metric=args.metric,
        tokenizer=args.tokenizer,
        max_seq_len=args.max_seq_len,
        warn=_warn,
    )
    out = sys.stdout
    if args.json:
        out.write(json.dumps(stats, indent=2) + "\n")
    else:
        for line in format_stats(stats):
            out.write(line + "\n")
    out.flush()
    return 0
