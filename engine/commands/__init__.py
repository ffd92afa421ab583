"""CLI sub-commands: each module has `register(subparsers, common)` and sets `func`.

The engine never imports the UI, not even by module name: whoever starts the command line hands
it a `Cockpit` (po_tui/cli.py does, for the `po-tui` script), and `engine.cli.main` puts it on
the parsed arguments as `args.cockpit`. `python -m engine` (the stages' subprocesses) has none:
the commands that would open the cockpit run headless or say in one line that it is not here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Protocol


class Cockpit(Protocol):
    """What the engine's commands may ask of the UI."""

    def attach(self, run_dir: Path, *, owned: bool = False) -> str | None:
        """Follow RUN_DIR until the cockpit quits; how it ended ("detach", "cancel", None, ...)."""

    def pick(self, runs_dir: Path) -> int:
        """The runs picker (`po-tui` alone) over RUNS_DIR, then the cockpit on the chosen run; an exit code."""


def can_show_cockpit() -> bool:
    """A terminal on both ends (not a pipe, nohup or CI) that can draw: where the cockpit opens."""
    return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def cockpit_of(args: object) -> Cockpit | None:
    """The cockpit the command line was started with; None under `python -m engine`."""
    return getattr(args, "cockpit", None)
