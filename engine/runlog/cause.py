"""The real cause of a failed job, read from its error event's `stderr_tail`.

A job that exits before finishing its event log gets an error written by the engine
("train failed (exit code 2) without finishing its event log"), with the job's last stderr
attached. The reason a user can act on (`po-tui train: error: unknown model 'x': not a local
directory`, or a traceback's last line) sits in that tail; the cockpit and `po-tui status` show
it first, so nobody has to dig through the Logs tab to learn why a stage failed.
"""

from __future__ import annotations

import re
from typing import Any

from engine.core.inert import clean, one_line

# `po-tui train: error: ...` (engine/cli.py), `error: ...`, `ERROR ...`; and a traceback's last
# line, `ValueError: ...` or `torch.OutOfMemoryError: ...`.
_ERROR_LINE = re.compile(r"(?i)^(?:[\w.\- ]+:\s*)?error\b[:\s]\s*(?P<said>.+)$")
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b(?::\s*.*)?$")


def cause_of(stderr_tail: object, limit: int = 300) -> str | None:
    """The line of a stderr tail that says why the process failed; None when none does.

    Searched from the end: the last error line (its text after `error:`), else a traceback's
    exception line, else None (the last line of progress output is not a cause)."""
    if not isinstance(stderr_tail, str) or not stderr_tail.strip():
        return None
    lines = [line.strip() for line in clean(stderr_tail).split("\n") if line.strip()]
    for line in reversed(lines):
        found = _ERROR_LINE.match(line)
        if found:
            return one_line(found.group("said"), limit)
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return one_line(line, limit)
    return None


def error_text(error: dict[str, Any], limit: int = 300) -> str:
    """What to show for one error event: its cause first when the stderr tail names one, then the
    engine's message; the message alone otherwise. One line, inert."""
    message = one_line(error.get("message", ""), limit)
    cause = error.get("cause") if isinstance(error.get("cause"), str) else cause_of(error.get("stderr_tail"), limit)
    if not cause or cause in message:
        return message
    return one_line(f"{cause} ({message})", limit)
