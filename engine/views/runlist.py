"""The run directories under a folder, newest first, one summary row each (`po-tui runs`, the cockpit's picker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.runlog.state import RunState
from engine.views.rundir import list_run_dirs, load_manifest, read_engine
from engine.views.snapshot import build, iso
from engine.views.watch import RunWatcher


def summarize(run_dir: Path) -> dict[str, Any]:
    """One row of the listing: the status document reduced to what tells runs apart.

    A run with a manifest is summarized from it and engine.pid alone (a long run's event logs
    can hold millions of events); without one, its event logs are folded; a damaged one shows as
    state "damaged" (`po-tui status` says what is wrong).
    """
    manifest, damaged = load_manifest(run_dir)
    run = RunState() if manifest is not None or damaged is not None else RunWatcher(run_dir).refresh()
    doc = build(run_dir, run, manifest, read_engine(run_dir))
    if damaged is not None:  # one bad run must not hide the others, nor pass for "pending"
        doc["state"], doc["current_stage"] = "damaged", None
    created = doc["created_at"]
    if created is None:
        try:
            created = iso(run_dir.stat().st_mtime)
        except OSError:
            created = None
    return {
        "run_id": doc["run_id"],
        "created_at": created,
        "state": doc["state"],
        "stage": doc["current_stage"],
        "gate": doc["gate"]["verdict"] if doc["gate"] else None,
        "jobs": len(doc["jobs"]),
        "path": str(run_dir),
    }


def list_runs(root: Path) -> list[dict[str, Any]]:
    return newest_first([summarize(p) for p in list_run_dirs(root)])


def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ISO-8601 UTC strings sort as times; ties (and unknown times) by path."""
    return sorted(rows, key=lambda r: (r["created_at"] or "", r["path"]), reverse=True)
