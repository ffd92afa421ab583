"""The evaluation's durable progress: `{out}/{tag}.cases.jsonl`, appended (fsync) as work finishes.

Line 1 is a header with the settings fingerprint; then one `attempt` row per answer the model
gave (stored before anything else looks at it) and one `case` row per finished case (its full
result). A rerun of the same command reads the file back: finished cases are not generated
again, and a case that was between attempts continues from its stored answers, so a kill loses
at most the batch (or the calls) in flight. A rerun with different settings is refused, naming
what changed, unless `--restart` moves the old file aside. One writer at a time (a file lock).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.store.jsonl import JsonlAppender, Warn, iter_jsonl
from engine.store.lock import lock_open_file

FORMAT = "po-tui-eval-cases/1"
HEADER, ATTEMPT, CASE = "header", "attempt", "case"


@dataclass
class Stored:
    """What an earlier run of this evaluation left."""

    header: dict[str, Any] | None = None
    attempts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    cases: dict[int, dict[str, Any]] = field(default_factory=dict)


def cases_path(out: str | Path, tag: str) -> Path:
    return Path(out) / f"{tag}.cases.jsonl"


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def changed_settings(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = list(dict.fromkeys([*previous, *current]))
    return [f"{k} {_describe(previous.get(k))} -> {_describe(current.get(k))}" for k in keys if previous.get(k) != current.get(k)]


class CaseStore:
    def __init__(self, out: str | Path, tag: str, *, warn: Warn | None = None) -> None:
        self.path = cases_path(out, tag)
        self.warn = warn
        self._appender: JsonlAppender | None = None
        self._lock: Any = None

    def load(self) -> Stored:
        """Everything a previous run stored (a torn last line is reported and ignored)."""
        stored = Stored()
        if not self.path.exists():
            return stored
        on_torn = (lambda t: self.warn(t.describe())) if self.warn else None
        for line, row in iter_jsonl(self.path, on_torn=on_torn):
            kind = row.get("type") if isinstance(row, dict) else None
            if kind == HEADER and stored.header is None:
                if row.get("format") != FORMAT:
                    raise InputError(f"not a po-tui eval cases file (format {row.get('format')!r})", path=self.path, line=line)
                stored.header = row
            elif kind == ATTEMPT and isinstance(row.get("index"), int):
                rows = stored.attempts.setdefault(row["index"], [])
                if row.get("attempt") == len(rows) + 1:
                    rows.append(row)
            elif kind == CASE and isinstance(row.get("index"), int) and isinstance(row.get("result"), dict):
                stored.cases.setdefault(row["index"], row["result"])
            else:
                raise InputError("not a po-tui eval cases row", path=self.path, line=line, field="type")
        if stored.header is None and (stored.attempts or stored.cases):
            raise InputError("no header line: not a po-tui eval cases file", path=self.path, line=1)
        return stored

    def check(self, stored: Stored, fingerprint: dict[str, Any], *, restart: bool) -> None:
        """Refuse to continue an evaluation that was made with other settings."""
        if restart or stored.header is None:
            return
        previous = stored.header.get("fingerprint") or {}
        changed = changed_settings(previous, fingerprint)
        if changed:
            # Only the batch size differs (GPU greedy, or sampling): the same command at the
            # batch size it was started with continues it.
            resume = ""
            if [k for k in previous.keys() | fingerprint.keys() if previous.get(k) != fingerprint.get(k)] == ["batch_size"] \
                    and isinstance(previous.get("batch_size"), int) and fingerprint.get("batch_size") is not None:
                resume = f"pass --batch-size {previous['batch_size']} to resume it, "
            raise InputError(
                "holds a partial evaluation made with other settings ("
                + "; ".join(changed[:4])
                + (f"; {len(changed) - 4} more" if len(changed) > 4 else "")
                + f"): {resume}pass --restart to start it over, or choose another --tag or --out",
                path=self.path,
            )

    def open(self, header: dict[str, Any] | None, *, restart: bool) -> Path | None:
        """Lock the file and start appending; a restart first moves the old file aside (returned)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        moved = None
        if restart and self.path.exists():
            moved = self.path.with_name(f"{self.path.name}.replaced-{int(time.time() * 1000)}")
            os.replace(self.path, moved)
        self._lock = open(self.path, "ab")
        try:
            lock_open_file(self._lock.fileno(), self.path, holder=lambda: "another po-tui eval",
                           advice="one evaluation writes a cases file at a time")
        except BaseException:
            self._lock.close()
            raise
        self._appender = JsonlAppender(self.path, warn=self.warn)
        if header is not None:
            self._appender.write({"type": HEADER, "format": FORMAT, **header})
        return moved

    def append_attempt(self, row: dict[str, Any]) -> None:
        assert self._appender is not None
        self._appender.write({"type": ATTEMPT, **row})

    def append_case(self, index: int, result: dict[str, Any]) -> None:
        assert self._appender is not None
        self._appender.write({"type": CASE, "index": index, "result": result})

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
