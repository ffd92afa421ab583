"""The `po-tui` script: the engine's command line, handed the cockpit that opens the UI.

Dependencies point one way: this module imports the engine, never the reverse. `main` gives
`engine.cli.main` this module's `attach` and `pick` (an `engine.commands.Cockpit`), which the
`run`, `demo` and `attach` commands and `po-tui` alone call; `python -m engine` runs without them.
Textual is loaded only when a cockpit opens, so the headless commands start as fast as before.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from engine.cli import main as engine_main

# What a cockpit's exit value means to the person who started it.
AFTER = {
    "detach": "the run goes on in the background: follow it with `po-tui attach {run}`, stop it with `po-tui cancel {run}`",
    "cancel": "run {run} cancelled; continue it with `po-tui run --resume {run}`",
}


def attach(run_dir: str | Path, *, owned: bool = False, back: bool = False) -> str | None:
    """Run the cockpit on RUN_DIR until it quits; how it ended ("back", "detach", "cancel", None)."""
    from po_tui.app import CockpitApp

    result = CockpitApp(run_dir, owned=owned, back=back).run()
    if result in AFTER:
        print(AFTER[result].format(run=run_dir))
    return result


def pick(runs_dir: Path = Path("runs")) -> int:
    """`po-tui`: the runs picker over RUNS_DIR (and the demo's runs), then the cockpit on the chosen
    run; `b` there comes back. New runs (`n`) go into RUNS_DIR."""
    from po_tui.picker import RunsApp, roots_for

    while True:
        choice = RunsApp(roots_for(runs_dir), runs_dir=runs_dir).run()
        if choice is None:
            return 0
        what, run_dir = choice
        result = attach(run_dir, owned=what == "started", back=True)
        if result != "back":
            return 0


class _Cockpit:
    """The `engine.commands.Cockpit` this package provides: the functions above."""

    def attach(self, run_dir: Path, *, owned: bool = False) -> str | None:
        return attach(run_dir, owned=owned)

    def pick(self, runs_dir: Path) -> int:
        return pick(runs_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """`po-tui ARGS`: the engine's command line with the cockpit."""
    return engine_main(argv, cockpit=_Cockpit())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
