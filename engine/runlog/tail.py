"""Reading event logs: an incremental follower for live views and a strict batch reader.

The follower (`EventTail`, `follow`) runs while another process is appending, so a last line
without its newline is normal (the writer is mid-append) and is held back until it completes; a
damaged line is skipped and counted, never raised, because a status view must not crash. The
batch reader (`read_events`) is for finished runs and reports damage as InputError (file:line).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from pathlib import Path
from typing import Any, AsyncIterator, BinaryIO, Callable, Iterator

from engine.runlog.events import check_event, event_input_error
from engine.store.jsonl import TornLine, Warn, iter_jsonl

# How much one poll reads: attaching to a long log delivers it in slices instead of all at once.
POLL_BYTES = 4 << 20
# Line numbers of damaged lines kept for display; the total is in `corrupt_count`.
KEEP_CORRUPT = 100
# The C scanner behind json.loads, called without its Python wrappers (a follower parses every
# line of a busy log); json.loads stays the reference for every line it does not take as is.
_SCAN = json.JSONDecoder().scan_once


class EventTail:
    """Follow one event file by byte offset; `poll()` returns the complete events added since.

    Restarts from the top (and counts it in `resets`, sets `reset`) when the file is replaced
    (new inode), shrinks below the offset, or no longer has a line boundary where the last read
    ended (truncated and rewritten). A consumer folding state should start over on a reset.
    """

    def __init__(self, path: str | Path, *, max_bytes: int = POLL_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max(1, int(max_bytes))
        self.offset = 0  # end of the last complete line consumed
        self.line = 0  # number of complete lines consumed
        self.resets = 0
        self.reset = False  # the last poll restarted from the top
        self.at_eof = True  # the last poll read everything there was
        self.pending_bytes = 0  # an incomplete last line waiting for its newline
        self.corrupt_count = 0
        self.corrupt_lines: deque[int] = deque(maxlen=KEEP_CORRUPT)
        self.torn: TornLine | None = None
        self._identity: tuple[int, int] | None = None

    def poll(self, *, final: bool = False) -> list[dict[str, Any]]:
        """New complete events since the last call ([] while the file does not exist).

        With `final=True` the writer is known to be done: an incomplete last line is then
        reported in `torn` (or accepted if it parses: some tools omit the final newline).
        """
        self.reset = False
        try:
            fh = open(self.path, "rb")
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            self.at_eof = True
            return []
        with fh:
            st = os.fstat(fh.fileno())
            identity = (st.st_dev, st.st_ino)
            if self._identity is not None and (
                identity != self._identity or st.st_size < self.offset or not self._at_boundary(fh)
            ):
                self._restart()
            self._identity = identity
            fh.seek(self.offset)
            chunk = fh.read(self.max_bytes)
            if chunk and b"\n" not in chunk and len(chunk) == self.max_bytes:
                chunk += fh.readline()  # one line longer than a slice: finish it
            self.at_eof = fh.tell() >= st.st_size
        end = chunk.rfind(b"\n") + 1
        if end:
            self.torn = None  # the line once reported torn was completed after all
        events = self._parse(chunk[:end])
        self.offset += end
        rest = chunk[end:]
        self.pending_bytes = len(rest) if self.at_eof else 0
        if final and self.at_eof:
            self.torn = None
            if rest.strip():
                event = self._decode(rest)
                if event is None:
                    self.torn = TornLine(str(self.path), self.line + 1, len(rest))
                else:
                    events.append(event)
                    self.offset += len(rest)
                    self.line += 1
                    self.pending_bytes = 0
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Everything left once the writer is done, to the end of the file (see `poll(final=True)`)."""
        events = self.poll(final=True)
        while not self.at_eof:
            events.extend(self.poll(final=True))
        return events

    def _at_boundary(self, fh: BinaryIO) -> bool:
        if self.offset == 0:
            return True
        fh.seek(self.offset - 1)
        return fh.read(1) == b"\n"

    def _restart(self) -> None:
        self.offset = 0
        self.line = 0
        self.pending_bytes = 0
        self.torn = None
        self.resets += 1
        self.reset = True

    def _parse(self, block: bytes) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if not block:
            return events
        lines: list[str] | list[bytes]
        try:  # one decode for the whole block; a line of bad UTF-8 among them: bytes, line by line
            lines = block.decode("utf-8").split("\n") if self._fast else block.split(b"\n")
        except UnicodeDecodeError:
            lines = block.split(b"\n")
        lines.pop()  # what follows the last newline: nothing
        scan = _SCAN
        for raw in lines:
            self.line += 1
            event = None
            if type(raw) is str:
                # A well-formed line in one C call; whatever it does not take as is (whitespace
                # around the object, damage, a bad envelope) goes the json.loads way below.
                try:
                    obj, end = scan(raw, 0)
                    if end == len(raw):
                        event = check_event(obj)
                except (StopIteration, ValueError, RecursionError):
                    pass
                if event is None:
                    raw = raw.encode("utf-8")  # the line's own bytes again
            if event is None:
                if not raw.strip():
                    continue
                event = self._decode(raw)
            if event is None:
                self.corrupt_count += 1
                self.corrupt_lines.append(self.line)
            else:
                events.append(event)
        return events

    @property
    def _fast(self) -> bool:
        """Whether lines may take the scanner path: not when a subclass decides what a line is."""
        return type(self)._decode is EventTail._decode

    @staticmethod
    def _decode(raw: bytes) -> dict[str, Any] | None:
        try:
            return check_event(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, RecursionError):  # a damaged line, however deep
            return None


async def follow(
    path: str | Path,
    *,
    interval: float = 0.2,
    stop: asyncio.Event | None = None,
    stop_on_finish: bool = False,
    on_reset: Callable[[], None] | None = None,
    tail: EventTail | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield events of `path` as they appear, polling every `interval` seconds (asyncio only).

    Ends when `stop` is set (after a final poll that still delivers what was written), or after
    a job_finished event if `stop_on_finish`. `on_reset` is called when the file was replaced or
    truncated: whatever was folded from earlier events is stale. Pass your own `tail` to read its
    counters (corrupt lines, torn tail) afterwards.
    """
    tail = tail if tail is not None else EventTail(path)
    while True:
        stopping = stop is not None and stop.is_set()
        events = tail.poll(final=stopping)
        if tail.reset and on_reset is not None:
            on_reset()
        for event in events:
            yield event
            if stop_on_finish and event.get("type") == "job_finished":
                return
        if stopping and tail.at_eof:
            return
        if not tail.at_eof:
            await asyncio.sleep(0)  # more to read: let others run, then carry on
            continue
        if stop is None:
            await asyncio.sleep(interval)
        else:
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass


def iter_events(path: str | Path, *, warn: Warn | None = None) -> Iterator[dict[str, Any]]:
    """Stream the events of a finished log, strictly (see `read_events`)."""
    on_torn: Callable[[TornLine], None] | None = (lambda t: warn(t.describe())) if warn else None
    for lineno, obj in iter_jsonl(path, on_torn=on_torn):
        try:
            yield check_event(obj)
        except ValueError as exc:
            raise event_input_error(exc, path, lineno) from exc


def read_events(path: str | Path, *, warn: Warn | None = None) -> list[dict[str, Any]]:
    """All events of a log. A damaged line in the middle raises InputError naming file:line; a
    torn last line (a writer killed mid-append) is ignored and reported through `warn`."""
    return list(iter_events(path, warn=warn))


__all__ = ["EventTail", "follow", "iter_events", "read_events", "POLL_BYTES", "KEEP_CORRUPT"]
