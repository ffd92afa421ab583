"""Whole-file outputs: write a temp file beside the target, fsync, rename. Readers never see half a file.

Every whole-file output goes through here, including the ones a user names with `-o`, so this is
also where a target that is not a plain file is dealt with (never by replacing it):
- a symlink is followed and its final target is replaced atomically; the link stays a link;
- a character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe) is opened and written
  like stdout: no temp file, no rename over the device, no fsync error from a device;
- anything else that exists and is not a regular file (a directory, a socket, a block device) is
  refused with an InputError: replacing it would destroy it, writing into it is never meant.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from engine.errors import InputError


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_FILE_MODE = 0o666 & ~_read_umask()

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def is_stream(path: str | Path) -> bool:
    """True when `path` (links followed) is a character device or a FIFO: written in place, like stdout.

    Callers that would put companion files beside an output (a report's plots) skip them for a stream.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _refuse(path: Path, mode: int) -> InputError:
    return InputError(f"is {_kind(mode)}, not a file: refusing to replace it", path=path)


def _write_stream(path: Path, data: bytes) -> None:
    """Write to a device or FIFO in place; a FIFO waits for its reader, as `> fifo` does in a shell."""
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        try:
            os.fsync(fd)
        except OSError as exc:  # devices and pipes cannot be synced: nothing to make durable
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EROFS, errno.EBADF):
                raise
    finally:
        os.close(fd)


def _target(path: Path) -> tuple[Path, bool]:
    """(the path to write, whether it is a stream); raises InputError for a target never replaced."""
    try:
        mode = os.stat(path).st_mode  # follows links, /proc's /dev/stdout magic links included
    except OSError:  # absent; or unreachable (a file as a folder, a link loop): the write says why
        mode = None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return path, True
    if mode is not None and not stat.S_ISREG(mode):
        raise _refuse(path, mode)
    if os.path.islink(path):  # a link (possibly dangling): replace what it points at
        real = Path(os.path.realpath(path))
        if os.path.islink(real):
            raise InputError("is a symlink that leads nowhere (a loop): refusing to replace it", path=path)
        return real, False
    return path, False


def check_output(path: str | Path) -> None:
    """Raise the InputError a write to `path` would, before any work is done for it."""
    _target(Path(path))


def _check_still_replaceable(path: Path) -> None:
    """Just before the rename: the target must still be absent or a regular file, never a link or device."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise InputError("changed into something that is not a regular file while it was written: left as is", path=path)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(target: Path, write: Callable[[Path], None]) -> None:
    """Let `write(tmp)` fill a temp file beside `target`; fsync it, rename it over `target` and
    fsync the folder. Whatever fails, the temp file is removed and `target` left as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600; outputs get the mode any new file would (0644 under umask 022).
        os.fchmod(fd, _FILE_MODE)
        os.close(fd)
        fd = -1
        write(Path(tmp))
        _fsync_file(Path(tmp))
        _check_still_replaceable(target)
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` as the whole content of `path` (see the module docstring); returns `path`."""
    path = Path(path)
    target, stream = _target(path)
    if stream:
        _write_stream(target, data)
        return path
    _publish(target, lambda tmp: tmp.write_bytes(data))
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return atomic_write_text(path, body)


def atomic_write_via(path: str | Path, write: Callable[[Path], None], *, field: str | None = "--out") -> Path:
    """Let `write(tmp)` produce the whole file at a temp path beside `path`, then fsync and rename.

    For outputs that a library or another program writes itself, too large to hold in memory as
    bytes (a GGUF file). A device or FIFO target is refused: such writers need a real file to seek
    in. Whatever `write` raises, the temp file is removed and `path` is left as it was.
    """
    path = Path(path)
    target, stream = _target(path)
    if stream:
        raise InputError("is a device or pipe: this output must be a regular file", path=path, field=field)
    _publish(target, write)
    return path
