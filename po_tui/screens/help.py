"""The `?` screen: every key, and what each tab shows."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """po-tui cockpit: follows a run directory's event logs (the files are the source of truth).

Keys
  1-6        jump to a tab (Pipeline, Teacher, Training, Evaluation, Gate, Logs) and focus it
  tab        move focus        ctrl+p  command palette (report, cancel, resume, retry, tabs, "case POCON-…")
  r          open report.md    c       cancel the run through its engine (asks first)
  R          resume the run    F       resume, running the failed stage again
  b          back to the runs list (when opened from `po-tui`)
  ?          this help         q       quit (a run this cockpit started asks: leave it running or cancel)

  Controls that cannot work here say why (Pipeline tab, palette): a run driven from another
  host, an engine already driving it, nothing running, no config.yaml to resume from.

Evaluation tab
  enter      side-by-side diff of the case (n/p next/previous, u unified, t teacher pane, esc back)
  s / o      sort column / order         t / f   filter by tier / by status (ok, error)

Logs tab (all jobs' stdout/stderr in time order; │ stdout, ┆ stderr, errors in the error colour)
  j / a      next job / all jobs         /       search (enter: next match, n/N next/previous, esc: end)
  w          wrap long lines             t       time column

Tabs
  Pipeline   each job: state, progress, elapsed, ETA
  Teacher    accepted/attempted/rejected, rates, cost, score histogram, review statuses, retries
  Training   train and eval loss against step, learning rate, epoch, tokens/s, GPU memory
  Evaluation per-case scores (teacher, baseline, student), delta, status; per-tier means; diffs
  Gate       each criterion: value, threshold, pass/fail; the ratio interval
  Logs       every job's stdout/stderr, newest last, filtered by job or by a search
"""


class HelpScreen(ModalScreen[None]):
    """Static help text; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text(HELP))
