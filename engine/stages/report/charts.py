"""Charts for the report: PNG through matplotlib when it is installed, unicode text otherwise.

matplotlib is an optional extra (`pip install po-tui[plots]`): the report must render on a bare
GPU box, so the text charts are complete on their own. PNGs are drawn on an Agg canvas (no
display, no pyplot global state) and written atomically.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

from engine.core.inert import one_line
from engine.store.atomic import atomic_write_bytes

BINS = 10  # score bins of width 0.1 over [0, 1]; the last one includes 1.0
_SPARK = "▁▂▃▄▅▆▇█"


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def bin_counts(scores: list[float], bins: int = BINS) -> list[int]:
    counts = [0] * bins
    for s in scores:
        counts[min(max(int(s * bins), 0), bins - 1)] += 1
    return counts


def text_histogram(series: dict[str, list[float]], *, width: int = 30, bins: int = BINS) -> str:
    """One block per series: a bar of `█` per score bin, scaled to the largest bin of all series."""
    counted = {name: bin_counts(scores, bins) for name, scores in series.items()}
    top = max((max(c) for c in counted.values() if c), default=0) or 1
    lines: list[str] = []
    for name, counts in counted.items():
        lines.append(f"{name} ({sum(counts)} scores)")
        for i, n in enumerate(counts):
            lo, hi = i / bins, (i + 1) / bins
            bar = "█" * round(n / top * width) if n else ""
            lines.append(f"  {lo:.1f}-{hi:.1f} |{bar:<{width}} {n}")
    return "\n".join(lines)


def sparkline(values: list[float], width: int = 60) -> str:
    """Values (e.g. losses) as one line of block characters, averaged into at most `width` buckets."""
    if not values:
        return ""
    if len(values) > width:
        size = len(values) / width
        values = [
            sum(chunk) / len(chunk)
            for chunk in (values[int(i * size): max(int((i + 1) * size), int(i * size) + 1)] for i in range(width))
        ]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(_SPARK[min(int((v - lo) / span * (len(_SPARK) - 1) + 0.5), len(_SPARK) - 1)] for v in values)


def _label(text: str) -> str:
    """A legend label from untrusted text: one short line, `$` escaped so mathtext never parses it."""
    return one_line(text, 40).replace("$", r"\$")


def _figure(width: float = 7.0, height: float = 3.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def png_histograms(series: dict[str, list[float]], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    edges = [i / BINS for i in range(BINS + 1)]
    for name, scores in series.items():
        ax.hist(scores, bins=edges, alpha=0.55, label=_label(f"{name} (n={len(scores)})"))
    ax.set_xlim(0, 1)
    ax.set_xlabel("score")
    ax.set_ylabel("cases")
    ax.set_title("score distribution")
    ax.legend()
    return _save(fig, path)


def png_loss(losses: list[tuple[float, float]], evals: list[tuple[float, float]], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    if losses:
        ax.plot([s for s, _ in losses], [v for _, v in losses], label="training loss")
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.legend()
    return _save(fig, path)
