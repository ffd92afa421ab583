"""Entry points that cannot take the cockpit down: a fault becomes a log line and one notification.

Textual ends the whole app on any exception that escapes a timer callback, a message handler, an
action, a screen's dismiss callback or a worker (workers exit the app on error by default). Those
run while the screen stack changes under them: a modal pushed or popped, the app shutting down and
pruning its screens while its timers still fire. The cockpit only shows files other processes
write, so a surprise there or a bug in one view must cost a notice, never the session (and never a
traceback over the terminal of someone watching a paid run). Every such entry point is wrapped in
`guarded` (or a `barrier` block); work handed from a worker thread to the UI goes through
`deliver`, which never blocks: App.call_from_thread waits for the UI thread and leaves the worker
stuck for good when the app closes first, and Python then waits for that thread at exit.
"""

from __future__ import annotations

import functools
import inspect
import threading
import traceback
import weakref
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from textual.app import App

from engine.core.inert import one_line

FAULT_TITLE = "cockpit fault"
KEEP_FAULTS = 100  # per app, the most recent, for `faults()` (tests, a future fault view)
KEEP_NOTIFIED = 1000  # distinct messages notified once each; past this, new ones are only logged

F = TypeVar("F", bound=Callable[..., Any])


class _Faults:
    """What one app has caught so far: the recent ones, and which messages were already shown."""

    def __init__(self) -> None:
        self.recent: deque[str] = deque(maxlen=KEEP_FAULTS)
        self.notified: set[str] = set()
        self.count = 0


_lock = threading.Lock()  # faults arrive from worker threads too
_by_app: "weakref.WeakKeyDictionary[App[Any], _Faults]" = weakref.WeakKeyDictionary()


def _app_of(node: Any) -> App[Any] | None:
    if isinstance(node, App):
        return node
    try:
        return node.app  # a widget that was removed (the app shutting down) has none
    except Exception:
        return None


def live(node: Any) -> bool:
    """Whether a widget can be drawn: attached to an app that runs (not before mount, not while closing).

    The app stops running before it prunes its screens (children before parents), so a panel
    asked to draw then may still be attached while its own children are gone.
    """
    app = _app_of(node)
    return app is not None and app.is_running and node.is_attached


def faults(app: App[Any]) -> list[str]:
    """The faults `report` caught in this app, oldest first (at most KEEP_FAULTS)."""
    with _lock:
        found = _by_app.get(app)
        return list(found.recent) if found is not None else []


def report(node: Any, what: str, exc: BaseException) -> None:
    """Log a caught fault and notify it once per distinct message; from any thread; never raises."""
    try:
        app = _app_of(node)
        if app is None:
            return
        text = one_line(f"{what}: {type(exc).__name__}: {exc}", 300)
        app.log.error(text + "\n" + "".join(traceback.format_exception(exc)))
        with _lock:
            found = _by_app.setdefault(app, _Faults())
            found.recent.append(text)
            found.count += 1
            first = text not in found.notified and len(found.notified) < KEEP_NOTIFIED
            if first:
                found.notified.add(text)
        if first:  # a timer failing ten times a second says so once
            deliver(app, app.notify, text, title=FAULT_TITLE, severity="error", markup=False, timeout=15)
    except Exception:
        pass  # the app is gone or going: nothing left to tell


@contextmanager
def barrier(node: Any, what: str) -> Iterator[None]:
    """`with barrier(self, "label"):` a block whose exception is reported instead of raised."""
    try:
        yield
    except Exception as exc:
        report(node, what, exc)


def guarded(fn: F) -> F:
    """Wrap a method (sync or async) of a widget, screen or app: an exception is reported, not raised.

    The wrapper keeps the signature (functools.wraps), so Textual passes handlers their message.
    """
    what = ".".join(fn.__qualname__.split(".")[-2:])  # Class.method, without <locals> paths
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            with barrier(self, what):
                return await fn(self, *args, **kwargs)
            return None

        return run_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with barrier(self, what):
            return fn(self, *args, **kwargs)
        return None

    return run  # type: ignore[return-value]


def deliver(node: Any, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Run `callback(*args, **kwargs)` on the UI thread soon; callable from any thread, never blocks.

    False when the node (or the app) is closing or gone: the work is dropped, as nobody can see it.
    The callback itself must not raise (a guarded method, or Textual's own notify/exit).
    """
    try:
        return bool(node.call_later(callback, *args, **kwargs))
    except Exception:  # the loop closed between the check and the call
        return False
