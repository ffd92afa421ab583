"""Logs panel: the tail of every job's stdout/stderr, bounded, rendered inert.

A plain `Log` (one string per line, no markup, no highlighting) rather than a RichLog: about
1 µs a line instead of ~110 µs, and a RichLog keeps every line written while its tab is hidden,
uncapped, then renders them all at once when the tab is shown (bench/tui_ingest.py).
"""

from __future__ import annotations

from textual.widgets import Log

from engine.core.inert import clean

MAX_LINES = 2000


class LogsPanel(Log):
    """Lines arrive in batches from the app: `job line` for stdout, `job:err line` for stderr."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, highlight=False, **kwargs)

    def add_lines(self, lines: list[tuple[str, str, str]]) -> None:
        self.write_lines(f"{clean(job)}{':err' if stream == 'stderr' else ''} {clean(line)}" for job, stream, line in lines[-MAX_LINES:])
