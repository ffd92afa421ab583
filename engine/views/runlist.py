"""The run directories under a folder, newest first, one summary row each (`po-tui runs`, the cockpit's picker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.runlog.state import RunState
from engine.views.rundir import list_run_dirs, load_manifest, read_engine
from engine.views.snapshot import build, iso
from engine.views.watch import RunWatcher

LIVE = ("running", "pending")


def summarize(run_dir: Path, watcher: RunWatcher | None = None, *, now: float | None = None) -> dict[str, Any]:
    """One row of the listing: the status document reduced to what tells runs apart.

    A run with a manifest is summarized from it and engine.pid alone (a long run's event logs
    can hold millions of events), unless a `watcher` (RunWatcher, incremental) is given for it:
    then the current stage's progress and ETA come from its events. Without a manifest, its event
    logs are folded; a damaged one shows as state "damaged" (`po-tui status` says what is wrong).
    """
    manifest, damaged = load_manifest(run_dir)
    if damaged is None and (manifest is None or watcher is not None):
        run = (watcher or RunWatcher(run_dir)).refresh()
    else:
        run = RunState()
    doc = build(run_dir, run, manifest, read_engine(run_dir), now=now)
    if damaged is not None:  # one bad run must not hide the others, nor pass for "pending"
        doc["state"], doc["current_stage"] = "damaged", None
    created = doc["created_at"]
    if created is None:
        try:
            created = iso(run_dir.stat().st_mtime)
        except OSError:
            created = None
    current = next((j for j in doc["jobs"] if j["name"] == doc["current_stage"]), None)
    running = current is not None and current["state"] == "running"
    progress = current["progress"] if running else None
    return {
        "run_id": doc["run_id"],
        "created_at": created,
        "state": doc["state"],
        "stage": doc["current_stage"],
        "gate": doc["gate"]["verdict"] if doc["gate"] else None,
        "jobs": len(doc["jobs"]),
        "jobs_done": sum(j["state"] in ("succeeded", "skipped") for j in doc["jobs"]),
        "stage_percent": progress["percent"] if progress else None,
        "eta_s": current["eta_s"] if running else None,
        "path": str(run_dir),
    }


def list_runs(root: Path) -> list[dict[str, Any]]:
    return newest_first([summarize(p) for p in list_run_dirs(root)])


def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ISO-8601 UTC strings sort as times; ties (and unknown times) by path."""
    return sorted(rows, key=lambda r: (r["created_at"] or "", r["path"]), reverse=True)


class LiveRuns:
    """The listing refreshed over and over (the picker, every two seconds): a run the engine is
    driving gets a RunWatcher kept between refreshes, so its progress and ETA cost only the events
    appended since the last look; finished runs stay manifest-only, and their watchers are dropped.
    """

    def __init__(self) -> None:
        self.watchers: dict[str, RunWatcher] = {}

    def gather(self, roots: list[Path], *, now: float | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """Every run under the roots that exist, newest first; and one line per root that could not be read."""
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        seen: set[str] = set()
        for root in roots:
            if not root.is_dir():
                continue
            try:
                for run_dir in list_run_dirs(root):
                    key = str(run_dir)
                    if key in seen:
                        continue  # a root inside another
                    seen.add(key)
                    rows.append(summarize(run_dir, self._watcher(run_dir), now=now))
            except InputError as exc:
                problems.append(str(exc))
            except OSError as exc:  # a root unreadable or gone mid-listing: a line, not a fault
                problems.append(f"{root}: {exc.strerror or exc}")
        for key in [k for k in self.watchers if k not in seen]:
            del self.watchers[key]
        return newest_first(rows), problems

    def _watcher(self, run_dir: Path) -> RunWatcher | None:
        manifest, _ = load_manifest(run_dir)
        key = str(run_dir)
        if manifest is None or manifest.get("state") not in LIVE:
            self.watchers.pop(key, None)
            return None
        if key not in self.watchers:
            self.watchers[key] = RunWatcher(run_dir)
        return self.watchers[key]
