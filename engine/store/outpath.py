"""Where a command will write, checked before it reads, computes or pays for anything.

A wrong `--out` (an existing regular file, a path under a file, a read-only directory) would
otherwise surface as a FileExistsError or PermissionError traceback only when the first byte is
written, after the work it was meant to keep, and sometimes after an event log was started.
These checks make it one line, exit 2, with nothing written. (What the path is at write time,
a device or a symlink, is the atomic writer's business: engine/store/atomic.py.)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.errors import InputError
from engine.store.atomic import check_output


def _nearest_existing(p: Path) -> tuple[Path, os.stat_result | None]:
    """The closest ancestor of `p` that exists (and its stat), `p` itself included."""
    current = p
    while True:
        try:
            return current, os.stat(current)
        except (FileNotFoundError, NotADirectoryError):
            parent = current.parent
            if parent == current:
                return current, None
            current = parent


def _check_can_create_in(p: Path, field: str | None) -> None:
    """`p` does not exist yet: its nearest existing ancestor must be a directory we may write."""
    try:
        ancestor, st = _nearest_existing(p.parent if str(p.parent) else Path("."))
    except OSError as exc:
        raise InputError(f"cannot create it: {exc.strerror or exc}", path=p, field=field) from exc
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"cannot create it: {ancestor} is not a directory", path=p, field=field)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"cannot create it: {ancestor} is not writable", path=p, field=field)


def _stat_or_creatable(p: Path, field: str | None, failure: str) -> os.stat_result | None:
    """`p`'s stat, or None when it does not exist yet but can be created (else the InputError)."""
    try:
        return os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        _check_can_create_in(p, field)
        return None
    except OSError as exc:
        raise InputError(f"{failure}: {exc.strerror or exc}", path=p, field=field) from exc


def check_out_dir(path: str | Path, *, field: str | None = "--out") -> Path:
    """`path` as an output directory: an existing writable directory, or one that can be created."""
    p = Path(path)
    st = _stat_or_creatable(p, field, "cannot use it")
    if st is None:
        return p
    if not stat.S_ISDIR(st.st_mode):
        raise InputError("exists and is not a directory", path=p, field=field)
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputError("directory is not writable", path=p, field=field)
    return p


def check_out_file(path: str | Path, *, field: str | None = "--out") -> Path:
    """`path` as an output file: not a directory, in a directory that exists (or can be created)
    and is writable. `-` (stdout) is the caller's to handle."""
    p = Path(path)
    st = _stat_or_creatable(p, field, "cannot write it")
    if st is None:
        return p
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory, expected a file name", path=p, field=field)
    check_output(p)  # a device or FIFO is written in place, a socket refused, a symlink written through
    if stat.S_ISREG(st.st_mode):
        parent = p.resolve().parent  # a symlink is written through: its target's directory counts
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"cannot replace it: {parent} is not writable", path=p, field=field)
    return p
