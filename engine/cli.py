"""The `po-tui` command line: one entry point, a sub-command per job.

Each sub-command lives in `engine.commands.<name>` and exposes `register(subparsers)`, which
adds its parser and sets `func(args) -> int`. Bad input (`InputError`) becomes one line on
stderr and exit code 2; `--debug` (or PO_TUI_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
from typing import Sequence

from engine.commands import can_show_cockpit
from engine.errors import InputError, StageFailed

COMMANDS = ("score", "concepts", "teacher", "import", "prep", "train", "demo", "stats", "make-tiny-model", "export", "gate", "eval", "report", "status", "runs", "init", "run", "cancel", "attach")

# Sub-commands whose module cannot carry their name (`import` is a keyword).
MODULES = {"import": "importer", "make-tiny-model": "make_tiny_model"}

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (prog: error: ...) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show full tracebacks on errors",
    )
    parser = _Parser(
        prog="po-tui",
        description="Distil a premium LLM into a small LoRA student for the Product Owner task.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"engine.commands.{MODULES.get(name, name)}")
        module.register(sub, common)
    return parser


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (po-tui cancel, the engine) ends a stage like Ctrl-C: its event log says cancelled.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding app): leave signals alone
        pass
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("PO_TUI_DEBUG") == "1"
    if not getattr(args, "func", None):
        if argv or not can_show_cockpit():
            parser.print_help()
            return EXIT_USAGE
        return int(importlib.import_module("po_tui.cli").pick() or 0)  # `po-tui` alone: the runs picker
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"po-tui {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except StageFailed as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"po-tui {args.command}: failed: {exc}\n")
        return EXIT_FAIL
    except KeyboardInterrupt:
        sys.stderr.write(f"po-tui {args.command}: interrupted\n")
        return 130
    except BrokenPipeError:
        # `po-tui score ... | head` closed the pipe: not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
