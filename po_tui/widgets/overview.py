"""What the Pipeline tab draws, as Rich renderables that lay themselves out for the width they get.

The overview is the screen an engineer leaves open, at 80 columns as at 200: each stage's state,
progress, rate, elapsed time and ETA; its headline numbers; the loss curve; the gate as it forms.
The numbers are the status document's own (engine.views.snapshot.job_row, engine.views.headline),
so the cockpit and `po-tui status` never disagree. A row never clips a number: on a narrow
terminal the bar goes first, then the percentage, then the rate, and the ETA value stays.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from engine.core.inert import one_line
from engine.core.timefmt import duration
from engine.stages.report.charts import sparkline
from engine.views.render import progress_text, rate_text
from po_tui.widgets.text import STATE_STYLE

BAR_WIDTHS = (20, 10)  # the progress bar's widths tried, widest first, before it is dropped
NAME_LIMIT = 20  # longer job names end with an ellipsis


def eta_cell(row: dict[str, Any]) -> str:
    """A running stage's time left (`-` while unknown), `done` once it succeeded, else `-`."""
    if row["state"] == "running":
        return duration(row["eta_s"])
    return "done" if row["state"] == "succeeded" else "-"


def _fraction(row: dict[str, Any]) -> float | None:
    progress = row.get("progress") or {}
    if progress.get("percent") is not None:
        return max(0.0, min(1.0, progress["percent"] / 100))
    if row["state"] in ("succeeded", "skipped"):
        return 1.0
    return None


def _bar(fraction: float | None, width: int) -> Text:
    """`━━━━━╺━━━━` and the percentage; a stage with no known amount shows an empty track."""
    if fraction is None:
        return Text("─" * width, style="dim")
    cells = round(fraction * width)
    return Text("━" * cells, style="bold").append("─" * (width - cells), style="dim")


def _percent(fraction: float | None) -> str:
    return f"{100 * fraction:.0f}%" if fraction is not None else "-"


def _short(row: dict[str, Any]) -> str:
    """The stage's headline in a few words (engine.views.headline), `-` when it has none yet."""
    return one_line((row.get("headline") or {}).get("short") or "-", 40)


def _compact_progress(row: dict[str, Any]) -> str:
    """done/total and the unit, without the percentage (its own column) or a label."""
    progress = row.get("progress")
    if not progress:
        return "-"
    return progress_text({**progress, "percent": None, "label": None})


class StagesView:
    """The stages table at the width it is drawn: the richest layout that fits, never a cut number."""

    def __init__(self, rows: list[dict[str, Any]], *, numbers: bool = False) -> None:
        """`numbers`: a column of each stage's short headline (one column layout: the full
        numbers are below the fold at 80x24, so the table carries the ones a glance needs)."""
        self.rows = rows
        self.numbers = numbers and any(_short(row) != "-" for row in rows)

    def _table(self, columns: tuple[str, ...], bar_width: int = 0, squeeze: bool = False) -> Table:
        """`squeeze`: the last resort; the name and the amount wrap (Rich narrows wrapping columns
        first), so the state, times and ETA keep their full width however narrow the terminal."""
        table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), expand=False, header_style="bold")
        for name in columns:
            if name == "bar":
                table.add_column("progress", no_wrap=True)
            elif name == "job":
                table.add_column("job", no_wrap=not squeeze, overflow="fold" if squeeze else "ellipsis", max_width=NAME_LIMIT)
            else:
                table.add_column("done" if name == "amount" else name, no_wrap=not (squeeze and name == "amount"),
                                 overflow="fold", justify="right" if name in ("%", "elapsed", "ETA") else "left")
        for row in self.rows:
            fraction = _fraction(row)
            cells = {
                "job": Text(one_line(row["name"], 40)),
                "state": Text(one_line(row["state"], 12), style=STATE_STYLE.get(row["state"], "")),
                "bar": _bar(fraction, bar_width).append(f" {_percent(fraction):>4}"),
                "%": Text(_percent(fraction)),
                "amount": Text(_compact_progress(row)),
                "rate": Text(rate_text(row)),
                "numbers": Text(_short(row)),
                "elapsed": Text(duration(row["elapsed_s"])),
                "ETA": Text(eta_cell(row), style="bold" if row["state"] == "running" else ""),
            }
            table.add_row(*(cells[name] for name in columns))
        return table

    def _layouts(self) -> Iterable[tuple[tuple[str, ...], int]]:
        """Richest first. The rate goes when no stage has one (a finished run), like `status`."""
        rate = ("rate",) if any(row.get("rate_per_s") is not None for row in self.rows) else ()
        if self.numbers:
            yield ("job", "state", "bar", "amount", "numbers", *rate, "elapsed", "ETA"), BAR_WIDTHS[-1]
            yield ("job", "state", "%", "amount", "numbers", *rate, "elapsed", "ETA"), 0
            yield ("job", "state", "%", "numbers", *rate, "elapsed", "ETA"), 0
            yield ("job", "state", "%", "numbers", "elapsed", "ETA"), 0
            yield ("job", "state", "numbers", "elapsed", "ETA"), 0
        for width in BAR_WIDTHS:
            yield ("job", "state", "bar", "amount", *rate, "elapsed", "ETA"), width
        yield ("job", "state", "%", "amount", *rate, "elapsed", "ETA"), 0
        yield ("job", "state", "amount", *rate, "elapsed", "ETA"), 0
        yield ("job", "state", "amount", "elapsed", "ETA"), 0

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.update_width(10_000)
        for columns, bar_width in self._layouts():
            table = self._table(columns, bar_width)
            if Measurement.get(console, wide, table).maximum <= options.max_width:
                yield table
                return
        yield self._table(("job", "state", "amount", "elapsed", "ETA"), squeeze=True)


def numbers_table(rows: list[dict[str, Any]]) -> Table | None:
    """Each stage's headline numbers (what `po-tui status` shows in its numbers column)."""
    said = [(row["name"], row["headline"]["text"]) for row in rows if row["headline"]["text"]]
    if not said:
        return None
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, overflow="ellipsis", max_width=NAME_LIMIT, style="bold")
    table.add_column(ratio=1)
    for name, text in said:
        table.add_row(Text(one_line(name, 40)), Text(one_line(text, 200)))
    return table


class LossLine:
    """`train loss 1.800 ▇▆▅▄▃▂▁ 0.400  (8 steps)`: first and last value around a sparkline as wide as the room left."""

    def __init__(self, name: str, points: list[tuple[int, float]]) -> None:
        self.name, self.points = name, points

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        values = [v for _, v in self.points]
        if not values:
            yield Text(f"{self.name}: no points yet", style="dim")
            return
        head = f"{self.name} {values[0]:.4g} "
        tail = f" {values[-1]:.4g} at step {self.points[-1][0]}  ({len(values)} point{'s' if len(values) != 1 else ''})"
        room = max(4, options.max_width - len(head) - len(tail))
        yield Text(head).append(sparkline(values, width=room), style="bold").append(tail)


def gate_lines(verdict: str | None, criteria: list[tuple[str, str, str]]) -> RenderableType:
    """The gate as it forms: the verdict once there, and each criterion pass / FAIL / pending."""
    out = Text("gate ", style="bold")
    if verdict:
        out.append(one_line(verdict, 10).upper(), style="bold")
    else:
        counts = {s: sum(1 for *_, status in criteria if status == s) for s in ("pass", "FAIL", "pending")}
        out.append("forming: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) if criteria else "no criteria known yet")
    if not criteria:
        return out
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    table.add_column(no_wrap=True, style="dim")
    for label, condition, status in criteria:
        table.add_row(Text(status, style="bold" if status == "FAIL" else "dim" if status == "pending" else ""),
                      Text(one_line(label, 60)), Text(one_line(condition, 30)))
    return Group(out, table)
