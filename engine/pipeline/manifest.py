"""The run directory's shared files: manifest.json and engine.pid (docs/runs.md).

Both are rewritten atomically, so `po-tui status` in another shell never reads half a file.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from engine.store.atomic import atomic_write_json

FORMAT = "po-tui-run/1"
MANIFEST = "manifest.json"
PIDFILE = "engine.pid"
RUN_STATES = ("pending", "running", "succeeded", "failed", "cancelled")


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_run_id() -> str:
    """YYYYmmdd-HHMMSS-<4 hex>: sorts by time, unique across two runs started in one second."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / MANIFEST, manifest)


def write_pidfile(run_dir: str | Path, pid: int, mode: str) -> None:
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = pid
    atomic_write_json(Path(run_dir) / PIDFILE, {"pid": pid, "pgid": pgid, "host": socket.gethostname(), "started_at": utc_now(), "mode": mode})


def read_pidfile(run_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / PIDFILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


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
