"""`po-tui attach RUN_DIR`: open the Textual cockpit on a run, live or finished.

The engine must never import the UI (tests/test_architecture.py), so the cockpit is loaded by
module name at run time, and only here.
"""

from __future__ import annotations

import argparse
import importlib

from engine.commands import can_show_cockpit
from engine.errors import InputError
from engine.views.rundir import require_run_dir


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "attach",
        parents=[common],
        help="follow a run in the terminal UI (tabs: pipeline, teacher, training, evaluation, gate, logs)",
        description="Open the cockpit on RUN_DIR: follows its event logs as another process (the engine) writes them; a finished run replays at once.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir = require_run_dir(args.run_dir)
    if not can_show_cockpit():
        # Without a terminal the cockpit would wait for keys that never come (a pipe, nohup, CI).
        raise InputError(f"the cockpit needs a terminal (stdin and stdout are not both a TTY, or TERM=dumb): "
                         f"follow the run with `po-tui status --follow {run_dir}`")
    cockpit = importlib.import_module("po_tui.cli")
    cockpit.attach(run_dir)
    return 0
