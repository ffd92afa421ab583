"""Whole-file JSON documents (a run's manifest.json, a teacher's teacher_run.json), read strictly.

Such a file is written atomically, so a reader never sees half of one: whatever fails to parse was
damaged by something else (a disk fault, a hand edit, another program) and is bad input, reported
as one located line by the one input reader (engine/store/inputfile.py). A missing file is not
damage: it stays a FileNotFoundError, and the caller decides what absence means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.configfile import validate
from engine.errors import InputError
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


def json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words (for "a JSON list, expected an object")."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def read_record(path: str | Path, model: type[BaseModel], *, damaged: str) -> dict[str, Any] | None:
    """A state file the engine wrote itself (manifest.json, teacher_run.json): the JSON object,
    checked against `model` but returned as read (unknown fields kept); None when absent.

    Anything else is damage, never overwritten: an InputError naming the file (line, key) whose
    message starts with `damaged` (e.g. "damaged run manifest: a JSON list, expected an object").
    """
    try:
        doc = read_json_document(path)
    except FileNotFoundError:
        return None
    except InputError as exc:
        exc.message = f"{damaged}: {exc.message}"
        raise
    if not isinstance(doc, dict):
        raise InputError(f"{damaged}: a JSON {json_kind(doc)}, expected an object", path=path)
    try:
        validate(model, doc, path=path)
    except InputError as exc:
        exc.message = f"{damaged}: {exc.message}"
        raise
    return doc
