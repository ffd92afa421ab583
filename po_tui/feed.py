"""The worker side of the cockpit: read what a run directory gained since the last poll.

A `RunFeed` holds one EventTail per job event log and a byte offset per stdout/stderr log, so a
poll costs only what was appended (never a re-read). It owns no folded state: it hands back a
`Batch` that the app folds on its own thread, which keeps the data flow one way.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from engine.runlog.events import job_of_path
from engine.runlog.tail import EventTail
from engine.views.rundir import event_files, read_manifest

LOG_STREAMS = ("stdout", "stderr")
LOG_FIRST_READ = 64 << 10  # on attach, only the last 64 KiB of each log: the pane is a tail
LOG_POLL_BYTES = 1 << 20
# A finished run replays in slices of about this many events: each is one message, folded in
# one go on the UI thread (some 2 us an event), so it bounds both that pause and what a message
# holds in memory. bench/tui_ingest.py measures both (docs/BENCHMARKS.md).
MAX_BATCH_EVENTS = 5_000
# What one EventTail.poll reads at most: a slice overshoots MAX_BATCH_EVENTS by one such read
# (some 1,900 events of 280 bytes; the EventTail default, 4 MiB, would be 15,000).
TAIL_POLL_BYTES = 512 << 10


class LogLine(NamedTuple):
    """One line of a job's stdout/stderr log and when it was written, as near as the feed can tell.

    Plain logs carry no times of their own: `ts` is the log file's modification time when the
    line was read, i.e. the time by which it had been written (within one poll, 0.2 s live). It is
    what lets the Logs tab merge the jobs' lines in the order they happened, not grouped by job:
    on attaching to a finished run, a stage that ended earlier has the older file.
    """

    job: str
    stream: str  # "stdout" or "stderr"
    text: str
    ts: float


@dataclass
class Batch:
    """What one poll found: events in (ts, seq) order, jobs whose file was replaced, log lines."""

    events: list[dict[str, Any]] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)
    log_lines: list[LogLine] = field(default_factory=list)  # in ts order (stable: a file's lines keep theirs)
    manifest: dict[str, Any] | None = None
    more: bool = False  # a slice of a long backlog: poll again at once

    def __bool__(self) -> bool:
        return bool(self.events or self.resets or self.log_lines or self.manifest is not None)


class _LogTail:
    """Complete lines appended to a plain text log (a partial last line waits for its newline)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset: int | None = None
        self.partial = b""

    def poll(self) -> tuple[list[str], float]:
        """The new complete lines and the file's modification time when they were read."""
        try:
            with open(self.path, "rb") as fh:
                mtime = os.fstat(fh.fileno()).st_mtime
                size = fh.seek(0, 2)
                if self.offset is None:
                    self.offset = max(0, size - LOG_FIRST_READ)
                    skip_first = self.offset > 0
                else:
                    skip_first = False
                if size < self.offset:  # truncated or replaced: start again
                    self.offset, self.partial = 0, b""
                fh.seek(self.offset)
                chunk = fh.read(LOG_POLL_BYTES)
        except OSError:
            return [], 0.0
        self.offset += len(chunk)
        data = self.partial + chunk
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        lines = data[:cut].decode("utf-8", errors="replace").split("\n")[:-1]
        return (lines[1:] if skip_first else lines), mtime


def _ts(line: LogLine) -> float:
    return line.ts


class RunFeed:
    """Incremental reader of one run directory (call `poll` from a worker thread)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.tails: dict[str, EventTail] = {}
        self.logs: dict[tuple[str, str], _LogTail] = {}
        self._manifest_stamp: tuple[int, int] | None = None

    def poll(self) -> Batch:
        batch = Batch()
        for path in event_files(self.run_dir):
            job = job_of_path(path)
            if job not in self.tails:
                self.tails[job] = EventTail(path, max_bytes=TAIL_POLL_BYTES)
        slices: list[list[dict[str, Any]]] = []
        budget = MAX_BATCH_EVENTS
        for job, tail in self.tails.items():
            events: list[dict[str, Any]] = []
            while budget > 0:
                got = tail.poll()
                if tail.reset:
                    batch.resets.append(job)
                    events = []
                events.extend(got)
                budget -= len(got)
                if tail.at_eof:
                    break
            batch.more = batch.more or not tail.at_eof
            if events:
                slices.append(events)
        if len(slices) == 1:  # one job wrote: its events are in order already
            batch.events = slices[0]
        else:
            batch.events = list(heapq.merge(*slices, key=lambda e: (e["ts"], e["seq"])))
        for job in self.tails:
            for stream in LOG_STREAMS:
                key = (job, stream)
                if key not in self.logs:
                    self.logs[key] = _LogTail(self.run_dir / f"{job}.{stream}.log")
                lines, mtime = self.logs[key].poll()
                batch.log_lines.extend(LogLine(job, stream, line, mtime) for line in lines)
        batch.log_lines.sort(key=_ts)  # stable: one file's lines share a time and keep their order
        batch.manifest = self._manifest_if_changed()
        return batch

    def damage(self) -> int:
        """Damaged lines skipped so far, over all jobs."""
        return sum(t.corrupt_count for t in self.tails.values())

    def _manifest_if_changed(self) -> dict[str, Any] | None:
        path = self.run_dir / "manifest.json"
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._manifest_stamp:
            return None
        doc = read_manifest(self.run_dir)
        if doc is not None:
            self._manifest_stamp = stamp
        return doc
