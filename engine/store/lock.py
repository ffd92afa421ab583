"""One writer per output: an exclusive, non-blocking flock held for the whole run of a stage.

Two processes writing one output directory (the engine's teacher job and a manual `--resume`)
would both pay for the same answers and interleave their files, so every stage that writes a
directory holds `DIR/.po-tui.lock` while it runs; a second one is refused with one line naming
the holder's pid and host (exit 2) before it writes anything, its event log included.

Why flock and not a pid file: the kernel drops the lock when its holder dies, however it dies,
so a lock file a killed process left behind never blocks a resume. The lock file is removed on
a clean release, while the lock is still held; a process that locked a file which has since been
removed (or replaced) notices by comparing inodes and locks the new one instead, so the removal
never lets two holders in. The descriptor is close-on-exec, so stages started from a holder
(torchrun's ranks) do not inherit it, and `release()` unlocks explicitly, so a forked child that
still holds a copy of the descriptor cannot keep the lock alive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator

from engine.errors import InputError
from engine.store.outpath import check_out_dir

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - not on Windows
    _fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".po-tui.lock"
# A holder writes its pid and host right after locking; a refused process waits this long for them.
_HOLDER_WAIT_S = 0.5


def try_flock(fd: int) -> bool:
    """Take an exclusive flock on `fd` without waiting: False when another open file holds it.

    Where flock is missing or unsupported (some network filesystems) the write goes unguarded,
    as before this lock existed, rather than refusing every run.
    """
    if _fcntl is None:
        return True
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        return True
    return True


def unflock(fd: int) -> None:
    if _fcntl is not None:
        with contextlib.suppress(OSError):
            _fcntl.flock(fd, _fcntl.LOCK_UN)


def busy_error(path: str | Path, holder: str | None, *, advice: str, field: str | None = None) -> InputError:
    """The one line a refused second writer prints: who holds it, and what to do."""
    who = holder or "another process (its pid and host are not recorded yet)"
    return InputError(f"in use by {who}: {advice}", path=path, field=field)


def _holder_text(fd: int) -> str | None:
    """'po-tui STAGE, pid N on host H', as the holder wrote it; None if it has not (yet)."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        try:
            raw = os.pread(fd, 4096, 0)
        except OSError:
            return None
        fields = dict(part.split("=", 1) for part in raw.decode("utf-8", "replace").split() if "=" in part)
        if fields.get("pid"):
            host = fields.get("host") or "?"
            stage = f" {fields['stage']}" if fields.get("stage") else ""
            return f"po-tui{stage}, pid {fields['pid']} on host {host}"
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


class OutputLock:
    """The lock on one output: `with OutputLock(out, stage="teacher"): ...` around the whole run.

    `beside=True` puts the lock file next to `out` (`.NAME.po-tui.lock`) instead of inside it,
    for outputs that must be empty or are replaced whole by a rename (export merge). A directory
    the lock had to create is removed again on release when the run left it empty, so a run
    refused for bad input leaves nothing behind.
    """

    def __init__(self, out: str | Path, *, stage: str, beside: bool = False, field: str | None = "--out") -> None:
        self.shown = Path(out)  # as the user typed it, for messages
        self.out = Path(os.path.abspath(out)) if beside else Path(out)  # `..` has no name to put beside
        self.stage = stage
        self.field = field
        self.beside = beside
        self.path = self.out.parent / f".{self.out.name}{LOCK_NAME}" if beside else self.out / LOCK_NAME
        self._fd: int | None = None
        self._created: list[Path] = []

    def _make_dirs(self) -> None:
        missing = []
        d = self.path.parent
        while not d.exists() and d != d.parent:
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir()
                self._created.append(d)
            except FileExistsError:
                pass
            except OSError as exc:  # a read-only or unreachable parent
                self._cleanup_dirs()
                raise InputError(f"cannot create: {exc.strerror or exc}", path=d, field=self.field) from None

    def acquire(self) -> "OutputLock":
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this object")
        # The same one-line refusal as every other output check, before any folder is made.
        check_out_dir(self.path.parent, field=self.field)
        if not self.path.parent.is_dir() and self.path.parent.exists():
            shown = self.path.parent if self.beside else self.shown
            raise InputError("exists and is not a directory", path=shown, field=self.field)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        for _ in range(100):
            self._make_dirs()
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:  # the directory went away between mkdir and open: again
                continue
            except OSError as exc:
                self._cleanup_dirs()
                raise InputError(f"cannot lock the output: {exc.strerror or exc}", path=self.shown, field=self.field) from None
            if not try_flock(fd):
                holder = _holder_text(fd)
                os.close(fd)
                raise busy_error(self.shown, holder, field=self.field, advice=(
                    "one process writes an output at a time; wait for it to end (or stop it), or choose another output"))
            if not _same_file(fd, self.path):  # its last holder removed it after we opened it
                os.close(fd)
                continue
            self._fd = fd
            self._record()
            return self
        raise InputError("cannot lock the output: its lock file keeps changing", path=self.shown, field=self.field)

    def _record(self) -> None:
        assert self._fd is not None
        text = f"pid={os.getpid()} host={socket.gethostname()} stage={self.stage}\n".encode()
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if _same_file(fd, self.path):  # remove it while still holding it (see the module docstring)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        unflock(fd)
        os.close(fd)
        self._cleanup_dirs()

    def _cleanup_dirs(self) -> None:
        for d in reversed(self._created):
            try:
                d.rmdir()  # only when empty: whatever the run wrote stays
            except OSError:
                break
        self._created.clear()

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@contextlib.contextmanager
def output_lock(out: str | Path, *, stage: str, beside: bool = False, field: str | None = "--out") -> Iterator[OutputLock]:
    with OutputLock(out, stage=stage, beside=beside, field=field) as lock:
        yield lock


def lock_open_file(fd: int, path: str | Path, *, advice: str, holder: Callable[[], str | None]) -> None:
    """Lock an already open file (an event log) or raise the one-line busy error; `holder` names who has it."""
    if not try_flock(fd):
        raise busy_error(path, holder(), advice=advice)
