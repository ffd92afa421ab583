"""Numbers read from files and events: which ones are real.

Event payloads, results files and training logs are JSON written by other processes (and by
older versions): a value may be missing, a string, a bool (which Python counts as an int), NaN or
infinite. Every view and reader asks `finite()` before doing arithmetic or drawing with one.
"""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> int | float | None:
    """`value` when it is a finite int or float (not a bool), as it is (an int stays an int); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def finite_float(value: Any) -> float | None:
    """`finite(value)` as a float: for fields that are floats whatever the file wrote (1 -> 1.0)."""
    number = finite(value)
    return None if number is None else float(number)


def percent(fraction: Any) -> str:
    """A rate as the command line prints it: 0.873 -> "87.3%"; "-" when unknown."""
    number = finite(fraction)
    return "-" if number is None else f"{100 * number:.1f}%"
