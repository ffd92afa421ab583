"""Folding events into what a status view shows: one JobState per job, a RunState per run.

Folding is incremental (`apply` one event at a time, as a follower delivers them) and bounded:
a run may log millions of events, so the state keeps only latest values, capped name maps and
short deques of recent errors/warnings/logs, never the event history itself.
"""

from __future__ import annotations

import heapq
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from engine.core.numbers import finite
from engine.runlog.events import JOB_END_STATES, check_event, job_of_path, list_event_files
from engine.runlog.tail import EventTail, iter_events
from engine.store.jsonl import Warn

JOB_STATES = ("pending", "running", "succeeded", "failed", "cancelled", "stale")
KEEP_RECENT = 20  # errors, warnings, logs, artifacts kept per job
MAX_NAMES = 512  # distinct counter / metric names per job; more means a stage keys by id
RATE_WINDOW_S = 60.0  # progress rate is measured over this much recent time ...
RATE_SAMPLES = 64  # ... and at most this many progress events
STALE_AFTER_S = 120.0  # silence after which a running job whose process is gone is stale

Reducer = Callable[["JobState", dict[str, Any]], None]
_REDUCERS: dict[str, Reducer] = {}


def register_reducer(event_type: str, reducer: Reducer) -> None:
    """Let a stage fold its own event type (e.g. gate results into `JobState.extra`)."""
    _REDUCERS[event_type] = reducer


def _num(value: Any) -> float | None:
    """A finite-or-not float from a payload number (or the "NaN"/"Infinity" strings), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _finite(value: Any) -> float | None:
    """A finite payload number, ints kept as ints (so a view shows 40/100, not 40.0/100.0)."""
    number = finite(_num(value))
    if number is None:
        return None
    return value if isinstance(value, int) else number


@dataclass
class JobState:
    """What is known about one job from its events so far."""

    job: str
    stage: str | None = None
    state: str = "pending"
    started_ts: float | None = None  # the latest (re)start
    first_started_ts: float | None = None
    finished_ts: float | None = None
    attempts: int = 0
    resumed: bool = False
    pid: int | None = None
    host: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    progress_done: float | None = None
    progress_total: float | None = None
    progress_unit: str | None = None
    progress_label: str | None = None
    progress_ts: float | None = None
    rate: float | None = None  # units per second
    eta_s: float | None = None  # as of progress_ts; see eta_at()
    counters: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, tuple[float, int | None]] = field(default_factory=dict)
    errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_RECENT))
    warnings: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_RECENT))
    logs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_RECENT))
    artifacts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_RECENT))
    error_count: int = 0
    warning_count: int = 0
    last_event_ts: float | None = None
    last_seq: int = -1
    events: int = 0
    duplicates: int = 0  # events with a seq already seen (a re-read), ignored
    bad_events: int = 0  # events whose payload could not be folded
    dropped_names: int = 0  # counter/metric updates dropped by the MAX_NAMES cap
    stale_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # for stage reducers
    _window: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=RATE_SAMPLES), repr=False, compare=False
    )

    # -- derived -----------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.state in JOB_END_STATES

    @property
    def elapsed(self) -> float | None:
        """Seconds from the latest start to the finish (or to the last event while running)."""
        end = self.finished_ts if self.finished else self.last_event_ts
        if self.started_ts is None or end is None:
            return None
        return max(0.0, end - self.started_ts)

    def elapsed_at(self, now: float) -> float | None:
        """Like `elapsed`, but a running job's clock runs up to `now`."""
        if self.started_ts is None:
            return None
        end = self.finished_ts if self.finished else now
        return max(0.0, (end or now) - self.started_ts)

    def eta_at(self, now: float) -> float | None:
        """The ETA counted down from the last progress event to `now`."""
        if self.eta_s is None or self.progress_ts is None:
            return None
        return max(0.0, self.eta_s - max(0.0, now - self.progress_ts))

    @property
    def fraction(self) -> float | None:
        if self.progress_done is None or not self.progress_total:
            return None
        return min(1.0, max(0.0, self.progress_done / self.progress_total))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able view (for `po-tui status --json` and tests)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            if name.startswith("_"):
                continue
            value = getattr(self, name)
            if isinstance(value, deque):
                value = list(value)
            elif name == "metrics":
                value = {k: {"value": v, "step": s} for k, (v, s) in value.items()}
            out[name] = value
        out["elapsed"] = self.elapsed
        return out

    # -- folding -----------------------------------------------------------------------------

    def _apply(self, event: dict[str, Any]) -> None:
        ts = float(event["ts"])
        etype = event["type"]
        data = event.get("data") or {}
        self.events += 1
        self.last_seq = int(event["seq"])
        self.last_event_ts = ts if self.last_event_ts is None else max(self.last_event_ts, ts)
        if etype == "job_started":
            self._started(ts, data)
            return
        if self.state in ("pending", "stale") and etype != "job_finished":
            self.state = "running"  # it is evidently alive
            self.stale_reason = None
        handler = _HANDLERS.get(etype)
        if handler is not None:
            handler(self, ts, data)
        elif etype in _REDUCERS:
            _REDUCERS[etype](self, event)

    def _started(self, ts: float, data: dict[str, Any]) -> None:
        self.state = "running"
        self.stage = data.get("stage") if isinstance(data.get("stage"), str) else self.stage
        pid = data.get("pid")
        self.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        self.host = data.get("host") if isinstance(data.get("host"), str) else None
        self.resumed = bool(data.get("resumed"))
        self.attempts += 1
        self.started_ts = ts
        if self.first_started_ts is None:
            self.first_started_ts = ts
        self.finished_ts = None
        self.exit_code = None
        self.duration_s = None
        self.summary = {}
        self.stale_reason = None
        # Errors and warnings are the latest attempt's: after a retry the old failure is history
        # (kept in the event log), not the state of a job that may now succeed.
        self.errors.clear()
        self.warnings.clear()
        self.error_count = 0
        self.warning_count = 0
        self._window.clear()

    def _finished(self, ts: float, data: dict[str, Any]) -> None:
        state = data.get("state")
        self.state = state if state in JOB_END_STATES else "failed"
        self.finished_ts = ts
        code = data.get("exit_code")
        self.exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
        self.duration_s = _finite(data.get("duration_s"))
        summary = data.get("summary")
        self.summary = summary if isinstance(summary, dict) else {}
        self.eta_s = 0.0 if self.state == "succeeded" else None

    def _progress(self, ts: float, data: dict[str, Any]) -> None:
        done = _finite(data.get("done"))
        if done is None:
            raise ValueError("progress.done is not a number")
        total = _finite(data.get("total"))
        unit = data.get("unit") if isinstance(data.get("unit"), str) else None
        label = data.get("label") if isinstance(data.get("label"), str) else None
        window = self._window
        if window and (done < window[-1][1] or label != self.progress_label or unit != self.progress_unit):
            window.clear()  # a new phase (or a restart): old samples say nothing about its speed
        window.append((ts, done))
        while len(window) > 2 and ts - window[0][0] > RATE_WINDOW_S:
            window.popleft()
        self.progress_done, self.progress_total = done, total
        self.progress_unit, self.progress_label, self.progress_ts = unit, label, ts
        rate = _finite(data.get("rate_per_s"))
        if rate is None and len(window) >= 2:
            (t0, d0), (t1, d1) = window[0], window[-1]
            rate = (d1 - d0) / (t1 - t0) if t1 > t0 else self.rate
        self.rate = rate
        eta = _finite(data.get("eta_s"))
        if eta is None and total is not None:
            if done >= total:
                eta = 0.0
            elif rate is not None and rate > 0:
                eta = (total - done) / rate
        self.eta_s = eta

    def _counter(self, ts: float, data: dict[str, Any]) -> None:
        counters = data.get("counters")
        if not isinstance(counters, dict):
            raise ValueError("counter.counters is not an object")
        absolute = data.get("mode") == "set"
        for name, value in counters.items():
            number = _num(value)
            if number is None:
                continue
            if name not in self.counters and len(self.counters) >= MAX_NAMES:
                self.dropped_names += 1
                continue
            if isinstance(value, int):
                number = value
            self.counters[name] = number if absolute else self.counters.get(name, 0) + number

    def _metric(self, ts: float, data: dict[str, Any]) -> None:
        name, value = data.get("name"), _num(data.get("value"))
        if not isinstance(name, str) or value is None:
            raise ValueError("metric needs a string name and a numeric value")
        if name not in self.metrics and len(self.metrics) >= MAX_NAMES:
            self.dropped_names += 1
            return
        step = data.get("step")
        self.metrics[name] = (value, step if isinstance(step, int) and not isinstance(step, bool) else None)

    def _error(self, ts: float, data: dict[str, Any]) -> None:
        self.error_count += 1
        self.errors.append({"ts": ts, **data})

    def _warning(self, ts: float, data: dict[str, Any]) -> None:
        self.warning_count += 1
        self.warnings.append({"ts": ts, **data})

    def _log(self, ts: float, data: dict[str, Any]) -> None:
        self.logs.append({"ts": ts, **data})

    def _artifact(self, ts: float, data: dict[str, Any]) -> None:
        self.artifacts.append({"ts": ts, **data})


_HANDLERS: dict[str, Callable[[JobState, float, dict[str, Any]], None]] = {
    "job_finished": JobState._finished,
    "progress": JobState._progress,
    "counter": JobState._counter,
    "metric": JobState._metric,
    "error": JobState._error,
    "warning": JobState._warning,
    "log": JobState._log,
    "artifact": JobState._artifact,
}


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True  # cannot tell: do not call it dead
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"
    except OSError:
        return True  # no /proc (macOS): the kill probe is all we have


class RunState:
    """All jobs of a run, in order of first appearance, folded from their events."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.ignored = 0  # lines that were not events at all
        self.last_event_ts: float | None = None

    @property
    def order(self) -> list[str]:
        return list(self.jobs)

    def job(self, name: str) -> JobState:
        """The state of job `name`, created as pending if no event named it yet."""
        state = self.jobs.get(name)
        if state is None:
            state = self.jobs[name] = JobState(job=name)
        return state

    def apply(self, event: dict[str, Any]) -> JobState | None:
        """Fold one event; returns the job it touched (None if it was not an event).

        Unknown types only refresh the job's last_event_ts (and feed registered reducers). An
        event whose seq was already seen is a re-read and ignored. A payload that cannot be
        folded is counted in `bad_events`, never raised: a live view must keep going.
        """
        try:
            event = check_event(event)
        except ValueError:
            self.ignored += 1
            return None
        state = self.job(event["job"])
        if event["seq"] <= state.last_seq:
            state.duplicates += 1
            return state
        ts = float(event["ts"])
        self.last_event_ts = ts if self.last_event_ts is None else max(self.last_event_ts, ts)
        try:
            state._apply(event)
        except (ValueError, TypeError, KeyError, ArithmeticError):
            state.bad_events += 1
        return state

    def apply_all(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.apply(event)

    def forget(self, job: str) -> None:
        """Drop what was folded for `job` (its file was replaced: a follower reset)."""
        if job in self.jobs:
            self.jobs[job] = JobState(job=job)

    def check_liveness(
        self,
        now: float | None = None,
        *,
        stale_after: float = STALE_AFTER_S,
        host: str | None = None,
        alive: Callable[[int], bool] = pid_alive,
    ) -> list[JobState]:
        """Mark `stale` every running job of this host whose process is gone and whose last
        event is older than `stale_after` seconds; return the stale jobs.

        Jobs on another host are left alone: their pid means nothing here. A pid reused by an
        unrelated process keeps a dead job looking alive (only the silence would tell).
        """
        now = time.time() if now is None else now
        host = socket.gethostname() if host is None else host
        stale: list[JobState] = []
        for state in self.jobs.values():
            if state.state == "stale":
                stale.append(state)
                continue
            if state.state != "running" or state.pid is None or state.host != host:
                continue
            age = now - (state.last_event_ts if state.last_event_ts is not None else now)
            if age < stale_after or alive(state.pid):
                continue
            state.state = "stale"
            state.stale_reason = f"process {state.pid} is gone; last event {age:.0f}s ago"
            stale.append(state)
        return stale

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        out = {name: 0 for name in JOB_STATES}
        for state in self.jobs.values():
            out[state.state] = out.get(state.state, 0) + 1
        return out

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, strict: bool = True, warn: Warn | None = None) -> "RunState":
        """Fold every job file of a run, interleaved by timestamp (streaming, bounded memory).

        strict=True reads like `read_events` (a damaged middle line is an InputError naming
        file:line); strict=False reads like a follower (damaged lines skipped). A job file with
        no events yet gives a pending job.
        """
        files = list_event_files(run_dir)
        streams = [iter_events(p, warn=warn) if strict else _tolerant(p) for p in files]
        run = cls()
        for event in heapq.merge(*streams, key=lambda e: (e["ts"], e["seq"])):
            run.apply(event)
        for path in files:
            run.job(job_of_path(path))
        return run


def _tolerant(path: Path) -> Iterator[dict[str, Any]]:
    tail = EventTail(path)
    while True:
        yield from tail.poll(final=True)
        if tail.at_eof:
            return
