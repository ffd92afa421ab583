"""`po-tui attach RUN_DIR`: open the Textual cockpit on a run, live or finished.

The engine never imports the UI (tests/test_architecture.py): the cockpit is the one the command
line was started with (`args.cockpit`, handed over by po_tui/cli.py); `python -m engine attach`
has none and says so in one line.
"""

from __future__ import annotations

import argparse

from engine.commands import can_show_cockpit, cockpit_of
from engine.errors import InputError
from engine.views.rundir import require_run_dir


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "attach",
        parents=[common],
        help="follow a run in the terminal UI (tabs: pipeline, teacher, training, evaluation, gate, logs)",
        description="Open the cockpit on RUN_DIR: follows its event logs as another process (the engine) writes them; "
        "a finished run replays at once.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir = require_run_dir(args.run_dir)
    cockpit = cockpit_of(args)
    if cockpit is None:
        raise InputError(f"the cockpit is not part of `python -m engine`: open it with `po-tui attach {run_dir}`, "
                         f"or follow the run with `po-tui status --follow {run_dir}`")
    if not can_show_cockpit():
        # Without a terminal the cockpit would wait for keys that never come (a pipe, nohup, CI).
        raise InputError(f"the cockpit needs a terminal (stdin and stdout are not both a TTY, or TERM=dumb): "
                         f"follow the run with `po-tui status --follow {run_dir}`")
    cockpit.attach(run_dir)
    return 0
