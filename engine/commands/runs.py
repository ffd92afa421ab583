"""`po-tui runs [DIR]`: the run directories under DIR, newest first, with how each ended.

A run directory is any directory with a manifest.json or an event log, so old demo runs
(artifacts/demo/run-*, event logs only) are listed too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.core.inert import one_line
from engine.pipeline.runsdir import runs_dir
from engine.views import render
from engine.views.runlist import list_runs

FORMAT = "po-tui-runs/1"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "runs",
        parents=[common],
        help="list run directories (newest first) with state, stage and gate verdict",
        description="List the run directories under DIR, newest first.",
    )
    p.add_argument("dir", metavar="DIR", nargs="?",
                   help="where the runs are (default: $PO_TUI_RUNS_DIR, else runs_dir in ./po-tui.yaml, else ./runs)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = runs_dir(args.dir, flag_name="DIR")
    rows = list_runs(root)
    if args.json:
        sys.stdout.write(json.dumps({"format": FORMAT, "dir": str(root), "runs": rows}, indent=2, ensure_ascii=False) + "\n")
        return 0
    if sys.stdout.isatty():
        console = Console(highlight=False)
    else:
        console = Console(highlight=False, no_color=True, width=int(os.environ.get("COLUMNS", "0") or 0) or 160)
    if not rows:
        console.print(Text(f"no run directories in {one_line(str(root), 300)}"))
        return 0
    table = Table(title_justify="left")
    for column in ("run", "created", "state", "stage", "gate", "path"):
        table.add_column(column, overflow="fold")
    for r in rows:
        gate = r["gate"]
        table.add_row(
            Text(one_line(r["run_id"], 60)),
            Text(one_line(r["created_at"] or "-", 30)),
            render.state_text(r["state"]),
            Text(one_line(r["stage"] or "-", 40)),
            Text(one_line(gate, 10).upper(), style=render.VERDICT_STYLES.get(gate, "")) if gate else Text("-"),
            Text(one_line(r["path"], 300)),
        )
    console.print(table)
    return 0
