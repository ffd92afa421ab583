"""Logs panel, after k9s: one chronological view of every job's stdout/stderr, with its keys.

A one-line header says what is shown (which job, the search and its matches, wrap), the line
view (po_tui/widgets/logview.py) holds the lines, and a search input opens under it on `/`:

    j  next job (cycles through the jobs, then all)     a  all jobs
    /  search: typing narrows the view to matching lines and highlights the match; enter goes
       to the next match and back to the lines, where n / N move between matches; esc ends it
    w  wrap long lines                                   t  a time column

The keys are the panel's bindings, so they work while the lines or the search input have the
focus and nowhere else (typing in the input types, it does not switch jobs).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Input

from engine.core.inert import one_line
from po_tui.feed import LogLine
from po_tui.guard import guarded
from po_tui.widgets.logview import MAX_LINES, STDERR_MARK, STDOUT_MARK, LogView

__all__ = ["MAX_LINES", "LogsPanel"]


class LogsHeader(Widget):
    """The one-line state header. Not a Static: updating one lays the screen out again, and the
    header changes with every batch of lines (their count), where a repaint of one row is enough."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = Text()

    def show(self, text: str) -> None:
        self.text = Text(text, no_wrap=True, overflow="ellipsis")
        self.refresh()

    def render(self) -> Text:
        return self.text


class LogsPanel(Vertical):
    """Lines arrive in batches from the app (`add_lines`), each a `LogLine` from the feed."""

    DEFAULT_CSS = """
    LogsPanel { height: 1fr; }
    LogsPanel > #logs-header { height: 1; background: $boost; color: $text-muted; }
    LogsPanel > LogView { height: 1fr; }
    LogsPanel > #logs-search { display: none; height: 1; border: none; padding: 0 1; background: $boost; }
    LogsPanel > #logs-search.open { display: block; }
    """

    BINDINGS = [
        Binding("slash", "search", "Search", key_display="/"),
        Binding("j", "next_job", "Job"),
        Binding("a", "all_jobs", "All jobs", show=False),
        Binding("w", "toggle_wrap", "Wrap"),
        Binding("t", "toggle_time", "Time", show=False),
        Binding("n", "jump(1)", "Next match", show=False),
        Binding("N", "jump(-1)", "Previous match", show=False),
        Binding("escape", "close_search", "End search", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.header = LogsHeader(id="logs-header")
        self.view = LogView(id="logs-view")
        self.search_input = Input(placeholder="search the lines (enter: next match, esc: end)", id="logs-search",
                                  disabled=True)
        self._header_text = ""

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.view  # before the input: the tab focuses its first focusable widget
        yield self.search_input

    def on_mount(self) -> None:
        self._show_header()

    @property
    def line_count(self) -> int:
        return self.view.line_count

    def add_lines(self, lines: list[LogLine]) -> None:
        self.view.add(lines)
        self._show_header()

    # -- keys ----------------------------------------------------------------------------------

    @guarded
    def action_search(self) -> None:
        self.search_input.disabled = False
        self.search_input.add_class("open")
        self.search_input.value = self.view.search
        self.screen.set_focus(self.search_input)

    @guarded
    def action_close_search(self) -> None:
        if not self.search_input.has_class("open") and not self.view.search:
            return
        self.search_input.remove_class("open")
        self.search_input.value = ""
        self.view.set_search("")
        self.screen.set_focus(self.view)
        self.search_input.disabled = True
        self._show_header()

    @guarded
    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.view.set_search(event.value)
        self._show_header()

    @guarded
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.set_focus(self.view)
        self.view.jump(1)
        self._show_header()

    @guarded
    def action_jump(self, step: int) -> None:
        if not self.view.jump(step):
            self.app.bell()
        self._show_header()

    @guarded
    def action_next_job(self) -> None:
        jobs = self.view.jobs
        if not jobs:
            return
        current = self.view.job_filter
        following = jobs.index(current) + 1 if current in jobs else 0
        self.view.set_job_filter(jobs[following] if following < len(jobs) else None)
        self._show_header()

    @guarded
    def action_all_jobs(self) -> None:
        self.view.set_job_filter(None)
        self._show_header()

    @guarded
    def action_toggle_wrap(self) -> None:
        self.view.set_wrap(not self.view.wrap)
        self._show_header()

    @guarded
    def action_toggle_time(self) -> None:
        self.view.set_show_time(not self.view.show_time)
        self._show_header()

    # -- the header ----------------------------------------------------------------------------

    def _show_header(self) -> None:
        view = self.view
        parts = [f"job {view.job_filter}" if view.job_filter else "all jobs"]
        if view.search:
            found = len(view.shown)
            pos = view.match_position()
            parts.append(f'search "{one_line(view.search, 30)}" {found:,} match{"" if found == 1 else "es"}'
                         + (f" ({pos}/{found})" if pos else ""))
        elif view.job_filter:
            parts.append(f"{len(view.shown):,} of {view.line_count:,} lines")
        else:
            parts.append(f"{view.line_count:,} lines")
        parts.append(f"wrap {'on' if view.wrap else 'off'}")
        text = " · ".join(parts) + f"   {STDOUT_MARK} stdout {STDERR_MARK} stderr"
        if text != self._header_text:
            self._header_text = text
            self.header.show(text)

