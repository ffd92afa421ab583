"""Logs panel: the tail of every job's stdout/stderr, bounded, rendered inert."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from po_tui.widgets.text import inert

MAX_LINES = 2000


class LogsPanel(RichLog):
    """A bounded RichLog; lines arrive in batches from the app and are written as plain Text."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, highlight=False, **kwargs)

    def add_lines(self, lines: list[tuple[str, str, str]]) -> None:
        for job, stream, line in lines[-MAX_LINES:]:
            text = Text(f"{job}:{stream[3:]} " if stream == "stderr" else f"{job} ", style="dim" if stream == "stdout" else "bold")
            text.append(inert(line))
            self.write(text)
