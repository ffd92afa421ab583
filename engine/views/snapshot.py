"""The status document of a run: one plain dict that `--json` prints and the screen renders.

It merges the manifest (the engine's plan and decisions) with the event logs (what each job
actually did): a job's progress, rate, ETA and headline numbers come from its events, a job the
engine planned but has not started yet (or skipped) from the manifest. Texts taken from events
(errors, warnings) are passed through inert.one_line so no control sequence reaches a terminal.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from engine.core.inert import one_line
from engine.core.timefmt import utc_stamp
from engine.runlog.cause import cause_of
from engine.runlog.gpu import latest_gpu
from engine.runlog.state import JOB_STATES, JobState, RunState, pid_alive
from engine.views.headline import headline
from engine.views.rundir import EngineInfo

FORMAT = "po-tui-status/1"
KEEP_PROBLEMS = 3  # recent errors and warnings shown per job
MESSAGE_CHARS = 400


def iso(ts: float | None) -> str | None:
    return None if ts is None else utc_stamp(ts)


def _problem(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "ts": item.get("ts"),
        "code": one_line(item["code"], 80) if item.get("code") is not None else None,
        "message": one_line(item.get("message", ""), MESSAGE_CHARS),
        "cause": cause_of(item.get("stderr_tail"), MESSAGE_CHARS),
    }


def _alive(job: JobState, planned: dict[str, Any], state: str, host: str, engine_host: str | None) -> bool | None:
    """Whether the job's process runs (None: not running, no pid, or on another host).

    Before its first event (or when events are not read) the manifest's process group of a
    running job tells, when the engine that started it is on this host.
    """
    if state not in ("running", "stale"):
        return None
    if job.pid is not None and job.host == host:
        return pid_alive(job.pid)
    pgid = planned.get("pgid")
    if job.pid is None and isinstance(pgid, int) and not isinstance(pgid, bool) and pgid > 0 and engine_host == host:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return None
        return True
    return None


def _progress(job: JobState) -> dict[str, Any] | None:
    if job.progress_done is None:
        return None
    fraction = job.fraction
    return {
        "done": job.progress_done,
        "total": job.progress_total,
        "unit": job.progress_unit,
        "label": job.progress_label,
        "percent": round(100 * fraction, 1) if fraction is not None else None,
    }


def job_row(
    job: JobState | None, planned: dict[str, Any] | None, now: float, host: str, engine_host: str | None = None
) -> dict[str, Any]:
    """One stage's line: events first, the manifest for what events cannot say."""
    planned = planned or {}
    name = job.job if job is not None else planned["name"]
    job = job if job is not None else JobState(job=name)
    state = job.state
    manifest_state = planned.get("state") if isinstance(planned.get("state"), str) else None
    if job.events == 0 and manifest_state:
        state = manifest_state  # pending, skipped, or a job that died before its first event
    elif state in ("running", "stale") and manifest_state in ("failed", "cancelled"):
        state = manifest_state  # killed without a job_finished; the engine recorded how it ended
    stage = job.stage or (planned.get("stage") if isinstance(planned.get("stage"), str) else None)
    running = state == "running"
    return {
        "name": name,
        "stage": stage,
        "state": state,
        "alive": _alive(job, planned, state, host, engine_host),
        "pid": job.pid,
        "host": job.host,
        "attempts": job.attempts,
        "started_at": iso(job.started_ts),
        "started_ts": job.started_ts,
        "finished_at": iso(job.finished_ts) if job.finished else None,
        "elapsed_s": job.elapsed_at(now) if running else (job.duration_s if job.duration_s is not None else job.elapsed),
        "last_event_age_s": (now - job.last_event_ts) if running and job.last_event_ts is not None else None,
        "progress": _progress(job),
        "rate_per_s": job.rate if running else None,
        "eta_s": job.eta_at(now) if running else None,
        "exit_code": job.exit_code,
        "headline": headline(stage or name, job),
        "counters": dict(job.counters),
        "metrics": {k: v for k, (v, _step) in job.metrics.items()},
        "error_count": job.error_count,
        "warning_count": job.warning_count,
        "errors": [_problem(e) for e in list(job.errors)[-KEEP_PROBLEMS:]],
        "warnings": [_problem(w) for w in list(job.warnings)[-KEEP_PROBLEMS:]],
        "stale_reason": job.stale_reason,
        "skipped_reason": planned.get("skipped_reason"),
    }


def _run_state(manifest: dict[str, Any] | None, rows: list[dict[str, Any]], engine: EngineInfo | None) -> tuple[str, str]:
    """(state, where it came from). A run the manifest calls running with no live engine and no
    live job process is stale: the engine died without recording an end."""
    states = [r["state"] for r in rows]
    declared = manifest.get("state") if manifest else None
    if declared in JOB_STATES:
        engine_gone = engine is None or engine.alive is False
        if declared == "running" and engine_gone and not any(r["alive"] for r in rows):
            return "stale", "manifest"
        return declared, "manifest"
    for candidate in ("running", "stale", "failed", "cancelled"):
        if candidate in states:
            return candidate, "events"
    if states and all(s in ("succeeded", "skipped") for s in states):
        return "succeeded", "events"
    return "pending", "events"


def _current(rows: list[dict[str, Any]]) -> str | None:
    for wanted in ("running", "stale"):
        for row in rows:
            if row["state"] == wanted:
                return row["name"]
    started = [r for r in rows if r["started_ts"] is not None]
    if started:
        return max(started, key=lambda r: r["started_ts"])["name"]
    # No events read: the manifest's plan order is the execution order.
    done = [r for r in rows if r["state"] not in ("pending", "skipped")]
    return done[-1]["name"] if done else None


def _gate(manifest: dict[str, Any] | None, run: RunState, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if manifest and isinstance(manifest.get("gate"), dict) and manifest["gate"].get("verdict"):
        g = manifest["gate"]
        return {"verdict": str(g["verdict"]), "passed": g.get("passed"), "criteria": g.get("criteria"), "ratio": g.get("ratio")}
    for row in rows:
        job = run.jobs.get(row["name"])
        if job is None or (row["stage"] != "gate" and row["name"] != "gate"):
            continue
        verdict = job.summary.get("verdict")
        if isinstance(verdict, str):
            s = job.summary
            return {"verdict": verdict, "passed": s.get("passed"), "criteria": s.get("criteria"), "ratio": s.get("ratio")}
    return None


def build(
    run_dir: Path,
    run: RunState,
    manifest: dict[str, Any] | None,
    engine: EngineInfo | None,
    *,
    damage: dict[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The status document of `run_dir` (see docs: `po-tui status --json`)."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    planned = {j["name"]: j for j in (manifest or {}).get("jobs", [])}
    # Jobs the manifest does not name follow in the order they started (not started: last).
    unplanned = [n for n in run.order if n not in planned]
    unplanned.sort(key=lambda n: (run.jobs[n].first_started_ts is None, run.jobs[n].first_started_ts or 0.0))
    names = list(planned) + unplanned
    engine_host = engine.host if engine is not None else None
    rows = [job_row(run.jobs.get(n), planned.get(n), now, host, engine_host) for n in names]
    state, source = _run_state(manifest, rows, engine)
    if state == "stale":
        for row in rows:
            if row["state"] == "running" and not row["alive"]:
                row["state"] = "stale"
                row["rate_per_s"] = row["eta_s"] = None
                row["stale_reason"] = row["stale_reason"] or "the engine is gone and no job process is alive"
    starts = [j.first_started_ts for j in run.jobs.values() if j.first_started_ts is not None]
    created = (manifest or {}).get("created_at")
    return {
        "format": FORMAT,
        "run_dir": str(run_dir),
        "run_id": str((manifest or {}).get("run_id") or run_dir.resolve().name),
        "created_at": created if isinstance(created, str) else iso(min(starts) if starts else None),
        "state": state,
        "state_source": source,
        "manifest": manifest is not None,
        "current_stage": _current(rows),
        "gate": _gate(manifest, run, rows),
        "engine": engine.to_dict() if engine is not None else None,
        "last_event_at": iso(run.last_event_ts),
        "now": iso(now),
        "jobs": rows,
        "gpu": latest_gpu(run, now),
        "damaged_logs": damage or {},
        "ignored_lines": run.ignored,
    }
