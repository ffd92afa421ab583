"""`po-tui cancel RUN_DIR`: stop a run, through its engine when alive, else job by job (docs/runs.md)."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from engine.errors import InputError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "cancel",
        parents=[common],
        help="cancel a run: its engine stops the running job (SIGTERM, then SIGKILL)",
        description="Cancel RUN_DIR: SIGTERM to its engine; with no live engine, to the process groups of its running jobs.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--wait", type=float, default=30.0, metavar="S", help="seconds to wait for the run to stop (default: 30; 0: don't wait)")
    p.add_argument("--grace", type=float, default=10.0, metavar="S", help="without an engine: SIGKILL after S seconds (default: 10)")
    p.set_defaults(func=run)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _cancel_jobs(run_dir: Path, grace: float) -> int:
    """No engine: signal the running jobs' groups, then record them and the run as cancelled."""
    from engine.core.timefmt import utc_stamp
    from engine.pipeline.manifest import job_group_alive, read_manifest, write_manifest
    from engine.runlog.events import EventWriter, events_path
    from engine.runlog.tail import read_events

    manifest = read_manifest(run_dir) or {}
    jobs = [j for j in manifest.get("jobs", []) if j.get("state") == "running"]
    for job in jobs:
        pgid = job.get("pgid")
        if job_group_alive(run_dir, pgid):
            os.killpg(pgid, signal.SIGTERM)
            deadline = time.time() + grace
            while _group_alive(pgid) and time.time() < deadline:
                time.sleep(0.1)
            if _group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        path = events_path(run_dir, job["name"])
        events = read_events(path, warn=lambda *_: None) if path.exists() else []
        if not events or events[-1].get("type") != "job_finished":
            with EventWriter(path, job["name"]) as writer:
                writer.finished("cancelled")
        job.update(state="cancelled", pgid=None, finished_at=utc_stamp())
    if manifest and manifest.get("state") in ("running", "pending"):
        manifest["state"] = "cancelled"
        write_manifest(run_dir, manifest)
    return len(jobs)


def _cancel_batches(run_dir: Path) -> None:
    """The teacher is gone but left open Gemini batch jobs: cancel them too (the key from the
    environment), as the teacher does itself when it is stopped alive."""
    from engine.commands.settingsflags import resolve_settings
    from engine.commands.teacher import cancel_batches
    from engine.pipeline.plan import CONFIG_NAME
    from engine.stages.teacher.batch import BATCH_JOBS
    from engine.stages.teacher.settings import TeacherSettings

    out, config = run_dir / "teacher", run_dir / CONFIG_NAME
    if not (out / BATCH_JOBS).exists() or not config.exists():
        return
    settings = resolve_settings(TeacherSettings, argparse.Namespace(config=str(config)), section="teacher")
    if settings.provider == "gemini":
        cancel_batches(str(out), settings)


def run(args: argparse.Namespace) -> int:
    from engine.pipeline.manifest import live_engine, pid_alive, read_manifest

    run_dir = Path(args.run_dir)
    if read_manifest(run_dir) is None:
        raise InputError("no manifest.json: not a run directory", path=run_dir)
    engine = live_engine(run_dir)
    if engine is None:
        count = _cancel_jobs(run_dir, args.grace)
        print(f"po-tui cancel: no live engine; {count} running job(s) cancelled in {run_dir}")
        _cancel_batches(run_dir)
        return 0
    os.kill(engine["pid"], signal.SIGTERM)
    print(f"po-tui cancel: SIGTERM sent to the engine (pid {engine['pid']})", flush=True)
    deadline = time.time() + args.wait
    while args.wait > 0 and pid_alive(engine["pid"]) and time.time() < deadline:
        time.sleep(0.2)
    state = (read_manifest(run_dir) or {}).get("state")
    if pid_alive(engine["pid"]):
        print(f"po-tui cancel: the engine is still stopping (run state {state})")
    else:
        print(f"po-tui cancel: run {state}")
    return 0
