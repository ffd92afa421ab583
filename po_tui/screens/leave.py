"""Quitting the cockpit of a run it started while the run still goes: leave it, cancel it, or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from po_tui.widgets.text import inert

# What the dismissal means; None (escape) is "stay".
DETACH, CANCEL = "detach", "cancel"


class LeaveScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("d", "answer('detach')", "Leave it running"),
        Binding("c", "answer('cancel')", "Cancel the run"),
        Binding("escape,s", "answer(None)", "Stay"),
    ]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(inert(f"The run in {self.run_dir} is still going. Quit and leave it running in the "
                               "background (follow it again with `po-tui attach`), or cancel it?"))
            with Horizontal(id="confirm-buttons"):
                yield Button("Leave running (d)", id="detach")
                yield Button("Cancel run (c)", id="cancel", variant="warning")
                yield Button("Stay (esc)", id="stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
