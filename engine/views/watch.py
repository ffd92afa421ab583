"""Fold a run directory's event logs incrementally: one EventTail per job file, one RunState.

`refresh()` reads only what was appended since the last call (new job files are picked up, a
replaced or truncated file is refolded from its start), so `po-tui status --follow` costs the
same on a ten-million-event run as on a fresh one. Damaged lines are skipped and counted.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import engine.runlog.reducers  # noqa: F401  (registers the stage folds the views show)
from engine.runlog.events import job_of_path
from engine.runlog.state import RunState
from engine.runlog.tail import EventTail
from engine.views.rundir import event_files


class RunWatcher:
    """The live RunState of one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.run = RunState()
        self.tails: dict[str, EventTail] = {}

    def refresh(self) -> RunState:
        """Fold everything appended since the last refresh (all of it on the first)."""
        for path in event_files(self.run_dir):
            job = job_of_path(path)
            if job not in self.tails:
                self.tails[job] = EventTail(path)
                self.run.job(job)
        batches: list[list[dict[str, Any]]] = []
        for job, tail in self.tails.items():
            events = self._drain(job, tail)
            if tail.reset:
                # The file was replaced: what was folded from it is void. Fold it all again.
                self.run.forget(job)
                tail.reset = False
            batches.append(events)
        # Interleave jobs by time, as a batch reader would (within a file, seq order is kept).
        for event in heapq.merge(*batches, key=lambda e: (e["ts"], e["seq"])):
            self.run.apply(event)
        self.run.check_liveness()
        for job, tail in self.tails.items():
            # A job that has ended (found only now, on a first read) leaves an incomplete line
            # that will never complete: look at it again as torn (or as a line without "\n").
            if tail.pending_bytes and self.run.jobs[job].state not in ("running", "pending"):
                self.run.apply_all(tail.poll(final=True))
        return self.run

    def _drain(self, job: str, tail: EventTail) -> list[dict[str, Any]]:
        # A torn last line is only torn once its writer is done; while it runs it is mid-append.
        final = self.run.jobs[job].state not in ("running", "pending")
        events: list[dict[str, Any]] = []
        reset = False
        while True:
            got = tail.poll(final=final)
            if tail.reset:
                events, reset = [], True
            events.extend(got)
            if tail.at_eof:
                break
        tail.reset = reset
        # Kept in file (seq) order: heapq.merge never reorders within one input, so a clock
        # stepping backwards only misplaces the interleaving, never drops an event.
        return events

    def damage(self) -> dict[str, dict[str, Any]]:
        """Per job: damaged lines skipped and a torn last line, if any."""
        out: dict[str, dict[str, Any]] = {}
        for job, tail in self.tails.items():
            if tail.corrupt_count or tail.torn is not None:
                out[job] = {
                    "corrupt_lines": tail.corrupt_count,
                    "corrupt_at": list(tail.corrupt_lines)[:10],
                    "torn": tail.torn.describe() if tail.torn is not None else None,
                }
        return out
