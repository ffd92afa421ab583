"""Append-only JSONL that survives crashes.

Writers append one record per line and flush + fsync each one, so nothing paid for is lost.
Readers tolerate the one defect a crash can leave (a torn last line without its newline): it is
reported and ignored. A corrupt line anywhere else is an error naming file:line, because it means
the file was damaged by something other than a crash mid-append.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from engine.store.inputfile import decode_utf8, loads_json, open_input

Warn = Callable[[str], None]
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class TornLine:
    """The incomplete last line of a file, as found by a reader."""

    path: str
    line: int
    size: int

    def describe(self) -> str:
        return (
            f"{self.path}:{self.line}: torn last line ({self.size} bytes without a newline, "
            "left by an interrupted write): ignored"
        )


def _decode(raw: bytes, path: Path, lineno: int, offset: int) -> Any:
    return loads_json(decode_utf8(raw, path, line=lineno, offset=offset), path, line=lineno)


def _is_torn(raw: bytes) -> bool:
    """Whether a last line without its newline is what an interrupted append leaves.

    Writers append UTF-8 JSON, so a tear is a prefix of such a line: it may end inside a
    multi-byte character, but bytes that are not UTF-8 anywhere else are damage, not a tear.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason != "unexpected end of data":
            return False
        text = raw[: exc.start].decode("utf-8", errors="strict")
    try:
        json.loads(text)
    except RecursionError:
        return False
    except ValueError:  # JSONDecodeError, or an integer too long to convert
        return True
    return False


def iter_jsonl(
    path: str | Path,
    *,
    on_torn: Callable[[TornLine], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, object) for every non-blank line.

    A last line with no trailing newline that does not parse is a torn write: `on_torn` is told
    and the line is skipped. A last line without newline that parses is accepted (other tools
    often omit the final newline).
    """
    path = Path(path)
    fh = open_input(path, what="a JSONL file")
    with fh:
        lineno = 0
        offset = 0
        for raw in fh:
            lineno += 1
            start, offset = offset, offset + len(raw)
            complete = raw.endswith(b"\n")
            body = raw.strip()
            skip = len(raw) - len(raw.lstrip())  # where the body starts in the line
            if lineno == 1 and body.startswith(_BOM):  # a byte-order mark (Windows editors)
                rest = body[len(_BOM):]
                skip += len(body) - len(rest.lstrip())
                body = rest.strip()
            if not body:
                continue
            if not complete and _is_torn(body):
                if on_torn is not None:
                    on_torn(TornLine(str(path), lineno, len(raw)))
                return
            yield lineno, _decode(body, path, lineno, start + skip)


def repair_torn_tail(path: str | Path) -> TornLine | None:
    """Cut a torn last line off `path` before appending, keeping the bytes in a sidecar file.

    Appending after a torn fragment would glue the next record onto it and corrupt both, so the
    fragment is moved to `<name>.torn-<epoch>` (for forensics) and the file truncated to its last
    complete line.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return None
        # Find the start of the last line.
        block = 65536
        pos = size
        start = 0
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                start = pos + idx + 1
                break
        fh.seek(start)
        fragment = fh.read()
        try:
            json.loads(fragment.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            sidecar = path.with_name(f"{path.name}.torn-{int(time.time() * 1000)}")
            with open(sidecar, "wb") as side:
                side.write(fragment)
                side.flush()
                os.fsync(side.fileno())
            fh.truncate(start)
            fh.flush()
            os.fsync(fh.fileno())
            with open(path, "rb") as count:
                lineno = sum(1 for _ in count) + 1
            return TornLine(str(path), lineno, len(fragment))
        # A complete record that only lacks its newline: finish the line.
        fh.seek(0, os.SEEK_END)
        fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())
        return None


class JsonlAppender:
    """Append records durably: one `write` = one line, flushed and fsynced before it returns."""

    def __init__(self, path: str | Path, *, fsync: bool = True, warn: Warn | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = repair_torn_tail(self.path)
        if torn is not None and warn is not None:
            warn(torn.describe().replace(": ignored", ": moved aside before appending"))
        self._fsync = fsync
        self._fh = open(self.path, "ab")

    def write(self, record: Any) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        self._fh.write(line.encode("utf-8"))
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
