"""Terminal charts with axes: a line chart of (step, value) series and a labelled histogram.

Textual's Sparkline has no axes and draws one logged point as a block filling the whole chart, so
a loss curve could not be read (what value? which step?). `line_chart` is a pure function from
series and a size to rich Text, so it is tested without an app and re-drawn at any terminal size:
a value axis (top, middle and bottom ticks), step ticks (first, middle, last), a braille line for
a series with many points and, for a series of 1-3 points, markers with their values written
beside them. Every series shares one step axis and one value axis, so train and eval loss compare
at a glance. No colours: series differ by glyph (the cockpit's colours come from its theme only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from rich.text import Text
from textual.widget import Widget

from po_tui.widgets.text import bar

MARKERS_UP_TO = 3  # a series with at most this many points is drawn as labelled markers, not a line
LINE_GLYPH = "⠒⠒"  # the legend's sample of a braille line
# Braille dot bits by (row in the cell 0-3, column in the cell 0-1).
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


@dataclass(frozen=True)
class Series:
    """One curve: (step, value) points, drawn as a braille line or, when short, as `marker`s."""

    name: str
    points: Sequence[tuple[float, float]]
    marker: str = "●"
    style: str = ""

    def finite(self) -> list[tuple[float, float]]:
        return sorted((float(s), float(v)) for s, v in self.points if math.isfinite(s) and math.isfinite(v))

    @property
    def as_markers(self) -> bool:
        return len(self.finite()) <= MARKERS_UP_TO

    def glyph(self) -> str:
        """What the series looks like on the chart, for a legend."""
        return self.marker if self.as_markers else LINE_GLYPH


def compact(value: float, digits: int = 3) -> str:
    """A short axis label: 3 significant digits, exponent only for very large or small values."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.{max(digits - 2, 0)}e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{value:.{digits}g}"


def _labels(values: list[float]) -> list[str]:
    """Tick labels with just enough digits to tell them apart."""
    for digits in range(3, 8):
        labels = [compact(v, digits) for v in values]
        if len(set(labels)) == len(set(values)):
            return labels
    return labels


def _step_label(step: float) -> str:
    return str(int(round(step))) if abs(step - round(step)) < 1e-9 else compact(step)


class _Canvas:
    """Cells of the plot area: a character and a style each; braille dots OR-ed per cell."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.chars = [[" "] * width for _ in range(height)]
        self.styles = [[""] * width for _ in range(height)]
        self.bits = [[0] * width for _ in range(height)]

    def dot(self, x: int, y: int, style: str) -> None:
        col, row = x // 2, y // 4
        if 0 <= col < self.width and 0 <= row < self.height:
            self.bits[row][col] |= _DOTS[y % 4][x % 2]
            self.chars[row][col] = chr(0x2800 + self.bits[row][col])
            self.styles[row][col] = style

    def put(self, col: int, row: int, text: str, style: str, *, only_blank: bool = False) -> bool:
        if row < 0 or row >= self.height or col < 0 or col + len(text) > self.width:
            return False
        if only_blank and any(self.chars[row][c] != " " for c in range(max(col - 1, 0), min(col + len(text) + 1, self.width))):
            return False
        for i, ch in enumerate(text):
            self.chars[row][col + i] = ch
            self.styles[row][col + i] = style
        return True


def line_chart(series: Sequence[Series], width: int, height: int, *, x_unit: str = "step") -> Text:
    """`series` on shared axes in `width` x `height` cells (two of the rows are the step axis)."""
    drawn = [(s, s.finite()) for s in series]
    drawn = [(s, pts) for s, pts in drawn if pts]
    if not drawn:
        return Text("no points yet", style="dim")
    values = [v for _, pts in drawn for _, v in pts]
    steps = [x for _, pts in drawn for x, _ in pts]
    low, high = min(values), max(values)
    first, last = min(steps), max(steps)
    plot_h = max(1, height - 2)
    middle = (plot_h - 1) // 2
    tick_rows = sorted({0, middle, plot_h - 1})
    if high - low < 1e-12 * max(1.0, abs(high)):  # one value: on the middle tick, honest ticks around it
        pad = abs(high) * 0.1 or 0.5
        high = low + pad
        low = high - pad * (plot_h - 1) / middle if middle else low - pad

    def row_value(row: int) -> float:
        return high - row / (plot_h - 1) * (high - low) if plot_h > 1 else (high + low) / 2

    labels = dict(zip(tick_rows, _labels([row_value(r) for r in tick_rows]), strict=True))
    label_w = max(max(len(v) for v in labels.values()), len(x_unit))
    plot_w = max(4, width - label_w - 2)

    def x_frac(step: float) -> float:
        return (step - first) / (last - first) if last > first else 0.5

    def y_frac(value: float) -> float:
        return (high - value) / (high - low)

    canvas = _Canvas(plot_w, plot_h)
    for s, pts in drawn:
        if len(pts) > MARKERS_UP_TO:
            _braille(canvas, pts, x_frac, y_frac, s.style)
    placed: list[tuple[int, int, str, str]] = []
    for s, pts in drawn:
        if len(pts) <= MARKERS_UP_TO:
            for step, value in pts:
                col, row = round(x_frac(step) * (plot_w - 1)), round(y_frac(value) * (plot_h - 1))
                canvas.put(col, row, s.marker, s.style)
                placed.append((col, row, compact(value, 4), s.style))
    for col, row, label, style in placed:  # values beside their markers, where there is room
        canvas.put(col + 2, row, label, style, only_blank=True) or canvas.put(col - 1 - len(label), row, label, style, only_blank=True)

    out = Text(no_wrap=True, overflow="crop")
    for row in range(plot_h):
        out.append(labels.get(row, "").rjust(label_w) + " " + ("┤" if row in labels else "│"), style="dim")
        chars, styles = canvas.chars[row], canvas.styles[row]
        start = 0
        for col in range(1, plot_w + 1):  # one append per run of cells in the same style
            if col == plot_w or styles[col] != styles[start]:
                out.append("".join(chars[start:col]), style=styles[start] or None)
                start = col
        out.append("\n")
    tick_steps = sorted({first, last, *([round((first + last) / 2)] if last - first >= 2 else [])})
    cols = {round(x_frac(step) * (plot_w - 1)): _step_label(step) for step in tick_steps}
    axis = "".join("┬" if c in cols else "─" for c in range(plot_w))
    out.append(" " * label_w + " └" + axis + "\n", style="dim")
    line = [" "] * plot_w
    end = -1
    for col, label in sorted(cols.items()):
        start = min(max(col - len(label) // 2, 0), plot_w - len(label))
        if start <= end or start < 0:
            continue  # would touch the previous label
        line[start:start + len(label)] = label
        end = start + len(label)
    out.append(x_unit.rjust(label_w) + "  " + "".join(line).rstrip(), style="dim")
    return out


def _braille(canvas: _Canvas, pts: list[tuple[float, float]], x_frac, y_frac, style: str) -> None:
    """A line through the points at 2x4 dots per cell: consecutive points joined, so a jump shows."""
    dots_w, dots_h = canvas.width * 2, canvas.height * 4
    prev: tuple[int, int] | None = None
    for step, value in pts:
        x, y = round(x_frac(step) * (dots_w - 1)), round(y_frac(value) * (dots_h - 1))
        if prev is None or prev[0] == x:
            y0 = y if prev is None else prev[1]
            for yy in range(min(y0, y), max(y0, y) + 1):
                canvas.dot(x, yy, style)
        else:
            px, py = prev
            last_y = py
            for xx in range(px + 1, x + 1):
                yy = round(py + (y - py) * (xx - px) / (x - px))
                for fill in range(min(last_y, yy), max(last_y, yy) + 1):  # joined to the previous column
                    canvas.dot(xx, fill, style)
                last_y = yy
        prev = (x, y)


class LineChart(Widget):
    """A `line_chart` that fills the widget and is drawn again at its new size on every resize."""

    DEFAULT_CSS = """
    LineChart { height: 8; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002  (Textual's own keyword)
        super().__init__(id=id)
        self.series: tuple[Series, ...] = ()

    def set_series(self, *series: Series) -> None:
        if series != self.series:
            self.series = series
            self.refresh()

    def render(self) -> Text:
        return line_chart(self.series, self.size.width, self.size.height)


def histogram(counts: Sequence[int], labels: Sequence[str], width: int = 30) -> Text:
    """One row per bin: `label │████▌ count`, bars scaled so the largest bin fills `width`."""
    biggest = max(counts, default=0)
    label_w = max((len(label) for label in labels), default=0)
    count_w = max((len(str(c)) for c in counts), default=1)
    out = Text(no_wrap=True, overflow="crop")
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        out.append(label.rjust(label_w) + " │", style="dim")
        out.append(bar(count, biggest, width).ljust(width))
        out.append(" " + str(count).rjust(count_w) + ("\n" if i < len(counts) - 1 else ""))
    return out


def score_bins(bins: int) -> list[str]:
    """`0.0-0.1` ... `0.9-1.0`: the labels of `bins` equal score bins over [0, 1] (the last includes 1.0)."""
    return [f"{i / bins:.1f}-{(i + 1) / bins:.1f}" for i in range(bins)]
