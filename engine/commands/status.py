"""`po-tui status RUN_DIR`: one screen of a run for a shell without the TUI.

Replaces the `wc -l dataset.jsonl` / `tail -f log` / `ps aux | grep` routine: every stage's
state, progress, rate, ETA and headline numbers, recent errors, whether the engine and the job
processes are alive, and the gate verdict, read from the run directory alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from engine.views import render
from engine.views.rundir import load_manifest, read_engine, require_run_dir
from engine.views.snapshot import build
from engine.views.watch import RunWatcher

END_STATES = ("succeeded", "failed", "cancelled", "stale")
# Without a manifest (a run driven by something else, e.g. the demo) nothing says whether
# another job will start: a terminal state must hold this long before --follow ends.
QUIET_S = 5.0
PLAIN_EVERY_S = 60.0  # --follow without a terminal: a line at least this often, even unchanged


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "status",
        parents=[common],
        help="show a run's stages, progress, ETA, errors and gate verdict (--follow: live)",
        description="Show the state of a run directory, read from its manifest and event logs.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (runs/<run_id>)")
    p.add_argument("--json", action="store_true", help="print the status document as JSON (with --follow: one JSON line per refresh)")
    p.add_argument("--follow", "-f", action="store_true", help="refresh until the run ends or Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between refreshes with --follow (default: %(default)s)")
    p.set_defaults(func=run)


class Snapshotter:
    """Builds the status document, reading only what was appended since the last call."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.watcher = RunWatcher(run_dir)

    def __call__(self) -> dict[str, Any]:
        # A damaged manifest is refused, not shown: without it every planned job would read as "pending".
        manifest, damaged = load_manifest(self.run_dir)
        if damaged is not None:
            raise damaged
        run = self.watcher.refresh()
        return build(self.run_dir, run, manifest, read_engine(self.run_dir), damage=self.watcher.damage())


def ended(doc: dict[str, Any], quiet_since: float | None, now: float) -> bool:
    """Whether --follow can stop: the run is over and no engine will start another job."""
    if doc["state"] not in END_STATES:
        return False
    engine = doc.get("engine")
    if engine is not None and engine.get("alive"):
        return False
    if doc["manifest"]:
        return True
    return quiet_since is not None and now - quiet_since >= QUIET_S


def _console() -> Console:
    if sys.stdout.isatty():
        return Console(highlight=False)
    width = int(os.environ.get("COLUMNS", "0") or 0) or 160
    return Console(highlight=False, width=width, no_color=True)


def _dump(doc: dict[str, Any], *, indent: int | None) -> None:
    sys.stdout.write(json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False, default=str) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    run_dir = require_run_dir(args.run_dir)
    snap = Snapshotter(run_dir)
    doc = snap()
    if not args.follow:
        if args.json:
            _dump(doc, indent=2)
        else:
            _console().print(render.screen(doc))
        return 0
    try:
        follow(snap, doc, args)
    except KeyboardInterrupt:
        pass
    return 0


def follow(snap: Snapshotter, doc: dict[str, Any], args: argparse.Namespace) -> None:
    interval = max(0.05, float(args.interval))
    console = _console()
    live = None if args.json or not console.is_terminal else Live(render.screen(doc), console=console, auto_refresh=False)
    last_line, last_print, last_event = None, 0.0, doc.get("last_event_at")
    quiet_since: float | None = time.time()
    if live is not None:
        live.start()
    try:
        while True:
            now = time.time()
            if doc.get("last_event_at") != last_event:
                last_event, quiet_since = doc.get("last_event_at"), now
            if live is not None:
                live.update(render.screen(doc), refresh=True)
            elif args.json:
                _dump(doc, indent=None)  # JSON lines: one document per refresh
            else:
                line = render.one_line_status(doc)
                if line != last_line or now - last_print >= PLAIN_EVERY_S:
                    sys.stdout.write(time.strftime("%H:%M:%S ") + line + "\n")
                    sys.stdout.flush()
                    last_line, last_print = line, now
            if ended(doc, quiet_since, now):
                break
            time.sleep(interval)
            doc = snap()
    finally:
        if live is not None:
            live.stop()
    if live is None and not args.json:
        console.print(render.screen(doc))
