"""What a run directory says besides its event logs: manifest.json and engine.pid, read leniently.

Both files are rewritten while we read them, by another process (atomically), and may be missing
(a run being created, an old demo run with event logs only) or damaged; a view shows what it can
and never fails on them (`load_manifest` also says what is wrong with a damaged manifest). Only a
path that is not a run directory at all is an InputError.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.pipeline.manifest import read_manifest as read_checked
from engine.runlog.events import EVENTS_SUFFIX, list_event_files
from engine.runlog.state import pid_alive
from engine.store.jsonfile import read_json_document

MANIFEST = "manifest.json"
ENGINE_PID = "engine.pid"


def is_run_dir(path: Path) -> bool:
    """A run directory holds a manifest.json or at least one event log."""
    if not path.is_dir():
        return False
    if (path / MANIFEST).is_file():
        return True
    return any(p.is_file() for p in path.glob(f"*{EVENTS_SUFFIX}"))


def require_run_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError("no such run directory", path=p)
    if not is_run_dir(p):
        raise InputError(f"not a run directory (no {MANIFEST} and no *{EVENTS_SUFFIX})", path=p)
    return p


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = read_json_document(path)
    except (FileNotFoundError, InputError):
        return None
    return doc if isinstance(doc, dict) else None


@dataclass
class EngineInfo:
    """engine.pid, and whether that process is alive (None: another host, cannot tell)."""

    pid: int | None
    host: str | None
    mode: str | None
    started_at: str | None
    alive: bool | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_engine(run_dir: Path) -> EngineInfo | None:
    doc = _read_json(run_dir / ENGINE_PID)
    if doc is None:
        return None
    pid = doc.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
    host = doc.get("host") if isinstance(doc.get("host"), str) else None
    alive: bool | None
    if pid is None:
        alive = False
    elif host is not None and host != socket.gethostname():
        alive = None
    else:
        alive = pid_alive(pid)
    mode = doc.get("mode") if isinstance(doc.get("mode"), str) else None
    started = doc.get("started_at") if isinstance(doc.get("started_at"), str) else None
    return EngineInfo(pid, host, mode, started, alive)


def load_manifest(run_dir: Path) -> tuple[dict[str, Any] | None, InputError | None]:
    """(manifest, damage): the checked manifest, or None and why not when it is damaged.

    The manifest is replaced atomically, so a damaged one stays damaged: a view that must not
    fail (the cockpit, the runs list) shows it as such; `po-tui status` refuses it.
    """
    try:
        return read_checked(run_dir), None
    except InputError as exc:
        return None, exc


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The checked manifest, or None when missing or damaged (see load_manifest)."""
    return load_manifest(run_dir)[0]


def event_files(run_dir: Path) -> list[Path]:
    try:
        return list_event_files(run_dir)
    except (OSError, InputError):
        return []


def list_run_dirs(root: Path) -> list[Path]:
    """Run directories directly under `root` (and `root` itself if it is one)."""
    if not root.is_dir():
        raise InputError("no such directory", path=root)
    found = [root] if is_run_dir(root) else []
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        raise InputError(f"cannot list: {exc.strerror}", path=root) from exc
    found.extend(p for p in children if is_run_dir(p))
    return found
