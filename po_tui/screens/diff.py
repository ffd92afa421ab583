"""One concept's answers side by side: baseline, student, and the teacher or reference answer.

Lines that differ between baseline and student are highlighted (difflib, via
engine.stages.sidebyside.changed_lines); the teacher/reference column is highlighted against the
student. Each column heads with its score, the metric breakdown and the format-error reason. All
model text is cleaned and shown as rich Text, so markup or escapes in an answer stay literal.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.core.inert import clean, one_line
from engine.stages.results import RunResults
from engine.stages.sidebyside import changed_lines, yaml_diff
from engine.views.evaltable import EvalRow
from po_tui.guard import guarded, live

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


class DiffScreen(Screen):
    """Side-by-side answers of one concept; n/p move through the panel's rows in its order."""

    DEFAULT_CSS = """
    DiffScreen { layout: vertical; }
    DiffScreen > #diff-head { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    DiffScreen > #diff-body { height: 1fr; }
    DiffScreen #diff-cols { height: auto; }
    DiffScreen .diff-col { width: 1fr; height: auto; padding: 0 1; border-right: vkey $panel-lighten-2; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("n,right_square_bracket", "move(1)", "Next case"),
        Binding("p,left_square_bracket", "move(-1)", "Previous case"),
        Binding("u", "toggle_unified", "Unified/side by side"),
    ]

    def __init__(self, rows: list[EvalRow], index: int, runs: dict[str, RunResults] | None = None) -> None:
        super().__init__()
        if not rows:
            raise ValueError("no cases to show")
        self.rows = rows
        self.index = max(0, min(index, len(rows) - 1))
        self.runs = runs or {}
        self.unified = False

    @property
    def row(self) -> EvalRow:
        return self.rows[self.index]

    def compose(self) -> ComposeResult:
        yield Static(id="diff-head")
        with VerticalScroll(id="diff-body"):
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

    def _show(self) -> None:
        if not live(self):
            return  # pushed as the app closed: its parts are already gone
        self.query_one("#diff-head", Static).update(self._head())
        box = self.query_one("#diff-cols", Horizontal)
        box.remove_children()
        cols = columns_for(self.row)
        if not cols:
            box.mount(Static(Text("no answers recorded for this concept", style="dim")))
        elif self.unified:
            box.mount(Static(render_unified(cols), classes="diff-col diff-unified"))
        else:
            box.mount_all(Static(text, classes="diff-col") for text in render_columns(cols))
        self.query_one("#diff-body", VerticalScroll).scroll_home(animate=False)

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
