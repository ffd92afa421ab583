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


def run_owned(run_dir: str | Path) -> int:
    """`po-tui run CONFIG`: the engine runs detached; the cockpit follows it. Exit code as headless runs."""
    from engine.views.rundir import read_manifest

    attach(run_dir, owned=True)
    manifest = read_manifest(Path(run_dir)) or {}
    state = manifest.get("state")
    if state == "succeeded":
        verdict = str((manifest.get("gate") or {}).get("verdict", "fail"))
        print(f"run {run_dir}: succeeded; gate verdict {verdict.upper()}")
        return 0 if verdict == "pass" else 1
    if state in ("failed", "cancelled"):
        print(f"run {run_dir}: {state}")
        return 2 if state == "failed" else 130
    return 0  # still going, detached


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
