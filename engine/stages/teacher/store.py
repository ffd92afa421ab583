"""The teacher's output directory: what is on disk is what has been paid for.

- `responses.jsonl`: every raw answer, appended and fsynced *before* it is parsed. The source of
  truth: resume replays it instead of calling the API again; `--rescore` rebuilds from it alone.
- `po_teacher_dataset.jsonl`: accepted teacher records (docs/formats.md, "Teacher records").
- `rejects.jsonl`: final rejects with reason and score.
- `teacher_run.json`: the settings fingerprint of each run segment, and the last summary.
A sample is identified by its key `(concept_id, variant)`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.core.timefmt import utc_stamp
from engine.store.atomic import atomic_write_json
from engine.store.jsonfile import read_record
from engine.store.jsonl import JsonlAppender, Warn, iter_jsonl

DATASET = "po_teacher_dataset.jsonl"
REJECTS = "rejects.jsonl"
RESPONSES = "responses.jsonl"
MANIFEST = "teacher_run.json"

Key = tuple[str, int]
DAMAGED = "damaged teacher run record"


class RunRecord(BaseModel):
    """The parts of teacher_run.json that resume reads and appends to (others are kept as they are)."""

    model_config = ConfigDict(extra="allow", strict=True)
    segments: list[dict[str, Any]] = Field(default_factory=list)
    fingerprint: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    rescores: list[dict[str, Any]] = Field(default_factory=list)


def key_of(record: dict[str, Any]) -> Key:
    """The sample key of a response, reject or teacher record."""
    variant = record.get("variant")
    if variant is None:
        variant = (record.get("metadata") or {}).get("variant", 0)
    return str(record["concept_id"]), int(variant)


@dataclass
class ResumeState:
    """What an earlier run left: finished keys, stored answers per key, money already spent."""

    accepted: set[Key] = field(default_factory=set)
    rejected: dict[Key, str] = field(default_factory=dict)  # key -> final reason
    responses: dict[Key, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    request_count: int = 0

    def finished(self, key: Key, *, retry_errors: bool = False) -> bool:
        if key in self.accepted:
            return True
        reason = self.rejected.get(key)
        if reason is None:
            return False
        return not (retry_errors and reason.startswith("provider_error"))


class TeacherStore:
    def __init__(self, out_dir: str | Path, *, warn: Warn | None = None) -> None:
        self.dir = Path(out_dir)
        self.warn = warn
        self.dataset_path = self.dir / DATASET
        self.rejects_path = self.dir / REJECTS
        self.responses_path = self.dir / RESPONSES
        self.manifest_path = self.dir / MANIFEST
        self._appenders: dict[Path, JsonlAppender] = {}

    def exists(self) -> bool:
        return any(p.exists() for p in (self.dataset_path, self.rejects_path, self.responses_path))

    def _rows(self, path: Path):
        if not path.exists():
            return []
        torn = (lambda t: self.warn(t.describe())) if self.warn else None
        return iter_jsonl(path, on_torn=torn)

    def load(self) -> ResumeState:
        state = ResumeState()
        for _, row in self._rows(self.responses_path):
            key = key_of(row)
            state.responses[key].append(row)
            state.cost_usd += float(row.get("cost_usd") or 0.0)
            state.input_tokens += int(row.get("input_tokens") or 0)
            state.output_tokens += int(row.get("output_tokens") or 0)
            state.request_count += 1
        for rows in state.responses.values():
            # A planned run (teacher.phases) may ask a concept in two phases, each counting its attempts from 1.
            rows.sort(key=lambda r: (r["phase"] if isinstance(r.get("phase"), int) else 0, int(r.get("attempt", 0))))
        for _, row in self._rows(self.dataset_path):
            state.accepted.add(key_of(row))
        for _, row in self._rows(self.rejects_path):
            key = key_of(row)
            if key not in state.accepted:
                state.rejected[key] = str(row.get("reason") or "rejected")
        return state

    def _appender(self, path: Path) -> JsonlAppender:
        if path not in self._appenders:
            self._appenders[path] = JsonlAppender(path, warn=self.warn)
        return self._appenders[path]

    def append_response(self, row: dict[str, Any]) -> None:
        self._appender(self.responses_path).write(row)

    def append_accepted(self, row: dict[str, Any]) -> None:
        self._appender(self.dataset_path).write(row)

    def append_reject(self, row: dict[str, Any]) -> None:
        self._appender(self.rejects_path).write(row)

    def read_manifest(self) -> dict[str, Any] | None:
        """teacher_run.json, None when absent; InputError naming the file when damaged (it is
        written atomically, so a bad one was damaged by something else: refused, not overwritten)."""
        return read_record(self.manifest_path, RunRecord, damaged=DAMAGED)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest["updated_at"] = utc_stamp()
        atomic_write_json(self.manifest_path, manifest)

    def close(self) -> None:
        for appender in self._appenders.values():
            appender.close()
        self._appenders.clear()
