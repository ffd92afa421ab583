"""Launching the cockpit. engine/commands/*.py load this module by name, so engine never imports textual."""

from __future__ import annotations

from pathlib import Path

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


def pick(roots: list[Path] | None = None) -> int:
    """`po-tui`: the runs picker, then the cockpit on the chosen run; `b` there comes back."""
    from po_tui.picker import RunsApp

    while True:
        choice = RunsApp(roots).run()
        if choice is None:
            return 0
        what, run_dir = choice
        result = attach(run_dir, owned=what == "started", back=True)
        if result != "back":
            return 0
