"""`po-tui import FILE -o teacher.jsonl`: teacher records from the replaced system's files."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from engine.core.inert import one_line
from engine.core.metric import DEFAULT_METRIC, METRICS
from engine.runlog.job import add_job_args, job_events
from engine.stages.importer import import_records
from engine.store.atomic import atomic_write_jsonl
from engine.store.outpath import check_out_file


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import",
        parents=[common],
        help="rebuild teacher records from supervised pairs or legacy teacher files",
        description=(
            "Read supervised prompt/response pairs (both prompt layouts), legacy teacher records, the "
            "validation layout or chat records and write teacher records (docs/formats.md), scored with --metric."
        ),
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="teacher JSONL to write (atomically)")
    p.add_argument("--metric", choices=METRICS, default=DEFAULT_METRIC, help="default: %(default)s")
    add_job_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    def warn(message: str) -> None:
        sys.stderr.write(f"po-tui import: warning: {message}\n")

    check_out_file(args.out)  # before any work: nothing is written for a bad OUT
    with job_events(args, "import") as events:
        kind, records = import_records(args.file, metric=args.metric, warn=warn)
        atomic_write_jsonl(args.out, records)
        problems = Counter(r["metadata"].get("import_format_error") for r in records)
        problems.pop(None, None)
        events.summary.update(records=len(records), layout=kind, format_errors=dict(problems))
    note = f", {sum(problems.values())} with format errors ({', '.join(f'{k} {v}' for k, v in problems.items())})" if problems else ""
    sys.stderr.write(f"po-tui import: {len(records)} {kind} records -> {one_line(args.out)} (scored {args.metric}){note}\n")
    return 0
