"""Training panel: loss and eval loss against step (one chart with axes), LR, epoch, tokens/s, ETA, GPU."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from engine.core.timefmt import duration
from po_tui.model import CockpitModel
from po_tui.widgets.chart import LineChart, Series
from po_tui.widgets.text import num

# Probes shown on the Training tab: the first one (the untrained start) and the latest few.
PROBES_SHOWN = 6


def probe_label(probes) -> Text:
    """The held-out probes (train.probe_every): valid answers and mean, step by step."""
    shown = list(probes)
    if len(shown) > PROBES_SHOWN:
        shown = shown[:1] + shown[-(PROBES_SHOWN - 1):]
    cells = [f"step {step}: {valid}/{n} valid, mean {mean:.3f}" for step, valid, n, mean in shown]
    return Text("held-out probes   " + "  ->  ".join(cells))


def _series_label(name: str, points, glyph: str) -> Text:
    """The legend line of one series: its glyph on the chart, then its last, lowest and first values."""
    if not points:
        return Text(f"{name}: no points yet")
    values = [v for _, v in points]
    return Text(glyph + " ", style="bold").append(f"{name}: last {values[-1]:.4g} at step {points[-1][0]}   min {min(values):.4g}   "
                f"first {values[0]:.4g}   ({len(values)} points)")


class TrainingPanel(VerticalScroll):
    """Folded from train_step / train_eval (JobState.extra['train']) and the loss series."""

    def compose(self) -> ComposeResult:
        yield Static("No training job in this run yet.", id="train-stats")
        probe = Static("", id="probe-label")  # a Static wraps on a narrow terminal
        probe.display = False  # shown once a train_probe event arrived (probes are optional)
        yield probe
        yield Label("", id="loss-label")
        yield Label("", id="eval-loss-label")
        yield LineChart(id="loss-chart")  # both losses on one step axis and one value axis

    def on_resize(self, event: events.Resize) -> None:
        """The chart takes the height the stats leave (6 rows at least): a taller terminal, a taller curve;
        its width follows the panel's, and it is drawn again at the new size."""
        self.query_one("#loss-chart", LineChart).styles.height = max(6, event.size.height - 10)

    def show(self, model: CockpitModel, now: float) -> None:
        job = model.train_job()
        if job is None:
            return
        train = job.extra.get("train", {})
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column()
        steps = f"{num(train.get('step'))} / {num(train.get('max_steps') or job.progress_total)}"
        grid.add_row("step", Text(f"{steps}   epoch {num(train.get('epoch'), '{:.2f}')}   state {job.state}"))
        grid.add_row("loss", Text(f"{num(train.get('loss'))}   eval {num(train.get('eval_loss'))}"))
        grid.add_row("learning rate", Text(num(train.get("learning_rate"), "{:.3g}")))
        grid.add_row("tokens/s", Text(f"{num(train.get('tokens_per_s'), '{:,.0f}')}   seen {num(train.get('tokens_seen'), '{:,}')}"))
        eta = job.eta_at(now) if job.state == "running" else (0.0 if job.state == "succeeded" else None)
        grid.add_row("ETA", Text(f"{duration(eta)}   elapsed {duration(job.elapsed_at(now))}"))
        if train.get("gpu_mem_allocated_gb") is not None or train.get("gpu_mem_peak_gb") is not None:
            allocated, peak = num(train.get('gpu_mem_allocated_gb'), '{:.2f}'), num(train.get('gpu_mem_peak_gb'), '{:.2f}')
            grid.add_row("GPU memory", Text(f"{allocated} GB allocated   peak {peak} GB"))
        self.query_one("#train-stats", Static).update(grid)
        probe = self.query_one("#probe-label", Static)
        probe.display = bool(model.probes)
        if model.probes:
            probe.update(probe_label(model.probes))
        train_loss = Series("train loss", tuple(model.loss), marker="●")
        eval_loss = Series("eval loss", tuple(model.eval_loss), marker="◆", style="bold")
        self.query_one("#loss-label", Label).update(_series_label("train loss", model.loss, train_loss.glyph()))
        self.query_one("#eval-loss-label", Label).update(_series_label("eval loss", model.eval_loss, eval_loss.glyph()))
        self.query_one("#loss-chart", LineChart).set_series(train_loss, eval_loss)
