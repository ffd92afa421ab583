"""Headless output: what the engine is doing, as an engine subscriber.

On a terminal, rich progress bars (one per job); otherwise (nohup, CI, engine.log) plain
timestamped lines, with progress at most every PLAIN_EVERY_S seconds per job, so a log file
stays readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from engine.core.timefmt import utc_stamp
from engine.pipeline.runner import EngineEvent

PLAIN_EVERY_S = 5.0
HEADLINE_KEYS = ("count", "accepted", "rejected", "requests", "retries", "n", "mean", "train", "val", "invalid",
                 "parameters", "steps", "final_loss", "final_eval_loss", "valid_rate", "verdict", "passed", "criteria")


def headline(summary: dict[str, Any]) -> str:
    """The few numbers of a job summary worth one line."""
    parts = []
    for key in HEADLINE_KEYS:
        value = summary.get(key)
        if value is None or isinstance(value, (dict, list)):
            continue
        parts.append(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts)


class PlainPrinter:
    """Timestamped lines, one per decision, job start/end, error, and throttled progress."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._last_progress: dict[str, float] = {}
        self._started: set[str] = set()
        self._last_done: dict[str, object] = {}

    def line(self, text: str) -> None:
        stamp = utc_stamp()
        self.out.write(f"{stamp} {text}\n")
        self.out.flush()

    def __call__(self, ev: EngineEvent) -> None:
        if ev.kind == "note":
            self.line(ev.data["message"])
        elif ev.kind == "job":
            state = ev.data.get("state")
            if state == "running" and ev.job not in self._started:
                self._started.add(ev.job)
                self.line(f"{ev.job}: started (po-tui {' '.join((ev.data.get('argv') or ['?'])[:1])})")
            elif state == "skipped":
                self.line(f"{ev.job}: skipped ({ev.data.get('skipped_reason')})")
            elif state in ("succeeded", "failed", "cancelled"):
                self._started.discard(ev.job)
                self.line(f"{ev.job}: {state} (exit {ev.data.get('exit_code')})")
        elif ev.kind == "event":
            self.on_job_event(ev.job or "?", ev.data)

    def on_job_event(self, job: str, event: dict[str, Any]) -> None:
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "progress":
            now = time.time()
            done = data.get("done")
            final = done == data.get("total") and self._last_done.get(job) != done
            if now - self._last_progress.get(job, 0.0) >= PLAIN_EVERY_S or final:
                self._last_progress[job] = now
                self._last_done[job] = done
                total = data.get("total")
                self.line(f"{job}: {data.get('done')}/{total if total is not None else '?'} {data.get('unit', '')}")
        elif kind == "error":
            self.line(f"{job}: error: {data.get('message')}")
            tail = (data.get("stderr_tail") or "").strip().splitlines()[-5:]
            for text in tail:
                self.line(f"{job}:   {text}")
        elif kind == "job_finished":
            summary = headline(data.get("summary") or {})
            if summary:
                self.line(f"{job}: {summary}")


class RichPrinter:
    """A progress bar per job on a terminal; decisions and job ends printed above them."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("{task.fields[job]:<14}"), BarColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> "RichPrinter":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _task(self, job: str) -> TaskID:
        if job not in self.tasks:
            self.tasks[job] = self.progress.add_task(job, job=job, status="running", total=None)
        return self.tasks[job]

    def __call__(self, ev: EngineEvent) -> None:
        if ev.kind == "note":
            self.progress.console.print(Text(ev.data["message"], style="yellow"))
        elif ev.kind == "job" and ev.job:
            state = ev.data.get("state")
            if state == "skipped":
                self.progress.console.print(Text(f"{ev.job}: skipped ({ev.data.get('skipped_reason')})", style="dim"))
            elif state == "running":
                self._task(ev.job)
            elif state in ("succeeded", "failed", "cancelled"):
                task = self._task(ev.job)
                style = {"succeeded": "green", "failed": "bold red", "cancelled": "yellow"}[state]
                total = self.progress.tasks[self.tasks[ev.job]].total or 1
                self.progress.update(task, status=f"[{style}]{state}", total=total, completed=total if state == "succeeded" else None)
                self.progress.stop_task(task)
        elif ev.kind == "event" and ev.job:
            event = ev.data
            data = event.get("data") or {}
            if event.get("type") == "progress" and data.get("total"):
                self.progress.update(self._task(ev.job), total=data["total"], completed=data.get("done") or 0,
                                     status=f"{data.get('done')}/{data['total']} {data.get('unit', '')}")
            elif event.get("type") == "error":
                self.progress.console.print(Text(f"{ev.job}: error: {data.get('message')}", style="red"))
                for text in (data.get("stderr_tail") or "").strip().splitlines()[-5:]:
                    self.progress.console.print(Text(f"    {text}"))
            elif event.get("type") == "job_finished":
                summary = headline(data.get("summary") or {})
                if summary:
                    self.progress.console.print(Text(f"{ev.job}: {summary}"))
