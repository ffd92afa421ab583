"""CLI sub-commands: each module has `register(subparsers, common)` and sets `func`."""

import os
import sys


def can_show_cockpit() -> bool:
    """A terminal on both ends (not a pipe, nohup or CI) that can draw: where the cockpit opens."""
    return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
