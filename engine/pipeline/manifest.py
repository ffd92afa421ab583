"""The run directory's shared files: manifest.json and engine.pid (docs/runs.md).

Both are rewritten atomically, so `po-tui status` in another shell never reads half a file. A
manifest that does not parse or does not have the documented shape was therefore damaged by
something else; `read_manifest` is the one place that checks it, so `run --resume`, `cancel`,
`status` and the engine all refuse it with the same located line instead of a traceback (or,
worse, reading it as "pending").
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.core.timefmt import utc_stamp
from engine.errors import InputError
from engine.store.atomic import atomic_write_json
from engine.store.jsonfile import read_json_document, read_record

FORMAT = "po-tui-run/1"
MANIFEST = "manifest.json"
PIDFILE = "engine.pid"
RUN_STATES = ("pending", "running", "succeeded", "failed", "cancelled")
DAMAGED = "damaged run manifest"


class JobEntry(BaseModel):
    """One job of manifest.json as the engine writes it (docs/runs.md); unknown fields are kept."""

    model_config = ConfigDict(extra="allow", strict=True)
    name: str = Field(min_length=1)
    stage: str | None = None
    argv: list[str] | None = None
    fingerprint: str | None = None
    state: Literal["pending", "running", "succeeded", "failed", "cancelled", "skipped"] = "pending"
    exit_code: int | None = None
    pgid: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    skipped_reason: str | None = None
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    gate_summary: dict[str, Any] | None = None


class Manifest(BaseModel):
    """manifest.json: checked, never rewritten from the model (readers ignore unknown fields)."""

    model_config = ConfigDict(extra="allow", strict=True)
    format: Literal["po-tui-run/1"] = FORMAT
    run_id: str | None = None
    created_at: str | None = None
    config: str | None = None
    config_sha256: str | None = None
    state: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    gate: dict[str, Any] | None = None
    jobs: list[JobEntry]

    @field_validator("jobs")
    @classmethod
    def _unique_names(cls, jobs: list[JobEntry]) -> list[JobEntry]:
        seen: set[str] = set()
        for job in jobs:
            if job.name in seen:
                raise ValueError(f"job {job.name!r} listed twice")
            seen.add(job.name)
        return jobs


def new_run_id() -> str:
    """YYYYmmdd-HHMMSS-<4 hex>: sorts by time, unique across two runs started in one second."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The manifest as a dict, None when there is none; InputError (file, line or field) when damaged."""
    return read_record(Path(run_dir) / MANIFEST, Manifest, damaged=DAMAGED)


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / MANIFEST, manifest)


def write_pidfile(run_dir: str | Path, pid: int, mode: str) -> None:
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = pid
    pidfile = {"pid": pid, "pgid": pgid, "host": socket.gethostname(), "started_at": utc_stamp(), "mode": mode}
    atomic_write_json(Path(run_dir) / PIDFILE, pidfile)


def read_pidfile(run_dir: str | Path) -> dict[str, Any] | None:
    """engine.pid, or None when absent or unreadable: a pidfile that is not a JSON object names
    no process, so no engine is known to drive the run (the manifest is what gets checked)."""
    try:
        doc = read_json_document(Path(run_dir) / PIDFILE)
    except (FileNotFoundError, InputError):
        return None
    return doc if isinstance(doc, dict) else None


def remove_pidfile(run_dir: str | Path, pid: int) -> None:
    """Remove engine.pid if it is still ours (a newer engine may have taken the run over)."""
    info = read_pidfile(run_dir)
    if info and info.get("pid") == pid:
        try:
            (Path(run_dir) / PIDFILE).unlink()
        except FileNotFoundError:
            pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not a live engine.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def live_engine(run_dir: str | Path) -> dict[str, Any] | None:
    """engine.pid's content when an engine on this host still drives the run."""
    info = read_pidfile(run_dir)
    if not info or info.get("host") != socket.gethostname():
        return None
    pid = info.get("pid")
    return info if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid) else None


def job_group_alive(run_dir: str | Path, pgid: object) -> bool:
    """The process group `pgid` still runs a po-tui job of this run (not a recycled id)."""
    if not isinstance(pgid, int) or pgid <= 0:
        return False
    try:
        args = [a.decode(errors="replace") for a in Path(f"/proc/{pgid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        return False
    if "engine" not in args or "--run-dir" not in args or args.index("--run-dir") + 1 >= len(args):
        return False
    return Path(args[args.index("--run-dir") + 1]).resolve() == Path(run_dir).resolve() and pid_alive(pgid)


def running_jobs(run_dir: str | Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Jobs the manifest lists as running whose process group is still alive (an orphan of a dead engine)."""
    return [j for j in manifest.get("jobs", []) if j.get("state") == "running" and job_group_alive(run_dir, j.get("pgid"))]
