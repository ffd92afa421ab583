"""The `po-tui` command line: one entry point, a sub-command per job.

Each sub-command lives in `engine.commands.<name>` and exposes `register(subparsers)`, which
adds its parser and sets `func(args) -> int`. Bad input (`InputError`) becomes one line on
stderr and exit code 2; `--debug` (or PO_TUI_DEBUG=1) shows the traceback instead.

The `po-tui` script is po_tui/cli.py's `main`, which calls this one with the cockpit (the engine
never imports the UI); `python -m engine` calls it without one (engine/commands/__init__.py).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import traceback
from typing import Sequence

from engine.commands import Cockpit, can_show_cockpit
from engine.core.inert import one_line
from engine.errors import InputError, StageFailed

COMMANDS = (
    "score", "concepts", "teacher", "import", "prep", "train", "demo", "stats", "make-tiny-model", "export", "gate", "eval",
    "report", "status", "runs", "init", "run", "cancel", "attach",
)

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
    parser.add_argument("--runs-dir", metavar="DIR", dest="picker_runs_dir",
                        help="`po-tui` alone: the runs picker lists DIR (default: $PO_TUI_RUNS_DIR, else runs_dir in "
                             "./po-tui.yaml, else ./runs) and starts new runs there")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"engine.commands.{MODULES.get(name, name)}")
        module.register(sub, common)
    return parser


# OS errors a user causes and fixes (a path that is wrong, unwritable or of the wrong kind):
# exit 2 like any bad input. Others (a full disk, an I/O error) exit 1.
USER_ERRNOS = {
    errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
    errno.ENAMETOOLONG, errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.ETXTBSY, errno.EINVAL,
}


def _unexpected(exc: BaseException) -> str | None:
    """One line for an OS, decoding or nesting failure no reader caught; None: a bug, re-raise."""
    if isinstance(exc, OSError):
        if exc.filename is None:
            return None
        names = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
        return one_line(f"{names}: {exc.strerror or exc}")
    if isinstance(exc, UnicodeDecodeError):
        return one_line(f"input is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})")
    if isinstance(exc, UnicodeError):
        return "input holds text that cannot be written as UTF-8 (a lone surrogate escape such as \\ud800?)"
    return "input nested too deeply to process"


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (po-tui cancel, the engine) ends a stage like Ctrl-C: its event log says cancelled.
    raise KeyboardInterrupt


def _picker_dir(args: argparse.Namespace):
    from engine.pipeline.runsdir import runs_dir

    return runs_dir(args.picker_runs_dir)


def directory_shorthand(argv: list[str]) -> list[str]:
    """`po-tui DIR`: a run directory opens its cockpit (`attach DIR`), any other directory the
    runs picker over it (`--runs-dir DIR`). Only for a first argument that is no command and no
    option but an existing directory, so every other command line parses as before."""
    from pathlib import Path

    from engine.views.rundir import is_run_dir

    if not argv or argv[0] in COMMANDS or argv[0].startswith("-") or not Path(argv[0]).is_dir():
        return argv
    first, rest = argv[0], argv[1:]
    return ["attach", first, *rest] if is_run_dir(Path(first)) else ["--runs-dir", first, *rest]


def _prog(args: argparse.Namespace) -> str:
    return f"po-tui {args.command}" if args.command else "po-tui"


def main(argv: Sequence[str] | None = None, *, cockpit: Cockpit | None = None) -> int:
    """Run one sub-command; `cockpit` is what opens the UI (None: headless, as `python -m engine`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding app): leave signals alone
        pass
    parser = build_parser()
    if cockpit is not None:
        argv = directory_shorthand(argv)
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("PO_TUI_DEBUG") == "1"
    if not getattr(args, "func", None):
        if args.command is not None or cockpit is None or not can_show_cockpit():
            parser.print_help()
            return EXIT_USAGE
        args.func, args.command = lambda a: cockpit.pick(_picker_dir(a)), ""  # `po-tui` alone: the runs picker
    args.cockpit = cockpit
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"{_prog(args)}: error: {one_line(exc)}\n")
        return EXIT_USAGE
    except StageFailed as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"{_prog(args)}: failed: {one_line(exc)}\n")
        return EXIT_FAIL
    except KeyboardInterrupt:
        sys.stderr.write(f"{_prog(args)}: interrupted\n")
        return 130
    except BrokenPipeError:
        # `po-tui score ... | head` closed the pipe: not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except (OSError, UnicodeError, RecursionError) as exc:
        # Last resort: the readers and writers turn these into located InputErrors; one that
        # slipped past them is still a line naming the file, not a traceback.
        line = _unexpected(exc)
        if line is None:
            raise
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"{_prog(args)}: error: {line}\n")
        return EXIT_USAGE if not isinstance(exc, OSError) or exc.errno in USER_ERRNOS else EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
