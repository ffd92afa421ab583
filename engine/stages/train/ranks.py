"""Rank 0 under torchrun: when another rank dies, the event log says which one and why.

torchrun answers a rank that exits with an error by stopping the others with SIGTERM (SIGINT
when the user pressed Ctrl-C), and SIGKILL 30 s later. Rank 0 writes the event log, so it must
turn that signal into an end of the job: the failing rank's error (its message and traceback
tail, from the error file torchrun gives each rank and `@record` fills in) as a `rank_failed`
event and a failed job; with no failed rank, a cancelled one.

Rank 0 is often not running Python when the signal comes: it waits inside a collective or a
store lookup for the rank that died, and such waits run the Python handler only when they
return, up to 30 minutes later. So a watcher thread, woken through `signal.set_wakeup_fd` (the
interpreter's C handler writes there at once, whatever the main thread is doing), ends the job
itself and exits when the main thread has not taken over within a short grace. A lock makes
sure exactly one of them writes the job's end.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.inert import one_line
from engine.errors import InputError, StageFailed
from engine.runlog.events import TAIL_CHARS, register_event_type

register_event_type(
    "rank_failed",
    "Another torchrun rank failed and torchrun stopped the run: rank, message, traceback (its tail).",
    required=("rank", "message"),
)

# Tests only: the rank named here raises when training begins (after the process group is up,
# so every rank is inside the job), to check what rank 0 records. Never set in normal use.
FAIL_RANK_ENV = "PO_TUI_TRAIN_FAIL_RANK"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RankStopped(BaseException):
    """torchrun (or the user through it) stopped this rank; a BaseException, like
    KeyboardInterrupt, so no library's `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class RankFailure:
    rank: int
    message: str
    traceback: str | None
    timestamp: int | None


def failed_ranks() -> list[RankFailure]:
    """The other ranks' recorded errors, first failure first.

    torchrun gives rank N the error file `<log_dir>/<run>/attempt_<k>/<N>/error.json`
    (TORCHELASTIC_ERROR_FILE, documented in torch.distributed.elastic); `@record` writes it
    before the rank exits, so it is complete by the time torchrun signals the others."""
    own = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not own:
        return []
    own_dir = Path(own).parent
    found = []
    for path in own_dir.parent.glob("*/error.json"):
        if path.parent == own_dir or not path.parent.name.isdigit():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        message = data.get("message") if isinstance(data, dict) else None
        if isinstance(message, dict):
            info = message.get("extraInfo") if isinstance(message.get("extraInfo"), dict) else {}
            stamp = str(info.get("timestamp", ""))
            found.append(RankFailure(int(path.parent.name), str(message.get("message", "")),
                                     info.get("py_callstack"), int(stamp) if stamp.isdigit() else None))
        elif isinstance(message, str):
            found.append(RankFailure(int(path.parent.name), message, None, None))
    return sorted(found, key=lambda f: (f.timestamp if f.timestamp is not None else sys.maxsize, f.rank))


def failure_line(failures: list[RankFailure]) -> str:
    first = failures[0]
    others = f" (ranks {', '.join(str(f.rank) for f in failures[1:])} failed too)" if len(failures) > 1 else ""
    return one_line(f"rank {first.rank} failed: {first.message}{others}; torchrun stopped the other ranks", 400)


def _record(writer: Any, failures: list[RankFailure]) -> None:
    for f in failures:
        writer.emit("rank_failed", rank=f.rank, message=f.message,
                    traceback=f.traceback[-TAIL_CHARS:] if f.traceback else None)


class RankGuard:
    """Around rank 0's training, inside the event writer's `running()`.

    The exit path (main thread): an exception, when another rank recorded a failure, becomes
    `rank_failed` events and a StageFailed naming that rank (rank 0's own error is then only the
    echo: a closed connection, or torchrun's SIGTERM), unless it is rank 0's own explained
    failure (StageFailed, InputError), kept as it is; a stop signal with no failure recorded
    becomes KeyboardInterrupt, a cancelled job. The watcher thread does the same from outside
    when the main thread is stuck, then exits the process (1 failed, 130 cancelled)."""

    def __init__(self, writer: Any, *, handler_grace_s: float = 2.0, end_grace_s: float = 15.0) -> None:
        self.writer = writer
        self.handler_grace_s = handler_grace_s  # for the Python handler to run in the main thread
        self.end_grace_s = end_grace_s  # then for the main thread to reach the end of the job
        self._lock = threading.Lock()
        self._owner: str | None = None  # "main" or "watcher": who writes the job's end
        self._handled = threading.Event()
        self._main_ending = threading.Event()
        self._previous: dict[int, Any] = {}
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup = -1
        self._thread: threading.Thread | None = None

    # -- signals ---------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Stopping from here on: a second stop (torchrun's, then the launcher's) must not cut
        # the writing of the job's end short, nor kill the process once the handlers are put back.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        self._handled.set()
        raise RankStopped(signum)

    def __enter__(self) -> "RankGuard":
        if threading.current_thread() is not threading.main_thread():
            return self  # signals belong to the main thread; an embedding caller keeps its own
        read, write = os.pipe()
        os.set_blocking(write, False)
        self._pipe = (read, write)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        self._old_wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="rank-guard", daemon=True)
        self._thread.start()
        return self

    def _release(self) -> None:
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        if not self._handled.is_set():  # after a stop the process is ending: stops stay ignored
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)
        read, write = self._pipe
        try:
            os.write(write, b"\0")  # wakes the watcher to leave
        except OSError:  # the pipe is full of signal bytes: the watcher is awake already
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(read)
        os.close(write)
        self._pipe = None

    # -- the main thread's end -------------------------------------------------------------

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        with self._lock:
            watcher_owns = self._owner == "watcher"
            if not watcher_owns:
                self._owner = "main"
                self._main_ending.set()
        if watcher_owns:  # the watcher is ending the job and exits the process: wait for it
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            while True:
                time.sleep(1)
        self._release()
        if exc is None or isinstance(exc, (StageFailed, InputError)):
            return False  # done, or rank 0's own failure, already explained in one line
        failures = failed_ranks()  # written before that rank exited, so before any echo here
        if failures:
            _record(self.writer, failures)
            raise StageFailed(failure_line(failures)) from exc
        if isinstance(exc, RankStopped):
            raise KeyboardInterrupt from exc
        return False

    # -- the watcher's end -----------------------------------------------------------------

    def _watch(self) -> None:
        assert self._pipe is not None
        read = self._pipe[0]
        signum = None
        while signum is None:
            try:
                data = os.read(read, 64)
            except OSError:
                return
            if not data or 0 in data:
                return
            signum = next((s for s in data if s in STOP_SIGNALS), None)
        if self._handled.wait(self.handler_grace_s):
            self._main_ending.wait(self.end_grace_s)
        with self._lock:
            if self._owner is not None:
                return
            self._owner = "watcher"
        code = 1
        try:
            code = self._end_job(signum)
        finally:
            os._exit(code)  # even if the log could not be written: the main thread is stuck

    def _end_job(self, signum: int) -> int:
        failures = failed_ranks()
        try:
            if failures:
                _record(self.writer, failures)
                line = failure_line(failures)
                self.writer.error(line, code="stage_failed")
                self.writer.finished("failed", exit_code=1)
                sys.stderr.write(f"po-tui train: failed: {line}\n")
                return 1
            self.writer.finished("cancelled")
            sys.stderr.write(f"po-tui train: interrupted ({signal.Signals(signum).name})\n")
            return 130
        finally:
            sys.stderr.flush()


def test_hooks() -> list[Any]:
    """Callbacks that exist for tests only: see FAIL_RANK_ENV."""
    rank = os.environ.get(FAIL_RANK_ENV)
    if rank is None or rank != os.environ.get("RANK", "0"):
        return []
    from transformers import TrainerCallback

    class FailHere(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"{FAIL_RANK_ENV}={rank}: rank {rank} fails on purpose (a test hook)")

    return [FailHere()]
