"""Start a new run from the picker: the path of a pipeline config, validated before anything starts."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from engine.core.inert import one_line
from po_tui.guard import guarded
from po_tui.widgets.text import inert


class NewRunScreen(ModalScreen[str | None]):
    """Asks for CONFIG; dismisses with the path, or None on escape. The caller validates and says why."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, default: str = "po-tui.yaml") -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static("Start a new run: the pipeline config (`po-tui init` writes one), then Enter.")
            yield Input(value=self.default, placeholder="path/to/po-tui.yaml", id="config-path")
            yield Static("", id="newrun-error")

    @guarded
    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            self.show_error("a config path is needed")
            return
        try:
            found = Path(value).is_file()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte pasted in
            self.show_error(f"{one_line(value, 80)}: not a usable path ({exc.strerror if isinstance(exc, OSError) else exc})")
            return
        if not found:
            self.show_error(f"{value}: no such file (`po-tui init {value}` writes one)")
            return
        self.dismiss(value)

    def show_error(self, message: str) -> None:
        self.query_one("#newrun-error", Static).update(inert(message, "bold red", limit=300))
