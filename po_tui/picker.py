"""`po-tui` with no sub-command: the runs under the runs directory (and the demo's), newest first,
with each live run's stage progress and ETA; open one or start one.

The runs directory is `po-tui --runs-dir DIR`, else $PO_TUI_RUNS_DIR, else `runs_dir:` in
./po-tui.yaml, else ./runs (engine/pipeline/runsdir.py). The picker only chooses; it returns
what was chosen and po_tui/cli.py opens the cockpit on it, then comes back here when the
cockpit's `b` asks for the list again.
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
from engine.core.timefmt import duration
from engine.errors import InputError
from engine.views.runlist import LiveRuns
from po_tui.guard import barrier, deliver, guarded, live
from po_tui.screens.newrun import NewRunScreen
from po_tui.widgets.text import STATE_STYLE, inert

DEMO_ROOT = Path("artifacts/demo")
DEFAULT_ROOTS = ("runs", str(DEMO_ROOT))
REFRESH_S = 2.0
# What tells runs apart first, so at 80 columns state, progress, ETA and verdict are all in view
# (created and path follow, reached by scrolling the table sideways).
COLUMNS = ("run", "state", "stage", "progress", "ETA", "gate", "created", "path")


def roots_for(runs_dir: Path) -> list[Path]:
    """The runs directory, then the demo's runs (`po-tui demo` writes them there) unless it is the same."""
    roots = [runs_dir]
    if Path(runs_dir).resolve() != DEMO_ROOT.resolve():
        roots.append(DEMO_ROOT)
    return roots


def progress_cell(row: dict[str, Any]) -> str:
    """Jobs done of planned, and the running stage's own percent: `4/11 · 42%`."""
    text = f"{row['jobs_done']}/{row['jobs']}" if row.get("jobs") else "–"
    if row.get("stage_percent") is not None:
        text += f" · {row['stage_percent']:.0f}%"
    return text


def eta_cell(row: dict[str, Any]) -> str:
    return duration(row["eta_s"]) if row.get("eta_s") is not None else "–"


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
        self.live = LiveRuns()  # read only by the one "runs" worker at a time (exclusive)
        # Held by reference: the refresh lands while a modal is up or the app is closing.
        self.head = Static("", id="runs-head")
        self.table: DataTable = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.head
        yield self.table
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        table = self.table
        table.add_columns(*COLUMNS)
        table.focus()
        self.action_reload()
        self.set_interval(REFRESH_S, self.action_reload)

    @work(thread=True, exclusive=True, group="runs")
    @guarded
    def action_reload(self) -> None:
        rows, problems = self.live.gather(self.roots)
        deliver(self, self._show, rows, problems)

    @guarded
    def _show(self, rows: list[dict[str, Any]], problems: list[str]) -> None:
        if not live(self.table):
            return  # the app is closing
        table = self.table
        keep = self.selected()
        if [r["path"] for r in rows] != [r["path"] for r in self.rows] or rows != self.rows:
            self.rows = rows
            table.clear()
            for r in rows:
                state = str(r["state"])
                gate = str(r["gate"]).upper() if r["gate"] else "–"
                table.add_row(inert(r["run_id"] or Path(r["path"]).name, limit=28),
                              Text(state, style=STATE_STYLE.get(state, "")), inert(r["stage"] or "–", limit=16),
                              Text(progress_cell(r)), Text(eta_cell(r)), Text(gate, style="bold"),
                              inert(r["created_at"] or "–", limit=20), inert(r["path"], limit=80), key=r["path"])
            for i, r in enumerate(rows):
                if r["path"] == keep:
                    table.move_cursor(row=i)
        where = ", ".join(str(r) for r in self.roots)
        head = Text(f"{len(rows)} run(s) in {one_line(where, 80)}  ·  Enter opens one, n starts a new run from a config")
        for p in problems:
            head.append("\n" + one_line(p, 200), style="yellow")
        self.head.update(head)

    def selected(self) -> str | None:
        table = self.table
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]["path"]

    @guarded
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    @guarded
    def action_open(self) -> None:
        path = self.selected()
        if path is None:
            self.notify("no run selected: n starts one", severity="warning", markup=False)
            return
        self.exit(("open", Path(path)))

    @guarded
    def action_new_run(self) -> None:
        def chosen(config: str | None) -> None:
            with barrier(self, "start a run"):
                if config:
                    self._start(config)

        self.push_screen(NewRunScreen(self.config), chosen)

    @work(thread=True, exclusive=True, group="start")
    @guarded
    def _start(self, config: str) -> None:
        """Validate the config and start its engine detached (engine/pipeline/launch.py)."""
        from engine.pipeline.launch import start_run

        try:
            run_dir = start_run(config, runs_dir=self.runs_dir)
        except InputError as exc:
            deliver(self, self.notify, f"cannot start: {exc}", severity="error", markup=False, timeout=15)
            return
        except Exception as exc:
            deliver(self, self.notify, f"start failed: {type(exc).__name__}: {exc}", severity="error", markup=False)
            return
        deliver(self, self.exit, ("started", run_dir))
