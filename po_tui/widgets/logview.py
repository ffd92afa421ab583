"""The Logs tab's line view: every job's lines in one chronological list, filtered, searched, wrapped.

A ScrollView that renders only the rows on screen (like Textual's `Log`, about a microsecond a
line to ingest) instead of a RichLog, which keeps every line written while its tab is hidden and
renders each as a renderable (bench/tui_ingest.py). What it adds over `Log`:

- lines from all jobs merged by time (`LogLine.ts`, po_tui/feed.py), each behind a job tag;
- stderr told apart from stdout by a neutral marker and a muted colour, because most programs
  write their progress bars and info logs to stderr; only lines that look like an error
  (a traceback and its frames, `error`, `ERROR`, `...Error`, exceptions) take the error colour;
- a job filter, a case-insensitive search that narrows the view to matching lines and
  highlights the matches (with a current match that `jump` moves), wrap and a time column.

Text is made inert (engine.core.inert.clean) when it arrives and is drawn as plain segments,
so markup or escape sequences in a model's output show literally. Colours come from component
classes over theme variables, so themes and NO_COLOR keep working (the markers stay).
"""

from __future__ import annotations

import re
import time
from typing import NamedTuple

from rich.cells import cell_len, chop_cells
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.core.inert import clean
from po_tui.feed import LogLine

MAX_LINES = 2000
TAG_WIDTH = 13  # a longer job name is cut with an ellipsis
STDOUT_MARK = "│"
STDERR_MARK = "┆"  # neutral: stderr is where progress bars and info logs go, not only errors

# What makes a line look like an error: a traceback header, a frame line, the words error /
# fatal / critical / exception, or a name ending in Error / Exception (ValueError:). Not
# "errors=0" or "format_error": the plain words need a word boundary on both sides. The full
# pattern costs some 3 us a line; a search for plain literals (under 1 us) rules most lines out.
_ERROR_HINT_RE = re.compile(r'Traceback|File "|rror|RROR|xception|XCEPTION|FATAL|CRITICAL')
_ERROR_RE = re.compile(
    r"\bTraceback\b|^\s*File \"[^\"]*\", line \d+|\b(?:error|ERROR|FATAL|CRITICAL|exception|EXCEPTION)\b"
    r"|(?:Error|Exception)\b"
)


class Entry(NamedTuple):
    """One line as the view keeps it: already cleaned, tabs expanded, classified once."""

    ts: float
    job: str
    stderr: bool
    text: str
    error: bool


class LogView(ScrollView, can_focus=True):
    """The lines, kept to MAX_LINES in time order; the panel around it holds the keys."""

    COMPONENT_CLASSES = {"logview--tag", "logview--time", "logview--stderr", "logview--error",
                         "logview--match", "logview--current"}
    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $text;
        overflow: auto auto;
        &:focus { background-tint: $foreground 5%; }
        & > .logview--tag { color: $text-accent; }
        & > .logview--time { color: $text-muted; }
        & > .logview--stderr { color: $text-muted; }
        & > .logview--error { color: $text-error; text-style: bold; }
        & > .logview--match { background: $warning 50%; text-style: bold; }
        & > .logview--current { background: $accent 35%; }
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.entries: list[Entry] = []
        self.jobs: list[str] = []  # in the order they first wrote
        self.job_filter: str | None = None
        self.search = ""
        self.wrap = False
        self.show_time = False
        self.current: Entry | None = None  # the match `jump` went to last
        self._visible: list[Entry] = self.entries
        self._rows: list[tuple[Entry, int, int]] | None = None  # (entry, start, end) when wrapping
        self._text_width = 0
        self._in_traceback: set[tuple[str, bool]] = set()
        # Resolving a CSS style walks the DOM (a quarter of a millisecond): the styles are looked
        # up once per style change, and a drawn row is kept until it or the styles change.
        self._styles: dict[str, Style] = {}
        self._strips: LRUCache[tuple, Strip] = LRUCache(1024)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.rich_style if name == "base" else self.get_component_rich_style(name)
        return style

    # -- what it holds -------------------------------------------------------------------------

    @property
    def line_count(self) -> int:
        return len(self.entries)

    @property
    def shown(self) -> list[Entry]:
        """The lines the filter and the search let through, in time order."""
        return self._visible

    def add(self, lines: list[LogLine]) -> None:
        """New lines from the feed (each batch in time order); kept sorted, the oldest dropped."""
        if not lines:
            return
        fresh = [self._entry(line) for line in lines[-MAX_LINES:]]
        in_order = not self.entries or fresh[0].ts >= self.entries[-1].ts
        self.entries.extend(fresh)
        if not in_order:  # a late file: merge (Timsort on two sorted runs, stable)
            self.entries.sort(key=_entry_ts)
        if len(self.entries) > MAX_LINES:
            del self.entries[: len(self.entries) - MAX_LINES]
        self._text_width = max(self._text_width, max(cell_len(e.text) for e in fresh))
        self._rebuild()

    def _entry(self, line: LogLine) -> Entry:
        job = clean(line.job)
        if job not in self.jobs:
            self.jobs.append(job)
        stderr = line.stream == "stderr"
        raw = line.text
        if "\r" in raw:  # a progress bar redrawn in place: the terminal would show its last state
            states = [part for part in raw.split("\r") if part.strip()]
            raw = states[-1] if states else ""
        text = clean(raw).replace("\n", " ").expandtabs(8)
        key = (job, stderr)
        error = _ERROR_HINT_RE.search(text) is not None and _ERROR_RE.search(text) is not None
        if error and "Traceback" in text:
            self._in_traceback.add(key)
        elif key in self._in_traceback:  # the frames' source lines, up to the exception line
            if text[:1] in (" ", "\t"):
                error = True
            else:
                self._in_traceback.discard(key)
        return Entry(line.ts, job, stderr, text, error)

    # -- the view state ------------------------------------------------------------------------

    def set_job_filter(self, job: str | None) -> None:
        self.job_filter = job
        self._rebuild(keep_place=False)

    def set_search(self, term: str) -> None:
        self.search = term
        if not term:
            self.current = None
        self._rebuild(keep_place=False)

    def set_wrap(self, wrap: bool) -> None:
        self.wrap = wrap
        self._rebuild()

    def set_show_time(self, show: bool) -> None:
        self.show_time = show
        self._rebuild()

    def match_position(self) -> int | None:
        """1-based position of the current match among the visible lines, if it is one of them."""
        if self.current is None or not self.search:
            return None
        for i, entry in enumerate(self._visible):
            if entry is self.current:
                return i + 1
        return None

    def jump(self, step: int) -> bool:
        """Move the current match `step` lines on (wrapping around) and bring it on screen.

        With no current match, the first one from the top of the screen (step > 0) or the last
        one above its bottom (step < 0). False when there is nothing to jump to.
        """
        if not self.search or not self._visible:
            return False
        pos = self.match_position()
        if pos is None:
            top = self._entry_at_row(int(self.scroll_offset.y))
            bottom = self._entry_at_row(int(self.scroll_offset.y) + max(self.size.height - 1, 0))
            index = top if step > 0 else bottom
        else:
            index = (pos - 1 + step) % len(self._visible)
        self.current = self._visible[index]
        row = self._first_row_of(index)
        self.scroll_to(y=max(0, row - self.size.height // 2), animate=False, immediate=True)
        self.refresh()
        return True

    # -- layout --------------------------------------------------------------------------------

    def _rebuild(self, keep_place: bool = True) -> None:
        """Recompute the visible lines and rows, then follow the tail if the view was at its end."""
        at_end = self.is_vertical_scroll_end or not keep_place
        term = self.search.lower()
        if self.job_filter is None and not term:
            self._visible = self.entries
        else:
            job = self.job_filter
            self._visible = [e for e in self.entries if (job is None or e.job == job) and (not term or term in e.text.lower())]
        if self.current is not None and not any(e is self.current for e in self._visible):
            self.current = None
        width = self._content_width()
        if self.wrap and width > 0:
            avail = max(width - self._prefix_width(), 10)
            rows: list[tuple[Entry, int, int]] = []
            for entry in self._visible:
                if cell_len(entry.text) <= avail:
                    rows.append((entry, 0, len(entry.text)))
                    continue
                start = 0
                for piece in chop_cells(entry.text, avail):
                    rows.append((entry, start, start + len(piece)))
                    start += len(piece)
            self._rows = rows
            self.virtual_size = Size(width, len(rows))
        else:
            self._rows = None
            self.virtual_size = Size(self._prefix_width() + self._text_width, len(self._visible))
        if not self.is_mounted:
            return  # fed before it is on a screen: it lays out when mounted
        before = self.scroll_offset.y
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        if self.scroll_offset.y == before:  # a scroll repaints the rows already
            self.refresh()

    def on_resize(self) -> None:
        if self.wrap:
            self._rebuild()

    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def _tag_width(self) -> int:
        return min(max((len(j) for j in self.jobs), default=0), TAG_WIDTH)

    def _prefix_width(self) -> int:
        return (9 if self.show_time else 0) + self._tag_width() + 3

    def _row_count(self) -> int:
        return len(self._rows) if self._rows is not None else len(self._visible)

    def _entry_at_row(self, row: int) -> int:
        """Index in the visible lines of the line drawn on `row` (clamped)."""
        if not self._visible:
            return 0
        row = max(0, min(row, self._row_count() - 1))
        if self._rows is None:
            return row
        entry = self._rows[row][0]
        return next(i for i, e in enumerate(self._visible) if e is entry)

    def _first_row_of(self, index: int) -> int:
        if self._rows is None:
            return index
        entry = self._visible[index]
        return next(r for r, (e, _, _) in enumerate(self._rows) if e is entry)

    # -- drawing -------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.size.width
        style = self._style("base")
        if row >= self._row_count():
            return Strip.blank(width, style)
        if self._rows is not None:
            entry, start, end = self._rows[row]
        else:
            entry = self._visible[row]
            start, end = 0, len(entry.text)
        key = (entry, start, end, entry is self.current, self.search, self.show_time, self._tag_width())
        strip = self._strips.get(key)
        if strip is None:
            text = self._line_text(entry, start, end, style)
            strip = self._strips[key] = Strip(text.render(self.app.console), text.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, row)

    def _line_text(self, entry: Entry, start: int, end: int, base: Style) -> Text:
        """One row: [time] tag marker text, the continuation of a wrapped line indented under it."""
        cls = self._style
        out = Text(style=base, no_wrap=True, end="")
        first = start == 0
        tag_w = self._tag_width()
        if self.show_time:
            out.append(time.strftime("%H:%M:%S ", time.localtime(entry.ts)) if first else " " * 9, cls("logview--time"))
        if first:
            tag = entry.job if len(entry.job) <= tag_w else entry.job[: max(tag_w - 1, 0)] + "…"
            out.append(tag.ljust(tag_w), cls("logview--tag"))
        else:
            out.append(" " * tag_w)
        out.append(f" {STDERR_MARK if entry.stderr else STDOUT_MARK} ", cls("logview--stderr") if entry.stderr else None)
        body_style = cls("logview--error") if entry.error else cls("logview--stderr") if entry.stderr else None
        offset = len(out.plain)
        out.append(entry.text[start:end], body_style)
        if self.search:
            self._highlight(out, entry.text, start, end, offset, cls("logview--match"))
        if entry is self.current:
            out.stylize(cls("logview--current"))
        return out

    def _highlight(self, out: Text, text: str, start: int, end: int, offset: int, style: Style) -> None:
        term = self.search.lower()
        low = text.lower()
        if len(low) != len(text):  # a character whose lower case is longer: the offsets would drift
            return
        at = low.find(term)
        while at != -1 and at < end:
            lo, hi = max(at, start), min(at + len(term), end)
            if lo < hi:
                out.stylize(style, offset + lo - start, offset + hi - start)
            at = low.find(term, at + max(len(term), 1))


def _entry_ts(entry: Entry) -> float:
    return entry.ts
