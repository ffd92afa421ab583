"""Shows the run's report.md rendered as Markdown (headings, tables, lists, code blocks).

The file may quote model output. The report stage already escapes it (md_inline, fenced code
blocks: engine/core/inert.py), and this screen does not rely on that alone, since a report can
be edited or come from elsewhere:
- escape sequences and control characters are removed first (`clean`);
- the parser has raw HTML and bare-URL linking off, so `<script>` or `http://x` stay text;
- links are never followed: `open_links=False`, and a clicked link is dropped here, never
  handed to the app (`open_url`) or to a viewer that would load another file;
- Textual's Markdown builds its text without console markup, so `[bold]` shows as typed.
A very large report is cut (with a note) so opening it never stalls the cockpit.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from engine.core.inert import clean
from po_tui.guard import guarded

MAX_CHARS = 400_000  # a report is tens of KiB; far beyond that, the rest is left to a text editor


def inert_parser() -> MarkdownIt:
    """GitHub-like Markdown (tables, strikethrough) without raw HTML or autolinked bare URLs."""
    return MarkdownIt("gfm-like", {"html": False, "linkify": False, "typographer": False})


def report_markdown(text: str, *, limit: int = MAX_CHARS) -> str:
    """The report as shown: cleaned, and cut at `limit` characters with a note saying so."""
    s = clean(text)
    if len(s) > limit:
        s = s[:limit] + f"\n\n---\n\n*The report is longer than {limit:,} characters: the rest is in report.md.*\n"
    return s


class ReportScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = report_markdown(text)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="report-box"):
            yield Markdown(self.text, id="report-markdown", parser_factory=inert_parser, open_links=False)

    @guarded
    def on_mount(self) -> None:
        self.query_one("#report-box").focus()  # arrows, page up/down scroll the report at once

    @on(Markdown.LinkClicked)
    @guarded
    def _link_clicked(self, event: Markdown.LinkClicked) -> None:
        """A link in a report leads nowhere from here: nothing is opened, nothing navigated."""
        event.stop()
        event.prevent_default()
