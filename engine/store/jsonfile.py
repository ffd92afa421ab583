"""Whole-file JSON documents (a run's manifest.json, a teacher's teacher_run.json), read strictly.

Such a file is written atomically, so a reader never sees half of one: whatever fails to parse was
damaged by something else (a disk fault, a hand edit, another program) and is bad input, reported
as one located line by the one input reader (engine/store/inputfile.py). A missing file is not
damage: it stays a FileNotFoundError, and the caller decides what absence means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.store.inputfile import MIB, read_json

# A run-state document is a few KiB; anything near this is not one (and must not fill memory).
MAX_DOCUMENT_BYTES = 16 * MIB


def read_json_document(path: str | Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """The parsed document at `path`; FileNotFoundError when absent; InputError naming the file
    (and line) for anything else. Non-strict numbers: older runs may hold an Infinity."""
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        raise FileNotFoundError(str(p))
    return read_json(p, what="a JSON document", max_bytes=max_bytes, strict=False)
