"""`po-tui concepts`: write N deterministic synthetic concepts as JSONL (file or stdout).

Validation happens before anything is generated or written, so bad input leaves no file behind;
the file itself is written atomically, so a reader never sees half a dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from engine.commands import argtypes
from engine.core.inert import one_line
from engine.errors import InputError
from engine.runlog.job import add_job_args, job_events
from engine.stages.concepts import MAX_COUNT, TIERS, generate_concepts, normalize_tiers
from engine.store.atomic import atomic_write_jsonl
from engine.store.outpath import check_out_file


def register(subparsers, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "concepts",
        parents=[common],
        help="generate deterministic synthetic product concepts (JSONL)",
        description=(
            "Generate COUNT synthetic product concepts with requirements YAML, one JSON object "
            "per line. The same --count, --seed and --start-index always give the same bytes. "
            "A seeded fraction (--conflict-rate) gets out-of-scope functional requirements, "
            "listed in metadata.injected_conflicts."
        ),
    )
    p.add_argument("--count", type=int, required=True, help="number of concepts (>= 1)")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="random seed (default: 0)")
    p.add_argument(
        "-o", "--output", default=None, metavar="FILE",
        help="output JSONL file; '-' or omitted writes to stdout",
    )
    p.add_argument(
        "--tiers", default=",".join(TIERS),
        help=f"comma-separated tiers to cycle through (default: {','.join(TIERS)})",
    )
    p.add_argument(
        "--conflict-rate", type=float, default=0.1, metavar="RATE",
        help="probability in [0, 1] that a concept gets out-of-scope requirements (default: 0.1)",
    )
    p.add_argument(
        "--start-index", type=int, default=1, metavar="N",
        help="number of the first concept id, POCON-%%04d (default: 1)",
    )
    add_job_args(p)
    p.set_defaults(func=run)
    return p


def _validated(args: argparse.Namespace) -> tuple[int, int, tuple[str, ...], float, int]:
    if not 1 <= args.count <= MAX_COUNT:
        raise InputError(f"must be between 1 and {MAX_COUNT:,}, got {args.count}", field="--count")
    rate = args.conflict_rate
    if not 0.0 <= rate <= 1.0:  # also rejects nan
        raise InputError(f"must be between 0 and 1, got {rate}", field="--conflict-rate")
    if args.start_index < 1:
        raise InputError(f"must be at least 1, got {args.start_index}", field="--start-index")
    try:
        tiers = normalize_tiers(str(args.tiers).split(","))
    except ValueError as exc:
        raise InputError(str(exc), field="--tiers") from None
    if args.output not in (None, "-"):
        check_out_file(args.output, field="-o/--output")
    return args.count, args.seed, tiers, rate, args.start_index


def run(args: argparse.Namespace) -> int:
    count, seed, tiers, rate, start = _validated(args)
    with job_events(args, "concepts") as events:
        events.progress(0, count, unit="concepts")
        rows = generate_concepts(count, seed, tiers=tiers, conflict_rate=rate, start_index=start)
        events.progress(len(rows), count, unit="concepts")

        to_stdout = args.output in (None, "-")
        if to_stdout:
            out = sys.stdout
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            where = "stdout"
        else:
            try:
                path = atomic_write_jsonl(args.output, rows)
            except OSError as exc:
                raise InputError(f"cannot write: {exc.strerror or exc}", path=args.output) from None
            where = str(path)
            events.artifact(where, "concepts", size=path.stat().st_size)

        by_tier = Counter(row["tier"] for row in rows)
        conflicts = sum(1 for row in rows if row["metadata"]["injected_conflicts"])
        events.summary.update(count=len(rows), tiers=dict(by_tier), conflicts=conflicts, seed=seed)
    spread = ", ".join(f"{t} {by_tier[t]}" for t in tiers)
    sys.stderr.write(
        f"po-tui concepts: {len(rows)} concepts ({spread}; {conflicts} with injected conflicts)"
        f" seed {seed} -> {one_line(where)}\n"
    )
    return 0
