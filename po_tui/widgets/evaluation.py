"""The evaluation panel: one row per concept with teacher / baseline / student scores, live.

Data comes from engine.views.evaltable (results files re-parsed only when changed, cases files
followed by offset), so the app can call `refresh_data()` on a timer. Every string from a file
is cleaned (engine.core.inert) and shown as rich Text, never as markup. Enter opens the
side-by-side diff of the selected concept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import DataTable, Static

from engine.core.inert import one_line
from engine.views.evaltable import ROLES, EvalRow, EvalTable, delta_text, score_text, tier_means
from po_tui.guard import deliver, guarded, live

COLUMNS = ("concept", "tier", "teacher", "baseline", "student", "delta", "status")
STATUS_FILTERS = ("all", "ok", "error")


def _sort_key(column: str) -> Callable[[EvalRow], tuple]:
    """Missing numbers sort last whatever the direction is (handled by the caller)."""
    if column == "concept":
        return lambda r: (r.concept_id,)
    if column == "tier":
        return lambda r: (r.tier, r.concept_id)
    if column == "status":
        return lambda r: (r.status, r.concept_id)
    if column == "delta":
        return lambda r: (r.delta, r.concept_id)
    return lambda r: (r.scores[column], r.concept_id)


def order_rows(rows: list[EvalRow], column: str, reverse: bool) -> list[EvalRow]:
    key = _sort_key(column)
    present = [r for r in rows if key(r)[0] is not None]
    missing = [r for r in rows if key(r)[0] is None]
    return sorted(present, key=key, reverse=reverse) + sorted(missing, key=lambda r: r.concept_id)


class EvaluationPanel(Widget):
    """Per-case evaluation table of a run directory, with filters, sorting and per-tier means."""

    DEFAULT_CSS = """
    EvaluationPanel { height: 1fr; layout: vertical; }
    EvaluationPanel > #eval-head { height: auto; color: $text-muted; }
    EvaluationPanel > DataTable { height: 1fr; }
    EvaluationPanel > #eval-tiers { height: auto; max-height: 8; }
    """

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort"),
        Binding("o", "reverse_sort", "Order"),
        Binding("t", "cycle_tier", "Tier"),
        Binding("f", "cycle_status", "Status"),
    ]

    # `id` is Textual's own keyword for every widget (query_one("#...")), so it keeps the builtin's name.
    def __init__(self, run_dir: Path, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(name=name, id=id, classes=classes)
        self.run_dir = Path(run_dir)
        self.table = EvalTable(self.run_dir)
        self.sort_column = "delta"
        self.sort_reverse = False  # largest regressions first
        self.tier_filter = "all"
        self.status_filter = "all"
        self.shown_rows: list[EvalRow] = []
        self._last_error: str | None = None
        self._drawn = False
        self._refreshing = False

    def compose(self) -> ComposeResult:
        yield Static(id="eval-head")
        table: DataTable = DataTable(id="eval-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Static(id="eval-tiers")

    @guarded
    def on_mount(self) -> None:
        self.refresh_data()

    # --- data --------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        """Re-read the results that changed on disk and redraw; a problem becomes a notification."""
        self._after_refresh(self._read())

    def _read(self) -> bool | Exception:
        """Whether the table changed, or what went wrong (a view must never take the app down)."""
        try:
            return self.table.refresh()
        except Exception as exc:
            return exc

    def refresh_in_background(self) -> None:
        """`refresh_data` with the file reads off the UI thread (the app's timer calls this).

        One refresh at a time: a slow disk skips ticks instead of stacking threads.
        """
        if not self._refreshing:
            self._refreshing = True
            self._refresh_worker()

    @work(thread=True, group="eval-refresh")
    @guarded
    def _refresh_worker(self) -> None:
        if not deliver(self, self._after_refresh, self._read()):
            self._refreshing = False  # closing: nothing will take the result, and nothing waits for it

    @guarded
    def _after_refresh(self, changed: bool | Exception) -> None:
        self._refreshing = False
        if not live(self):
            return  # the app is closing: nothing to draw on
        if isinstance(changed, Exception):
            self._notify_once(f"evaluation: {changed}")
            return
        if self.table.warnings:
            self._notify_once("evaluation: " + self.table.warnings[0])
        if changed or not self._drawn:
            self._redraw()

    def _notify_once(self, message: str) -> None:
        message = one_line(message, 300)
        if message != self._last_error and self.is_attached:
            self._last_error = message
            self.app.notify(message, title="Evaluation", severity="warning", markup=False)

    # --- drawing -----------------------------------------------------------------------------

    def _filtered(self) -> list[EvalRow]:
        rows = self.table.rows
        if self.tier_filter != "all":
            rows = [r for r in rows if r.tier == self.tier_filter]
        if self.status_filter != "all":
            want_ok = self.status_filter == "ok"
            rows = [r for r in rows if r.ok == want_ok]
        return order_rows(rows, self.sort_column, self.sort_reverse)

    @staticmethod
    def _score(row: EvalRow, tag: str) -> Text:
        if tag in row.errors:  # counted as 0 in the delta and the means
            return Text("err", style="yellow", justify="right")
        return Text(score_text(row.scores[tag]), justify="right")

    def _cells(self, row: EvalRow) -> list[Text]:
        teacher = score_text(row.scores["teacher"]) + ("ʳ" if row.teacher_is_reference and row.scores["teacher"] is not None else "")
        delta = Text(delta_text(row.delta), justify="right")
        if row.delta is not None and abs(row.delta) >= 0.0005:
            delta.stylize("red" if row.delta < 0 else "green")
        status = Text(one_line(row.status, 60), style="" if row.ok else "yellow")
        return [
            Text(one_line(row.concept_id, 40)),
            Text(one_line(row.tier, 12)),
            Text(teacher, justify="right"),
            self._score(row, "baseline"),
            self._score(row, "student"),
            delta,
            status,
        ]

    def _redraw(self) -> None:
        try:
            table = self.query_one("#eval-table", DataTable)
        except NoMatches:  # not composed yet: on_mount draws
            return
        self._drawn = True
        current = self.current_concept()
        self.shown_rows = self._filtered()
        table.clear()
        for row in self.shown_rows:
            table.add_row(*self._cells(row), key=row.concept_id)
        if current is not None:
            for i, row in enumerate(self.shown_rows):
                if row.concept_id == current:
                    table.move_cursor(row=i)
                    break
        self.query_one("#eval-head", Static).update(self._head())
        self.query_one("#eval-tiers", Static).update(self._tiers())

    def _head(self) -> Text:
        if not self.table.sources:
            return Text(f"no evaluation results yet in {one_line(self.run_dir, 60)}", style="dim")
        parts = []
        for s in self.table.sources:
            if s.live:
                parts.append(f"{s.tag} {s.done}/{s.total if s.total is not None else '?'} live")
            else:
                parts.append(f"{s.tag} {s.path.name}")
        arrow = "↓" if self.sort_reverse else "↑"
        filters = f"tier={self.tier_filter} status={self.status_filter} sort={self.sort_column}{arrow}"
        legend = "  ʳ = the dataset's reference answer" if any(r.teacher_is_reference for r in self.table.rows) else ""
        return Text(one_line(" · ".join(parts), 160) + f"  [{len(self.shown_rows)}/{len(self.table.rows)}] " + filters + legend)

    def _tiers(self) -> Text:
        text = Text()
        means = tier_means(self.table.rows)
        if not means:
            return text
        text.append("tier means (format errors as 0)\n", style="bold")
        for tier, n, by_role, delta in means:
            roles = "  ".join(f"{r} {score_text(by_role[r])}" for r in ROLES if any(row.scores[r] is not None for row in self.table.rows))
            text.append(f"{one_line(tier, 12):<10} n={n:<3} {roles}  delta {delta_text(delta)}\n")
        text.rstrip()
        return text

    # --- navigation --------------------------------------------------------------------------

    def current_concept(self) -> str | None:
        try:
            table = self.query_one("#eval-table", DataTable)
        except NoMatches:
            return None
        if not self.shown_rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.shown_rows):
            return None
        return self.shown_rows[table.cursor_row].concept_id

    @guarded  # the diff screen's dismiss callback
    def select_concept(self, concept_id: str | None) -> None:
        """Put the cursor on a concept (after the diff screen moved through cases)."""
        for i, row in enumerate(self.shown_rows):
            if row.concept_id == concept_id:
                self.query_one("#eval-table", DataTable).move_cursor(row=i)
                return

    def open_concept(self, concept_id: str) -> bool:
        """Jump to a case by concept_id (for a command palette); filters are cleared if they hide it."""
        if not any(r.concept_id == concept_id for r in self.shown_rows):
            self.tier_filter = self.status_filter = "all"
            self._redraw()
        for i, row in enumerate(self.shown_rows):
            if row.concept_id == concept_id:
                self.select_concept(concept_id)
                self.open_diff(i)
                return True
        return False

    @guarded
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open_diff(event.cursor_row)

    @guarded
    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = COLUMNS[event.column_index]
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._redraw()

    def open_diff(self, index: int) -> None:
        if not 0 <= index < len(self.shown_rows):
            return
        from po_tui.screens.diff import DiffScreen

        try:
            screen = DiffScreen(list(self.shown_rows), index, self.table.runs)
        except Exception as exc:
            self._notify_once(f"cannot show the diff: {exc}")
            return
        self.app.push_screen(screen, self.select_concept)

    # --- actions -----------------------------------------------------------------------------

    @guarded
    def action_cycle_sort(self) -> None:
        self.sort_column = COLUMNS[(COLUMNS.index(self.sort_column) + 1) % len(COLUMNS)]
        self._redraw()

    @guarded
    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._redraw()

    @guarded
    def action_cycle_tier(self) -> None:
        tiers = ["all"] + sorted({r.tier for r in self.table.rows})
        self.tier_filter = tiers[(tiers.index(self.tier_filter) + 1) % len(tiers)] if self.tier_filter in tiers else "all"
        self._redraw()

    @guarded
    def action_cycle_status(self) -> None:
        self.status_filter = STATUS_FILTERS[(STATUS_FILTERS.index(self.status_filter) + 1) % len(STATUS_FILTERS)]
        self._redraw()
