"""What a user may do to a run from here (cancel, resume, retry), and why not when they may not.

The cockpit disables a control by saying why (a run driven from another host, an engine already
driving it, nothing running); the checks mirror the ones `po-tui cancel` and `po-tui run
--resume` make, so a control offered here is one the engine will accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.pipeline.manifest import running_jobs
from engine.views.rundir import load_manifest, read_engine


@dataclass(frozen=True)
class Control:
    """One action: whether it can work now, and otherwise why not (one line)."""

    ok: bool
    why: str = ""


@dataclass(frozen=True)
class Controls:
    cancel: Control
    resume: Control
    retry: Control


def controls(run_dir: str | Path, manifest: dict[str, Any] | None) -> Controls:
    run_dir = Path(run_dir)
    if manifest is None:
        damaged = load_manifest(run_dir)[1]
        why = f"{damaged} (read-only)" if damaged else "no manifest.json: this run was not started by `po-tui run` (read-only)"
        no = Control(False, why)
        return Controls(no, no, no)
    state = str(manifest.get("state") or "pending")
    engine = read_engine(run_dir)
    remote = engine is not None and engine.alive is None and state in ("running", "pending")
    if remote:
        where = f"the engine runs on host {engine.host}"
        return Controls(Control(False, f"{where}: cancel it there (po-tui cancel {run_dir})"),
                        Control(False, f"{where}; resume there once it stops"),
                        Control(False, f"{where}; resume there once it stops"))
    live = engine is not None and engine.alive
    orphans = [] if live else running_jobs(run_dir, manifest)
    if live or orphans:
        cancel = Control(True)
    elif state in ("running", "pending"):
        cancel = Control(True) if any(j.get("state") == "running" for j in manifest.get("jobs", [])) else \
            Control(False, "nothing is running (no live engine or job)")
    else:
        cancel = Control(False, f"nothing to cancel: the run is {state}")
    if live:
        busy = Control(False, f"an engine (pid {engine.pid}) is driving this run")
        return Controls(cancel, busy, busy)
    if orphans:
        busy = Control(False, f"job {orphans[0]['name']} still runs without its engine: cancel it first")
        return Controls(cancel, busy, busy)
    if not (run_dir / "config.yaml").is_file():
        no = Control(False, "no config.yaml in the run directory: it cannot be resumed")
        return Controls(cancel, no, no)
    failed = state == "failed" or any(j.get("state") == "failed" for j in manifest.get("jobs", []))
    retry = Control(True) if failed else Control(False, "no failed stage to retry")
    if state == "succeeded":
        # Resuming a finished run would only rewrite its jobs as skipped; a changed config.yaml is
        # resumed from the command line, where the engine says what it will run again.
        done = Control(False, f"the run succeeded: nothing to resume (after editing its config.yaml: po-tui run --resume {run_dir})")
        return Controls(cancel, done, retry)
    return Controls(cancel, Control(True), retry)
