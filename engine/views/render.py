"""Rich renderings of a status document: the screen of `po-tui status` and its one-line form.

Every string that came from a run (job names, messages, stage summaries) is wrapped in
rich.text.Text after inert cleaning, so `[bold red]` in a model answer prints as those characters
and an ANSI escape in a stderr tail never reaches the terminal.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from engine.core.inert import one_line
from engine.core.timefmt import duration
from engine.runlog.cause import error_text
from engine.views.gpu import gpu_lines

STATE_STYLES = {
    "running": "bold cyan", "succeeded": "green", "failed": "bold red", "cancelled": "yellow",
    "stale": "bold magenta", "pending": "dim", "skipped": "dim", "damaged": "bold red",
}
VERDICT_STYLES = {"pass": "bold green", "fail": "bold red"}


def _n(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else "?"


def progress_text(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    unit = one_line(p.get("unit") or "", 20)
    if p.get("total"):
        text = f"{_n(p['done'])}/{_n(p['total'])} {unit}".rstrip()
        if p.get("percent") is not None:
            text += f" {p['percent']:.0f}%"
    else:
        text = f"{_n(p['done'])} {unit}".rstrip()
    if p.get("label"):
        text += f" ({one_line(p['label'], 30)})"
    return text


def rate_text(row: dict[str, Any]) -> str:
    rate, unit = row.get("rate_per_s"), (row.get("progress") or {}).get("unit") or "units"
    if rate is None:
        return "-"
    return f"{rate * 60:.1f} {one_line(unit, 12)}/min" if rate < 1 else f"{rate:.1f} {one_line(unit, 12)}/s"


def state_text(state: str) -> Text:
    return Text(one_line(state, 20), style=STATE_STYLES.get(state, ""))


def alive_text(alive: bool | None) -> str:
    return {True: "alive", False: "gone", None: "-"}[alive]


def header(doc: dict[str, Any]) -> Text:
    t = Text()
    t.append("run ", style="bold").append(one_line(doc["run_id"], 80)).append("  ")
    t.append_text(state_text(doc["state"]))
    if doc.get("current_stage"):
        t.append("  stage ").append(one_line(doc["current_stage"], 40))
    t.append(f"  created {one_line(doc.get('created_at') or '-', 40)}")
    engine = doc.get("engine")
    if engine is not None:
        t.append(f"  engine pid {engine.get('pid')} {alive_text(engine.get('alive'))}")
    gate = doc.get("gate")
    if gate:
        verdict = one_line(gate["verdict"], 10)
        t.append("  gate ").append(verdict.upper(), style=VERDICT_STYLES.get(verdict, ""))
    t.append(f"\n{one_line(doc['run_dir'], 300)}", style="dim")
    return t


# The jobs table's columns: (heading, Rich column options). Short values never wrap (a state
# split as `succeede|d` reads as nothing); a long job name or progress label is cut with an
# ellipsis, and the numbers wrap between words.
_COLUMNS: dict[str, dict[str, Any]] = {
    "job": {"no_wrap": True, "overflow": "ellipsis", "max_width": 20},
    "state": {"no_wrap": True},
    "process": {"no_wrap": True},
    "progress": {"no_wrap": True, "overflow": "ellipsis", "max_width": 30},
    "rate": {"no_wrap": True},
    "elapsed": {"no_wrap": True},
    "ETA": {"no_wrap": True},
    "numbers": {"overflow": "ellipsis", "ratio": 1},
}
NUMBERS_MIN = 24  # narrower than this, the numbers wrap into a column of single words
_ALWAYS = ("job", "state", "progress", "elapsed")  # the others only when some job has a value
# Under a narrow terminal the table keeps these; process, rate and numbers go to a line per job
# under it, where they wrap at words instead of squeezing every column.
_NARROW = ("job", "state", "progress", "elapsed", "ETA")
_DETAILS = ("process", "rate", "numbers")


def _cells(row: dict[str, Any]) -> dict[str, Text]:
    return {
        "job": Text(one_line(row["name"], 40)),
        "state": state_text(row["state"]),
        "process": Text(f"{row['pid']} {alive_text(row['alive'])}" if row["alive"] is not None else "-"),
        "progress": Text(progress_text(row["progress"])),
        "rate": Text(rate_text(row)),
        "elapsed": Text(duration(row["elapsed_s"])),
        "ETA": Text(duration(row["eta_s"])),
        "numbers": Text(one_line(row["headline"]["text"], 160)),
    }


def _said(cell: Text) -> bool:
    return cell.plain not in ("", "-")


def _table(rows: list[dict[str, Text]], names: tuple[str, ...]) -> Table:
    """The columns `names` that say something for some job (no live process, rate or ETA in a
    finished run: left out), no outer box."""
    shown = [n for n in names if n in _ALWAYS or any(_said(r[n]) for r in rows)]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), expand=False)
    for name in shown:
        table.add_column(name, **_COLUMNS[name])
    for r in rows:
        table.add_row(*(r[n] for n in shown))
    return table



class JobsView:
    """The jobs of a run, laid out for the width it is drawn at: one table when it fits; else a
    narrow table (state, progress, times) and under it one wrapped line per job with its process,
    rate and numbers. Nothing is dropped and no word is split (`po-tui status` at 80 columns)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = [_cells(row) for row in self.doc["jobs"]]
        fixed = _table(rows, tuple(n for n in _COLUMNS if n != "numbers"))
        needed = Measurement.get(console, options.update_width(10_000), fixed).maximum + 1 + NUMBERS_MIN
        if needed <= options.max_width:
            yield _table(rows, tuple(_COLUMNS))
            return
        yield _table(rows, _NARROW)
        for row, cells in zip(self.doc["jobs"], rows, strict=True):
            said = [f"{'pid ' if name == 'process' else ''}{cells[name].plain}" for name in _DETAILS if _said(cells[name])]
            if said:
                line = Text(one_line(row["name"], 40) + ": ", style="bold")
                yield line.append("  ".join(said), style="")


def problems(doc: dict[str, Any]) -> Text | None:
    """Recent errors and warnings, stale jobs and damaged logs: plain text, one per line."""
    lines: list[tuple[str, str]] = []
    for row in doc["jobs"]:
        name = one_line(row["name"], 40)
        if row.get("stale_reason"):
            lines.append(("bold magenta", f"{name} stale: {one_line(row['stale_reason'], 200)}"))
        for kind, style, key, count in (("error", "red", "errors", "error_count"), ("warning", "yellow", "warnings", "warning_count")):
            items = row[key]
            if not items:
                continue
            more = row[count] - len(items)
            if more > 0:
                lines.append((style, f"{name}: {more} earlier {kind}s not shown"))
            for item in items:
                code = f" [{item['code']}]" if item.get("code") else ""
                lines.append((style, f"{name} {kind}{code}: {error_text(item)}"))
    for job, dmg in (doc.get("damaged_logs") or {}).items():
        if dmg.get("corrupt_lines"):
            lines.append(("yellow", f"{one_line(job, 40)}: {dmg['corrupt_lines']} damaged event lines skipped"))
        if dmg.get("torn"):
            lines.append(("yellow", one_line(dmg["torn"], 300)))
    if not lines:
        return None
    text = Text()
    for i, (style, line) in enumerate(lines):
        text.append(("\n" if i else "") + line, style=style)
    return text


def screen(doc: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [header(doc), JobsView(doc), *gpu_lines(doc.get("gpu"))]
    extra = problems(doc)
    if extra is not None:
        parts.append(extra)
    return Group(*parts)


def one_line_status(doc: dict[str, Any]) -> str:
    """The plain progress line of `--follow` when stdout is not a terminal (logs, pipes)."""
    parts = [one_line(doc["run_id"], 60), doc["state"]]
    row = next((r for r in doc["jobs"] if r["name"] == doc.get("current_stage")), None)
    if row is not None:
        parts.append(f"{one_line(row['name'], 40)} {row['state']}")
        if row["progress"]:
            parts.append(progress_text(row["progress"]))
        if row["rate_per_s"] is not None:
            parts.append(rate_text(row))
        if row["eta_s"] is not None:
            parts.append(f"eta {duration(row['eta_s'])}")
        if row["headline"]["text"]:
            parts.append(one_line(row["headline"]["text"], 160))
        if row["errors"]:
            parts.append(f"errors {row['error_count']}")
    if doc.get("gate"):
        parts.append(f"gate {one_line(doc['gate']['verdict'], 10).upper()}")
    return " | ".join(parts)
