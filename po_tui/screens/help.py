"""The `?` screen: every key, and what each tab shows.

Each section is a two-column table (key, description) rather than preformatted text: at 80
columns preformatted rows wrapped wherever the terminal ended, splitting a phrase under the
next key's column. A table wraps a long description inside its own column, indented under
itself, so a key's row(s) always read as one.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = "po-tui cockpit: follows a run directory's event logs (the files are the source of truth)."

# (section title, [(key, description)]), in the order shown.
SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Keys", (
        ("1-6", "jump to a tab (Pipeline, Teacher, Training, Evaluation, Gate, Logs) and focus it"),
        ("tab", "move the focus"),
        ("ctrl+p", "command palette: report, cancel, resume, retry, tabs, \"case POCON-…\""),
        ("r", "the run's report.md, rendered as Markdown"),
        ("c", "cancel the run through its engine (asks first)"),
        ("R", "resume the run (not offered on a run that succeeded)"),
        ("F", "resume, running the failed stage again"),
        ("b", "back to the runs list (when opened from `po-tui`; the run goes on)"),
        ("?", "this help"),
        ("q", "quit (a run this cockpit started and that still goes asks: leave it running or cancel it)"),
    )),
    ("Evaluation tab", (
        ("enter", "side-by-side diff of the case (n/p next/previous, u unified, t teacher pane, esc back)"),
        ("s / o", "sort column / sort order"),
        ("t / f", "filter by tier / by status (ok, error)"),
    )),
    ("Logs tab (all jobs' stdout/stderr in time order; │ stdout, ┆ stderr, errors in the error colour)", (
        ("j / a", "next job / all jobs"),
        ("/", "search (enter: next match, n/N next/previous, esc: end)"),
        ("w", "wrap long lines"),
        ("t", "time column"),
    )),
    ("Tabs", (
        ("Pipeline", "the overview: each job's state, progress, rate, ETA and headline numbers; loss; the gate as it forms; GPUs"),
        ("Teacher", "accepted/attempted/rejected, rates, cost, score histogram, review statuses, retries"),
        ("Training", "train and eval loss against step, learning rate, epoch, tokens/s, GPU memory"),
        ("Evaluation", "per-case scores (teacher, baseline, student), delta, status; per-tier means; diffs"),
        ("Gate", "each criterion: value, threshold, pass/fail; the ratio interval"),
        ("Logs", "every job's stdout/stderr, newest last, filtered by job or by a search"),
    )),
)

NOTE = ("Controls that cannot work here say why (Pipeline tab, palette): a run driven from another host, an engine "
        "already driving it, nothing running, no config.yaml to resume from, a run that already succeeded.")

KEY_WIDTH = max(len(key) for _, rows in SECTIONS for key, _ in rows)


def section_table(rows: tuple[tuple[str, str], ...]) -> Table:
    """Keys in a fixed, unwrapped column; descriptions wrap on words inside their own column."""
    table = Table.grid(padding=(0, 2), pad_edge=False)
    table.add_column("key", width=KEY_WIDTH, no_wrap=True, style="bold")
    table.add_column("description", ratio=1, overflow="fold")
    for key, description in rows:
        table.add_row(Text(key), Text(description))
    return table


def help_renderable() -> Group:
    parts: list = [Text(INTRO), Text("")]
    for title, rows in SECTIONS:
        parts += [Text(title, style="bold underline"), section_table(rows), Text("")]
    parts.append(Text(NOTE))
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """The help text; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_renderable(), id="help-text")
