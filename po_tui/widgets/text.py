"""Inert text and the small number formats every panel shares.

Anything read from a run directory (messages, model output, log lines, job names) goes through
`inert()` so Rich markup, ANSI escapes and control characters show literally and change nothing.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text

from engine.core.inert import clean, one_line


def inert(value: object, style: str = "", *, limit: int | None = None) -> Text:
    """A rich Text that never parses markup, without escape sequences or control characters."""
    s = one_line(value, limit) if limit is not None else clean(value)
    return Text(s, style=style)


def num(value: Any, fmt: str = "{:,.4g}", none: str = "–") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return none if value is None else one_line(value, 12)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return fmt.format(value)


def pct(value: Any) -> str:
    return num(value * 100, "{:.1f} %") if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def bar(count: int, biggest: int, width: int) -> str:
    """A horizontal bar of block characters, `count` scaled so `biggest` fills `width`."""
    if biggest <= 0 or count <= 0:
        return ""
    cells = count * width / biggest
    full = int(cells)
    part = " ▏▎▍▌▋▊▉"[int((cells - full) * 8)]
    return ("█" * full + (part if part != " " else ""))[: max(width, 1)]


STATE_STYLE = {
    "succeeded": "bold",
    "failed": "bold reverse",
    "cancelled": "italic",
    "running": "bold underline",
    "stale": "italic dim",
    "pending": "dim",
    "skipped": "dim",
}
