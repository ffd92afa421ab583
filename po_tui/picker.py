"""`po-tui` with no sub-command: the runs under ./runs (and the demo's), newest first; open one or start one.

The picker only chooses; it returns what was chosen and po_tui/cli.py opens the cockpit on it,
then comes back here when the cockpit's `b` asks for the list again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from engine.core.inert import one_line
from engine.errors import InputError
from engine.views.runlist import list_runs, newest_first
from po_tui.screens.newrun import NewRunScreen
from po_tui.widgets.text import STATE_STYLE, inert

DEFAULT_ROOTS = ("runs", "artifacts/demo")
REFRESH_S = 2.0
COLUMNS = ("run", "created", "state", "stage", "gate", "path")


def gather(roots: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every run under the roots that exist, newest first; and one line per root that could not be read."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for root in roots:
        if not root.is_dir():
            continue
        try:
            rows.extend(list_runs(root))
        except InputError as exc:
            problems.append(str(exc))
    return newest_first(rows), problems


class RunsApp(App[tuple[str, Path] | None]):
    """Returns ("open", RUN_DIR), ("started", RUN_DIR) or None (quit)."""

    CSS_PATH = "po_tui.tcss"
    TITLE = "po-tui"
    SUB_TITLE = "runs"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("enter", "open", "Open", show=True),
        Binding("n", "new_run", "New run"),
        Binding("g", "reload", "Refresh"),
    ]

    def __init__(self, roots: list[Path] | None = None, *, config: str = "po-tui.yaml", runs_dir: Path = Path("runs")) -> None:
        super().__init__()
        self.roots = roots or [Path(r) for r in DEFAULT_ROOTS]
        self.config = config
        self.runs_dir = runs_dir
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-head")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()
        self.action_reload()
        self.set_interval(REFRESH_S, self.action_reload)

    @work(thread=True, exclusive=True, group="runs")
    def action_reload(self) -> None:
        rows, problems = gather(self.roots)
        self.call_from_thread(self._show, rows, problems)

    def _show(self, rows: list[dict[str, Any]], problems: list[str]) -> None:
        table = self.query_one(DataTable)
        keep = self.selected()
        if [r["path"] for r in rows] != [r["path"] for r in self.rows] or rows != self.rows:
            self.rows = rows
            table.clear()
            for r in rows:
                state = str(r["state"])
                gate = str(r["gate"]).upper() if r["gate"] else "–"
                table.add_row(inert(r["run_id"] or Path(r["path"]).name, limit=28), inert(r["created_at"] or "–", limit=20),
                              Text(state, style=STATE_STYLE.get(state, "")), inert(r["stage"] or "–", limit=16),
                              Text(gate, style="bold"), inert(r["path"], limit=80), key=r["path"])
            for i, r in enumerate(rows):
                if r["path"] == keep:
                    table.move_cursor(row=i)
        where = ", ".join(str(r) for r in self.roots)
        head = Text(f"{len(rows)} run(s) in {one_line(where, 80)}  ·  Enter opens one, n starts a new run from a config")
        for p in problems:
            head.append("\n" + one_line(p, 200), style="yellow")
        self.query_one("#runs-head", Static).update(head)

    def selected(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]["path"]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        path = self.selected()
        if path is None:
            self.notify("no run selected: n starts one", severity="warning", markup=False)
            return
        self.exit(("open", Path(path)))

    def action_new_run(self) -> None:
        def chosen(config: str | None) -> None:
            if config:
                self._start(config)

        self.push_screen(NewRunScreen(self.config), chosen)

    @work(thread=True, exclusive=True, group="start")
    def _start(self, config: str) -> None:
        """Validate the config and start its engine detached (engine/pipeline/launch.py)."""
        from engine.pipeline.launch import start_run

        try:
            run_dir = start_run(config, runs_dir=self.runs_dir)
        except InputError as exc:
            self.call_from_thread(self.notify, f"cannot start: {exc}", severity="error", markup=False, timeout=15)
            return
        except Exception as exc:
            self.call_from_thread(self.notify, f"start failed: {type(exc).__name__}: {exc}", severity="error", markup=False)
            return
        self.call_from_thread(self.exit, ("started", run_dir))
