"""The GPU strip: one line per device (utilisation sparkline, memory, temperature, power).

Docked at the bottom of the Pipeline tab and hidden until the run's logs hold a `gpu` sample
(a run on a machine without GPUs shows nothing). The lines are engine.views.gpu's, so the
cockpit and `po-tui status` read alike; a sample older than three intervals reads as stale.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from engine.runlog.gpu import latest_gpu
from engine.views.gpu import gpu_lines
from po_tui.model import CockpitModel


class GpuStrip(Static):
    """Folded from `gpu` events (JobState.extra['gpu']); redrawn with the other panels."""

    DEFAULT_CSS = """
    GpuStrip {
        dock: bottom;
        height: auto;
        max-height: 8;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.display = False
        # Whether live numbers are on screen: the app keeps redrawing so they turn stale in time.
        self.live = False

    def show(self, model: CockpitModel, now: float) -> None:
        gpu = latest_gpu(model.run, now)
        lines = gpu_lines(gpu)
        self.live = bool(gpu and not gpu["stale"])
        self.display = bool(lines)
        if lines:
            self.update(Text("\n").join(lines))
