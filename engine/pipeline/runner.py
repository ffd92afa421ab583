"""The engine: runs a plan's jobs one after another, each a `po-tui` subprocess in its own
process group, and records every decision in manifest.json (docs/runs.md).

Why subprocesses: a stage that crashes, leaks GPU memory or is killed takes nothing else with
it, and `po-tui cancel` can stop a job by its process group even when this engine is gone. The
jobs' event logs stay the source of truth; the engine follows them and hands every event to its
subscribers (the headless printer today, the TUI later) as it is written. Never imports textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from engine.core.timefmt import utc_stamp
from engine.errors import InputError
from engine.pipeline.config import PipelineConfig, dump_config
from engine.pipeline.manifest import FORMAT, live_engine, new_run_id, read_manifest, remove_pidfile, write_manifest, write_pidfile
from engine.pipeline.plan import CONFIG_NAME, Job, build_plan, fingerprint, outputs_present
from engine.runlog.events import EventWriter, events_path
from engine.runlog.gpu_sampler import jobs_environment
from engine.runlog.tail import EventTail, follow
from engine.store.atomic import atomic_write_text

GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
STDERR_TAIL = 4000
INTERRUPTED = ("running", "cancelled", "failed")
DONE = ("succeeded", "skipped")


@dataclass
class EngineEvent:
    """What subscribers receive: `run` (run state), `job` (a job's state), `event` (a line of a
    job's event log, in `data`) or `note` (a decision worth printing: a skip, a resume)."""

    kind: str
    job: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)


@dataclass
class Decision:
    job: str
    action: str  # skip, continue, redo, run, check (run unless its inputs come out unchanged)
    reason: str


def create_run(run_dir: str | Path, config: PipelineConfig) -> Path:
    """A fresh run directory with its resolved config.yaml and a pending manifest."""
    r = Path(run_dir)
    if (r / "manifest.json").exists():
        raise InputError("already holds a run: use `po-tui run --resume` or another --run-dir", path=r)
    r.mkdir(parents=True, exist_ok=True)
    text = dump_config(config)
    atomic_write_text(r / CONFIG_NAME, text)
    import hashlib

    manifest = {
        "format": FORMAT,
        "run_id": r.name if r.name[:8].isdigit() else new_run_id(),
        "created_at": utc_stamp(),
        "config": CONFIG_NAME,
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "state": "pending",
        "gate": None,
        "jobs": [_entry(job) for job in build_plan(config, r)],
    }
    write_manifest(r, manifest)
    return r


def _entry(job: Job) -> dict[str, Any]:
    return {"name": job.name, "stage": job.stage, "argv": None, "fingerprint": None, "state": "pending", "exit_code": None,
            "pgid": None, "started_at": None, "finished_at": None, "skipped_reason": None,
            "inputs": list(job.inputs), "outputs": list(job.outputs)}


def _latest_attempt(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The events of the last attempt (from its job_started) written after byte `offset`."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            lines = fh.read().split(b"\n")[:-1]  # complete lines only: a torn tail is not an event
    except OSError:
        return []
    events = []
    for raw in lines:
        try:
            events.append(json.loads(raw))
        except ValueError:  # a damaged line must not stop the engine from closing the log
            continue
    starts = [i for i, e in enumerate(events) if e.get("type") == "job_started"]
    return events[starts[-1]:] if starts else events


class Engine:
    """One run directory, driven to the end (or to a failure, or a cancel)."""

    def __init__(self, run_dir: str | Path, config: PipelineConfig, *, resume: bool = False, retry_failed: bool = False,
                 grace_s: float = GRACE_S, mode: str = "headless", python: str = sys.executable) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.jobs = build_plan(config, self.run_dir)
        self.resume = resume
        self.retry_failed = retry_failed
        self.grace_s = grace_s
        self.mode = mode
        self.python = python
        manifest = read_manifest(self.run_dir)
        if manifest is None:
            raise InputError("no manifest.json: not a run directory (start one with `po-tui run CONFIG`)", path=self.run_dir)
        self.manifest = manifest
        jobs_environment(config.monitor.gpu_sample_s)  # a bad PO_TUI_GPU_SAMPLE_S is refused before anything runs
        previous = {j["name"]: j for j in manifest.get("jobs", [])}
        self.previous = previous if resume else {}
        self.manifest["jobs"] = [{**_entry(job), **previous.get(job.name, {}), "inputs": list(job.inputs), "outputs": list(job.outputs)}
                                 for job in self.jobs]
        self._listeners: list[Callable[[EngineEvent], None]] = []
        self._queues: list[asyncio.Queue] = []
        self._cancelling = False
        self._proc: asyncio.subprocess.Process | None = None
        self._kill_handle: asyncio.TimerHandle | None = None
        self._decisions: dict[str, Decision] | None = None

    # -- subscribers ---------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[EngineEvent], None]) -> None:
        """Call `callback(event)` for every engine event, in the engine's task (keep it quick)."""
        self._listeners.append(callback)

    def subscribe(self) -> AsyncIterator[EngineEvent]:
        """An async iterator over engine events until the run ends (subscribe before run())."""
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.append(queue)

        async def events() -> AsyncIterator[EngineEvent]:
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item

        return events()

    def _publish(self, event: EngineEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception as exc:  # a broken printer (closed pipe) must not stop the run
                self._listeners.remove(callback)
                with contextlib.suppress(Exception):
                    sys.stderr.write(f"po-tui engine: a subscriber failed and was dropped: {exc!r}\n")
        for queue in self._queues:
            queue.put_nowait(event)

    # -- decisions -----------------------------------------------------------------------------

    def _entry(self, name: str) -> dict[str, Any]:
        return next(j for j in self.manifest["jobs"] if j["name"] == name)

    def decisions(self) -> list[Decision]:
        """What a resume will do with each job (printed before anything starts)."""
        if self._decisions is not None:
            return list(self._decisions.values())
        out: dict[str, Decision] = {}
        upstream_changed = False
        for job in self.jobs:
            prev = self.previous.get(job.name)
            state = prev.get("state") if prev else "pending"
            if not prev or state == "pending" or not prev.get("fingerprint"):
                out[job.name] = Decision(job.name, "run", "not run yet")
                upstream_changed = True
                continue
            same = fingerprint(self.run_dir, job) == prev["fingerprint"]
            if state in DONE and same and outputs_present(self.run_dir, job):
                if upstream_changed:
                    out[job.name] = Decision(job.name, "check", "done before; runs again unless its inputs come out unchanged")
                else:
                    out[job.name] = Decision(job.name, "skip", "fingerprint unchanged, outputs present")
                continue
            upstream_changed = True
            if state in INTERRUPTED and same:
                if state == "failed" and not self.retry_failed:
                    raise InputError(f"job {job.name} failed: pass --retry-failed to run it again", path=self.run_dir)
                out[job.name] = Decision(job.name, "continue", f"was {state}: continues from its own resume point")
            elif state in DONE and same:
                out[job.name] = Decision(job.name, "redo", "outputs missing")
            else:
                out[job.name] = Decision(job.name, "redo", "settings or inputs changed")
        if self.manifest.get("state") == "succeeded" and all(d.action == "skip" for d in out.values()):
            # Nothing would run: resuming would only rewrite every finished job as "skipped".
            raise InputError("the run succeeded and nothing changed since: nothing to resume "
                             "(edit its config.yaml to run stages again)", path=self.run_dir)
        self._decisions = out
        return list(out.values())

    # -- the run -------------------------------------------------------------------------------

    def _save(self) -> None:
        write_manifest(self.run_dir, self.manifest)

    def _set_run_state(self, state: str) -> None:
        self.manifest["state"] = state
        self._save()
        self._publish(EngineEvent("run", None, {"state": state}))

    def _set_job(self, entry: dict[str, Any], **changes: Any) -> None:
        entry.update(changes)
        self._save()
        self._publish(EngineEvent("job", entry["name"], {k: entry.get(k) for k in ("state", "exit_code", "skipped_reason", "argv")}))

    def cancel(self) -> None:
        """Stop the run: SIGTERM to the running job's process group, SIGKILL after the grace period."""
        if self._cancelling:
            self._signal_job(signal.SIGKILL)  # asked twice: no more waiting
            return
        self._cancelling = True
        self._publish(EngineEvent("note", None, {"message": "cancelling"}))
        if self._proc is not None and self._proc.returncode is None:
            self._signal_job(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            self._kill_handle = loop.call_later(self.grace_s, self._signal_job, signal.SIGKILL)

    def _hangup(self) -> None:
        """The terminal went away (SSH dropped): the run goes on; a printer that can no longer
        write is dropped by _publish. `po-tui status` and `cancel` still reach it."""
        self._publish(EngineEvent("note", None, {"message": "terminal hung up: the engine carries on"}))

    def _signal_job(self, sig: int) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    async def run(self) -> str:
        """Drive the run; returns its final state (succeeded, failed, cancelled)."""
        other = live_engine(self.run_dir)
        if other is not None:
            raise InputError(f"an engine (pid {other['pid']}) is already driving this run: `po-tui cancel` it first", path=self.run_dir)
        decisions = {d.job: d for d in self.decisions()} if self.resume else {}
        loop = asyncio.get_running_loop()
        installed = []
        for sig, handler in ((signal.SIGTERM, self.cancel), (signal.SIGINT, self.cancel), (signal.SIGHUP, self._hangup)):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, handler)
                installed.append(sig)
        write_pidfile(self.run_dir, os.getpid(), self.mode)
        final = "failed"
        try:
            self._set_run_state("running")
            final = "succeeded"
            for job in self.jobs:
                if self._cancelling:
                    final = "cancelled"
                    break
                outcome = await self._step(job, decisions.get(job.name))
                if outcome == "cancelled" or self._cancelling:
                    final = "cancelled"
                    break
                if outcome == "failed":
                    final = "failed"
                    break
        finally:
            if self._kill_handle is not None:
                self._kill_handle.cancel()
            self.manifest["state"] = final
            self._save()
            remove_pidfile(self.run_dir, os.getpid())
            for sig in installed:
                loop.remove_signal_handler(sig)
            self._publish(EngineEvent("run", None, {"state": final, "gate": self.manifest.get("gate")}))
            for queue in self._queues:
                queue.put_nowait(None)
        return final

    async def _step(self, job: Job, decision: Decision | None) -> str:
        entry = self._entry(job.name)
        prev = self.previous.get(job.name)
        fp = fingerprint(self.run_dir, job)
        if prev and prev.get("state") in DONE and prev.get("fingerprint") == fp and outputs_present(self.run_dir, job):
            self._set_job(entry, state="skipped", skipped_reason="fingerprint unchanged, outputs present", fingerprint=fp)
            if job.name == "gate":
                self.manifest["gate"] = prev.get("gate_summary") or self.manifest.get("gate")
            return "skipped"
        cont = bool(prev) and prev.get("state") in INTERRUPTED and prev.get("fingerprint") == fp
        redo = bool(prev) and prev.get("state") not in (None, "pending") and not cont
        if redo:
            self._move_aside(job)
        if decision is not None and decision.action == "check":
            self._publish(EngineEvent("note", job.name, {"message": f"{job.name}: inputs changed, running again"}))
        return await self._execute(job, entry, fp, cont, redo)

    def _move_aside(self, job: Job) -> None:
        for name in job.reset_dirs:
            path = self.run_dir / name
            if path.exists():
                target = path.with_name(f"{path.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
                path.rename(target)
                moved = f"{job.name}: settings changed, {path.name}/ moved to {target.name}/"
                self._publish(EngineEvent("note", job.name, {"message": moved}))

    async def _execute(self, job: Job, entry: dict[str, Any], fp: str, cont: bool, redo: bool) -> str:
        argv = job.argv(cont, redo)
        log_path = events_path(self.run_dir, job.name)
        tail = EventTail(log_path)
        while tail.poll():  # earlier attempts' events: subscribers get only the new ones
            pass
        log_start = tail.offset
        stderr_path = self.run_dir / f"{job.name}.stderr.log"
        stderr_start = stderr_path.stat().st_size if stderr_path.exists() else 0
        started = time.time()
        self._set_job(entry, state="running", argv=argv, fingerprint=fp, started_at=utc_stamp(), finished_at=None,
                      exit_code=None, skipped_reason=None, pgid=None)
        with open(self.run_dir / f"{job.name}.stdout.log", "ab") as out, open(stderr_path, "ab") as err:
            self._proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "engine", *argv, "--run-dir", str(self.run_dir), "--job", job.name,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                # the job samples GPU health into its own log at this interval (engine/runlog/gpu_sampler.py)
                env=jobs_environment(self.config.monitor.gpu_sample_s),
            )
        self._set_job(entry, pgid=self._proc.pid)
        stop = asyncio.Event()
        follower = asyncio.create_task(self._follow(job.name, log_path, tail, stop))
        code = await self._proc.wait()
        stop.set()
        await follower
        if self._kill_handle is not None:
            self._kill_handle.cancel()
            self._kill_handle = None
        self._proc = None
        if code in job.ok_codes:
            state = "succeeded"
        elif self._cancelling:
            state = "cancelled"
        else:
            state = "failed"
        self._close_log(job, log_path, log_start, state, code, started, stderr_path, stderr_start)
        if job.name == "gate" and state == "succeeded":
            finished = (e for e in reversed(_latest_attempt(log_path, log_start)) if e.get("type") == "job_finished")
            summary = next((e["data"].get("summary") or {} for e in finished), {})
            gate = {"verdict": summary.get("verdict", "pass" if code == 0 else "fail"), "passed": summary.get("passed"),
                    "criteria": summary.get("criteria")}
            self.manifest["gate"] = gate
            entry["gate_summary"] = gate
        # A signal's death is written as the shell does (128 + signal), as in the job's log.
        self._set_job(entry, state=state, exit_code=code if code >= 0 else 128 - code, finished_at=utc_stamp(), pgid=None)
        return state

    async def _follow(self, job: str, path: Path, tail: EventTail, stop: asyncio.Event) -> None:
        async for event in follow(path, interval=0.2, stop=stop, tail=tail):
            self._publish(EngineEvent("event", job, event))

    def _close_log(self, job: Job, path: Path, log_start: int, state: str, code: int, started: float,
                   stderr_path: Path, stderr_start: int) -> None:
        """A job killed (or crashed) before writing job_finished gets one from the engine."""
        attempt = _latest_attempt(path, log_start)
        if attempt and attempt[0].get("type") == "job_started" and any(e.get("type") == "job_finished" for e in attempt):
            return
        if state == "succeeded" and attempt:
            return
        try:
            with open(stderr_path, "rb") as fh:
                fh.seek(max(stderr_start, stderr_path.stat().st_size - STDERR_TAIL))
                stderr_tail = fh.read().decode("utf-8", errors="replace")
        except OSError:
            stderr_tail = ""
        written = []
        with EventWriter(path, job.name) as writer:
            if not attempt or attempt[0].get("type") != "job_started":
                written.append(writer.started(job.stage, argv=None, by_engine=True))
            if state == "failed":
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                written.append(writer.error(f"{job.name} failed ({how}) without finishing its event log", code="job_died",
                                            stderr_tail=stderr_tail))
            exit_code = code if code >= 0 else 128 - code
            written.append(writer.finished(state, exit_code=exit_code, duration_s=round(time.time() - started, 6)))
        for event in written:  # subscribers see them as if the job had written them
            self._publish(EngineEvent("event", job.name, event))
