"""One concept's answers side by side: baseline, student, and the teacher or reference answer.

Lines that differ between baseline and student are highlighted (difflib, via
engine.stages.sidebyside.changed_lines); the teacher/reference column is highlighted against the
student. Each column heads with its score, the metric breakdown and the format-error reason. All
model text is cleaned and shown as rich Text, so markup or escapes in an answer stay literal.

Fitted to the terminal: from WIDE columns on, three panes; below, two (baseline | student), and
`t` puts the teacher/reference answer in the baseline's place (or, wide, hides it); `u` one
unified diff. Each pane is bordered over the full height and scrolls on its own axis, the panes
kept at the same line; long YAML lines wrap under their own indentation (`wrap_hanging`),
not at column 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from rich.cells import get_character_cell_size
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.core.inert import clean, one_line
from engine.stages.results import RunResults
from engine.stages.sidebyside import changed_lines, yaml_diff
from engine.views.evaltable import EvalRow
from po_tui.guard import guarded, live

WIDE = 120  # from this many columns on the three panes fit; below, two and the teacher on `t`
ADDED = "on #1f4a2a"  # visible with and without colour themes; NO_COLOR drops it, the marker stays
REMOVED = "on #5a1f1f"


@dataclass
class Column:
    """What one column shows: a title, its numbers, and the answer's text."""

    title: str
    score: float | None
    valid: bool
    reason: str | None
    breakdown: dict | None
    text: str | None


def answer_text(vision: str | None, review: str | None, raw: str | None) -> str | None:
    """The two YAML blocks under their names, or the raw answer when no block was found."""
    if vision is None and review is None:
        return raw
    return f"# VISION\n{vision or ''}\n# REVIEW\n{review or ''}"


def columns_for(row: EvalRow) -> list[Column]:
    side = row.side
    cols = []
    for tag in ("baseline", "student"):
        view = side.views.get(tag)
        if view is not None:
            cols.append(Column(tag, view.score, view.valid, view.reason, view.breakdown,
                               answer_text(view.vision_yaml, view.review_yaml, view.raw_response)))
    teacher = side.views.get("teacher")
    if teacher is not None:
        cols.append(Column("teacher", teacher.score, teacher.valid, teacher.reason, teacher.breakdown,
                           answer_text(teacher.vision_yaml, teacher.review_yaml, teacher.raw_response)))
    elif isinstance(side.reference, dict):
        ref = side.reference
        score = ref.get("score") if isinstance(ref.get("score"), (int, float)) else None
        vision, review = ref.get("vision_yaml"), ref.get("review_yaml")
        error = ref.get("format_error") if isinstance(ref.get("format_error"), str) else None
        cols.append(Column("reference", score, score is not None, error,
                           ref.get("breakdown") if isinstance(ref.get("breakdown"), dict) else None,
                           answer_text(vision if isinstance(vision, str) else None, review if isinstance(review, str) else None, None)))
    return cols


def _breakdown(breakdown: dict | None) -> str:
    if not breakdown:
        return "-"
    parts = []
    for key, value in breakdown.items():
        shown = f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else one_line(value, 20)
        parts.append(f"{one_line(key, 20)} {shown}")
    return " · ".join(parts)


def render_column(col: Column, changed: set[int], style: str) -> Text:
    """Head (score, breakdown, reason) and the answer with changed lines marked and highlighted."""
    out = Text()
    out.append(f"{col.title}\n", style="bold")
    out.append(f"score {'-' if col.score is None else f'{col.score:.3f}'}\n")
    out.append("breakdown ")
    out.append(_breakdown(col.breakdown) + "\n", style="dim")
    if not col.valid:
        out.append("format error: ", style="bold yellow")
        out.append(one_line(col.reason or "format_error", 120) + "\n", style="yellow")
    out.append("\n")
    if col.text is None:
        out.append("(no answer)", style="dim")
        return out
    for i, line in enumerate(clean(col.text).split("\n")):
        if i in changed:
            out.append(("+ " if style == ADDED else "- ") + line + "\n", style=style)
        else:
            out.append("  " + line + "\n")
    out.rstrip()
    return out


def render_columns(cols: list[Column]) -> list[Text]:
    """baseline vs student; a third column against the student (or the baseline when alone)."""
    by = {c.title: c for c in cols}
    base, student = by.get("baseline"), by.get("student")
    marks: dict[str, tuple[set[int], str]] = {}
    if base and student:
        gone, added = changed_lines(clean(base.text or ""), clean(student.text or ""))
        marks["baseline"], marks["student"] = (gone, REMOVED), (added, ADDED)
    for col in cols:
        if col.title not in ("baseline", "student"):
            other = student or base
            marks[col.title] = (changed_lines(clean(other.text or ""), clean(col.text or ""))[1], ADDED) if other else (set(), ADDED)
    return [render_column(c, *marks.get(c.title, (set(), ADDED))) for c in cols]


def render_unified(cols: list[Column]) -> Text:
    """baseline -> student as one unified diff (for narrow terminals and copy-paste)."""
    by = {c.title: c for c in cols}
    base, student = by.get("baseline"), by.get("student")
    if base is None or student is None:
        return Text("a unified diff needs both a baseline and a student answer", style="dim")
    lines = yaml_diff(clean(base.text or ""), clean(student.text or ""), "baseline", "student")
    if not lines:
        return Text("baseline and student answers are identical", style="dim")
    out = Text()
    for line in lines:
        style = "bold" if line.startswith(("---", "+++")) else "cyan" if line.startswith("@@") else (
            ADDED if line.startswith("+") else REMOVED if line.startswith("-") else "")
        out.append(line + "\n", style=style)
    out.rstrip()
    return out


def _break_points(plain: str, start: int, first: int, rest: int) -> list[int]:
    """Where to cut `plain[start:]` into pieces of at most `first`, then `rest`, cells: after the
    last space that leaves a piece at least a third full, else (one long word) at the width."""
    cuts: list[int] = []
    limit, at = first, start
    while True:
        cells, end, last_space = 0, at, -1
        while end < len(plain):
            size = get_character_cell_size(plain[end])
            if cells + size > limit:
                break
            cells += size
            if plain[end] == " ":
                last_space = end
            end += 1
        if end >= len(plain):
            return cuts
        if last_space > at + limit // 3:
            end = last_space + 1
        cuts.append(end)
        limit, at = rest, end


def wrap_hanging(text: Text, width: int) -> Text:
    """`text` with each line longer than `width` cells wrapped under its own indentation.

    A YAML line keeps its change marker (`+ `/`- `) and its nesting visible: the continuation
    starts under the value (`key: ` or `- ` included), so a wrapped description reads as one
    block instead of text running back to column 0. Styles (the change highlight) carry over.
    """
    if width < 8:
        return text
    out: list[Text] = []
    for line in text.split("\n"):
        plain = line.plain
        if len(plain) <= width and line.cell_len <= width:
            out.append(line)
            continue
        body = len(plain) - len(plain.lstrip(" +-"))  # marker and indentation ("- " items too)
        key = plain.find(": ", body)
        indent = min(key + 2 if 0 <= key and key + 2 <= width // 2 else body + 4, width // 2)
        cuts = _break_points(plain, 0, width, width - indent)
        if not cuts:
            out.append(line)
            continue
        pieces = line.divide(cuts)
        out.append(pieces[0])
        pad_style = next((span.style for span in line.spans if span.start == 0 and span.end >= len(plain)), "")
        for piece in pieces[1:]:
            cont = Text(" " * indent, style=pad_style)
            cont.append_text(piece)
            out.append(cont)
    return Text("\n", no_wrap=True).join(out)


class Answer(Static):
    """A pane's text, wrapped (`wrap_hanging`) to the pane's width whenever it is drawn; its
    `content` stays the whole Text, unwrapped."""

    def render(self) -> Text:
        content = self.content
        if not isinstance(content, Text):
            return super().render()  # type: ignore[return-value]
        return wrap_hanging(content, self.size.width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        content = self.content
        if not isinstance(content, Text):
            return super().get_content_height(container, viewport, width)
        return len(wrap_hanging(content, width).plain.split("\n"))


class DiffScreen(Screen):
    """Side-by-side answers of one concept; n/p move through the panel's rows in its order."""

    DEFAULT_CSS = """
    DiffScreen { layout: vertical; }
    DiffScreen > #diff-head { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    DiffScreen > #diff-cols { height: 1fr; }
    DiffScreen .diff-pane {
        width: 1fr; height: 100%; border: round $panel-lighten-2; padding: 0 1;
        overflow-x: hidden; scrollbar-size-vertical: 1;
    }
    DiffScreen .diff-pane:focus { border: round $accent; }
    DiffScreen .diff-col { width: 100%; height: auto; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("n,right_square_bracket", "move(1)", "Next"),
        Binding("p,left_square_bracket", "move(-1)", "Previous"),
        Binding("u", "toggle_unified", "Unified"),
        Binding("t", "toggle_teacher", "Teacher"),
    ]

    def __init__(self, rows: list[EvalRow], index: int, runs: dict[str, RunResults] | None = None) -> None:
        super().__init__()
        if not rows:
            raise ValueError("no cases to show")
        self.rows = rows
        self.index = max(0, min(index, len(rows) - 1))
        self.runs = runs or {}
        self.unified = False
        self.teacher: bool | None = None  # shown? None: as the width says (WIDE)
        self._shown_wide: bool | None = None

    @property
    def row(self) -> EvalRow:
        return self.rows[self.index]

    def compose(self) -> ComposeResult:
        yield Static(id="diff-head")
        yield Horizontal(id="diff-cols")
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        self._show()

    def _head(self) -> Text:
        row = self.row
        text = Text()
        text.append(f"{self.index + 1}/{len(self.rows)}  ", style="dim")
        text.append(one_line(row.concept_id, 40), style="bold")
        text.append(f"  tier {one_line(row.tier, 12)}  delta ")
        text.append("-" if row.delta is None else f"{row.delta:+.3f}",
                    style="red" if (row.delta or 0) < 0 else "green")
        if row.side.concept:
            text.append("\n" + one_line(row.side.concept, 300), style="italic")
        return text

    def _wide(self) -> bool:
        return self.app.size.width >= WIDE

    def teacher_shown(self) -> bool:
        return self._wide() if self.teacher is None else self.teacher

    def _visible_columns(self, cols: list[Column]) -> list[tuple[Column, Text]]:
        """The columns on screen, highlighted among themselves: baseline and student, and the
        teacher/reference when shown; narrow, it takes the baseline's place (two panes stay
        readable in 80 columns) and is highlighted against the student."""
        pair = [c for c in cols if c.title in ("baseline", "student")]
        if not self.teacher_shown() or len(pair) == len(cols):
            shown = pair or cols
        elif self._wide():
            shown = cols
        else:
            shown = [c for c in cols if c.title != "baseline"]
        return list(zip(shown, render_columns(shown), strict=True))

    def _show(self) -> None:
        if not live(self):
            return  # pushed as the app closed: its parts are already gone
        self._shown_wide = self._wide()
        self.query_one("#diff-head", Static).update(self._head())
        box = self.query_one("#diff-cols", Horizontal)
        box.remove_children()
        cols = columns_for(self.row)
        if not cols:
            panes = [("answers", Static(Text("no answers recorded for this concept", style="dim")))]
        elif self.unified:
            panes = [("baseline → student", Answer(render_unified(cols), classes="diff-col diff-unified"))]
        else:
            panes = [(col.title, Answer(text, classes="diff-col")) for col, text in self._visible_columns(cols)]
        scrolls = []
        for title, body in panes:
            pane = VerticalScroll(body, classes="diff-pane")
            pane.border_title = title
            scrolls.append(pane)
        box.mount_all(scrolls)
        for pane in scrolls:
            self.watch(pane, "scroll_y", partial(self._scrolled, pane, scrolls), init=False)

    def _scrolled(self, pane: VerticalScroll, panes: list[VerticalScroll], y: float) -> None:
        """Keep the panes at the same line: the answers are read across."""
        for other in panes:
            if other is not pane and live(other) and round(other.scroll_y) != round(y):
                other.scroll_to(y=y, animate=False, immediate=True)

    @guarded
    def on_resize(self, event: events.Resize) -> None:
        if self._shown_wide is not None and self._wide() != self._shown_wide and self.teacher is None:
            self._show()  # crossed WIDE: three panes or two

    @guarded
    def action_toggle_teacher(self) -> None:
        cols = columns_for(self.row)
        if not any(c.title not in ("baseline", "student") for c in cols):
            self.notify("no teacher or reference answer for this case", severity="warning", markup=False)
            return
        self.teacher = not self.teacher_shown()
        if self.unified:
            self.unified = False
        self._show()

    @guarded
    def action_move(self, step: int) -> None:
        new = self.index + step
        if 0 <= new < len(self.rows):
            self.index = new
            self._show()
        else:
            self.app.bell()

    @guarded
    def action_toggle_unified(self) -> None:
        self.unified = not self.unified
        self._show()

    def action_close(self) -> None:
        self.dismiss(self.row.concept_id)
