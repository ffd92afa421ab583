"""Reading a user's input file: every way it can fail becomes one located `InputError`.

Any file a command reads (data JSONL, a JSON document, a YAML config, a template) is hostile
until proven otherwise: it may be missing, unreadable, a directory, a device or FIFO that never
ends (or blocks on open), binary garbage, invalid UTF-8, JSON nested deeper than Python's stack,
or a multi-gigabyte "config". Each reader here refuses those with one line naming the file (and
the line and byte where that is known) instead of a traceback, a hang or memory exhaustion.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import InputError

MIB = 1024 * 1024

_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def open_error(exc: OSError, path: str | Path, *, what: str = "a file", field: str | None = None) -> InputError:
    """The one-line reason an input file could not be opened or read."""
    if isinstance(exc, FileNotFoundError):
        return InputError("no such file", path=path, field=field)
    if isinstance(exc, IsADirectoryError):
        return InputError(f"is a directory, expected {what}", path=path, field=field)
    if isinstance(exc, NotADirectoryError):
        return InputError("no such file (a parent is not a directory)", path=path, field=field)
    if isinstance(exc, PermissionError):
        return InputError("permission denied: cannot read it", path=path, field=field)
    return InputError(f"cannot read: {exc.strerror or exc}", path=path, field=field)


def open_input(path: str | Path, *, what: str = "a file", field: str | None = None) -> BinaryIO:
    """`path` opened for binary reading, or an InputError.

    Only regular files are read: a directory, device, FIFO or socket is refused before any byte
    is read (O_NONBLOCK keeps the open itself from waiting for a FIFO's writer), so /dev/zero
    cannot exhaust memory and a FIFO cannot hang the command.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise open_error(exc, p, what=what, field=field) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"is a directory, expected {what}", path=p, field=field)
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "a special file")
            raise InputError(f"is {kind}, not a regular file", path=p, field=field)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path, *, what: str = "a file", max_bytes: int | None = None, field: str | None = None) -> bytes:
    """The whole file; with `max_bytes`, a larger file is refused after reading at most one byte more."""
    p = Path(path)
    with open_input(p, what=what, field=field) as fh:
        try:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        except OSError as exc:
            raise open_error(exc, p, what=what, field=field) from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(f"larger than {_size(max_bytes)}, the limit for {what}: is it the right file?", path=p, field=field)
    return data


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB and n % MIB == 0 else f"{n} bytes"


def decode_utf8(data: bytes, path: str | Path, *, line: int | None = None, offset: int = 0) -> str:
    """`data` as text, or `FILE:LINE: not UTF-8 text (byte 0x.. at offset N)`.

    `offset` is where `data` starts in the file and `line` its line number, so the error points
    into the file; without `line` the line is counted from the start of `data`.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise undecodable(exc, data, path, line=line, offset=offset) from exc


def undecodable(exc: UnicodeDecodeError, data: bytes, path: str | Path, *, line: int | None = None, offset: int = 0) -> InputError:
    """The located InputError for a decode failure of `data` (which starts at file `offset`)."""
    where = line if line is not None else data.count(b"\n", 0, exc.start) + 1
    return InputError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {offset + exc.start})", path=path, line=where)


def read_text(path: str | Path, *, what: str = "a text file", max_bytes: int | None = None, field: str | None = None) -> str:
    """A whole text file: regular, readable, at most `max_bytes`, UTF-8 (a BOM is dropped)."""
    text = decode_utf8(read_bytes(path, what=what, max_bytes=max_bytes, field=field), path)
    return text.removeprefix("\ufeff")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


# Strict JSON: NaN / Infinity are Python's extensions, and a number like 1e999 overflows to inf;
# either would travel into scores and statistics and fail far from the file that held it.
_STRICT = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)
_LENIENT = json.JSONDecoder()
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def loads_json(text: str, path: str | Path, *, line: int | None = None, strict: bool = True) -> Any:
    """`json.loads`, with every way it fails on hostile input as a located InputError.

    Besides malformed JSON: nesting deeper than the interpreter's stack (RecursionError),
    integers longer than Python converts and, when `strict` (the default), NaN, Infinity and
    numbers that overflow. A `\\ud800` escape that is not half of a pair parses into a string no
    writer can encode as UTF-8: it is refused here rather than after work was done.
    """
    try:
        value = (_STRICT if strict else _LENIENT).decode(text)
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        raise InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", path=path, line=where) from exc
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply", path=path, line=line) from None
    except ValueError as exc:  # a constant or number refused above, an integer too long to convert
        raise InputError(f"malformed JSON: {exc}", path=path, line=line) from exc
    if _SURROGATE_ESCAPE.search(text):
        _check_encodable(value, text, path, line)
    return value


def _check_encodable(value: Any, text: str, path: str | Path, line: int | None) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply", path=path, line=line) from None
    except UnicodeEncodeError as exc:
        escape = next(
            (m.group(0) for m in _SURROGATE_ESCAPE.finditer(text) if int(m.group(0)[2:], 16) == ord(exc.object[exc.start])),
            f"\\u{ord(exc.object[exc.start]):04x}",
        )
        raise InputError(f"not UTF-8 text: {escape} is half of a surrogate pair, alone in a string", path=path, line=line) from None


def read_json(
    path: str | Path, *, what: str = "a JSON file", max_bytes: int | None = None, field: str | None = None, strict: bool = True
) -> Any:
    """A whole JSON document, read and parsed with located errors (see loads_json for `strict`)."""
    return loads_json(read_text(path, what=what, max_bytes=max_bytes, field=field), path, strict=strict)
