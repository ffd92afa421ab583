"""Blocking file appends (write + fsync) off the event loop, in the order they were asked for.

At 32+ requests in flight the loop must keep reading answers while the disk syncs: one worker
thread does every append, so their order (and a record's durability before it is judged, when
the caller awaits) is kept.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Callable


class OffLoop:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teacher-io")

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn` on the I/O thread and wait for it (e.g. a response that must be on disk)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue `fn` without waiting (events); a failure is reported, never silently dropped."""
        self._pool.submit(partial(fn, *args, **kwargs)).add_done_callback(_report)

    async def drain(self) -> None:
        await self.run(lambda: None)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _report(future: Future) -> None:
    exc = future.exception()
    if exc is not None:
        sys.stderr.write(f"po-tui teacher: warning: background write failed: {type(exc).__name__}: {exc}\n")


class QueuedEvents:
    """An EventWriter whose calls run on the I/O thread, in order."""

    def __init__(self, events: Any, io: OffLoop) -> None:
        self._events = events
        self._io = io

    def __getattr__(self, name: str) -> Callable[..., None]:
        method = getattr(self._events, name)
        return lambda *args, **kwargs: self._io.submit(method, *args, **kwargs)
