"""Whole-file JSON documents (a run's manifest.json, a teacher's teacher_run.json), read strictly.

Such a file is written atomically, so a reader never sees half of one: whatever fails to parse was
damaged by something else (a disk fault, a hand edit, another program) and is bad input, reported
as one located line instead of a traceback: not UTF-8 (which byte, where), malformed JSON (line
and column), nested too deep for the parser, too big, unreadable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import InputError

# A run-state document is a few KiB; anything near this is not one (and must not fill memory).
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def undecodable(raw: bytes, exc: UnicodeDecodeError) -> tuple[int, str]:
    """(1-based line, message) for bytes that are not UTF-8: which byte, at which offset."""
    line = raw.count(b"\n", 0, exc.start) + 1
    return line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"


def read_json_document(path: str | Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """The parsed document at `path`; FileNotFoundError when absent (the caller decides what a
    missing file means); InputError naming the file (and line) for anything else."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except IsADirectoryError as exc:
        raise InputError("is a directory, expected a JSON file", path=p) from exc
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=p) from exc
    if len(raw) > max_bytes:
        raise InputError(f"too big for a JSON document (over {max_bytes} bytes)", path=p)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, message = undecodable(raw, exc)
        raise InputError(message, path=p, line=line) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", path=p, line=exc.lineno) from exc
    except RecursionError as exc:
        raise InputError("malformed JSON: nested too deeply", path=p) from exc
