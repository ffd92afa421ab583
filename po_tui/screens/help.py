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
  1-6        jump to a tab (Pipeline, Teacher, Training, Evaluation, Gate, Logs)
  tab        move focus        ctrl+p  command palette (open report, cancel run, jump to tab)
  r          open report.md    c       cancel the run (asks first)
  ?          this help         q       quit (the run goes on)

Tabs
  Pipeline   each job: state, progress, elapsed, ETA
  Teacher    accepted/attempted/rejected, rates, cost, score histogram, review statuses, retries
  Training   train and eval loss against step, learning rate, epoch, tokens/s, GPU memory
  Evaluation per-case table and YAML diffs (when installed)
  Gate       each criterion: value, threshold, pass/fail; the ratio interval
  Logs       the tail of each job's stdout/stderr
"""


class HelpScreen(ModalScreen[None]):
    """Static help text; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text(HELP))
