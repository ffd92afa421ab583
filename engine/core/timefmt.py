"""How times read: a UTC timestamp in a file, a time span on a screen or in a report.

One format each, so the run manifest, the teacher's and the evaluation's records, the headless
log lines and the status document stamp time alike, and the status screen, the cockpit and the
report agree on what "4m05s" and "unknown" look like.
"""

from __future__ import annotations

import time
from typing import Any

from engine.core.numbers import finite

UNKNOWN = "-"  # what duration() shows for a missing or unusable value


def utc_stamp(ts: float | None = None) -> str:
    """`ts` (seconds since the epoch; now when None) as 2025-01-31T09:05:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def duration(seconds: Any) -> str:
    """12.3s under a minute, 4m05s under an hour, 1h02m beyond; "-" when unknown.

    Each form rounds to its own last digit (59.97 s is 1m00s, not "60.0s"; 1h02m59s is 1h03m), and
    a negative span (clocks of two processes) shows as 0.0s.
    """
    s = finite(seconds)
    if s is None:
        return UNKNOWN
    s = max(0.0, float(s))
    if round(s, 1) < 60:
        return f"{s:.1f}s"
    if round(s) < 3600:
        m, sec = divmod(round(s), 60)
        return f"{m}m{sec:02d}s"
    h, m = divmod(round(s / 60), 60)
    return f"{h}h{m:02d}m"
