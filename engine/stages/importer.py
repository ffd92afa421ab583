"""`po-tui import`: rebuild teacher records from the files the replaced system left behind.

Supervised prompt/response pairs (both prompt layouts), legacy teacher records without ids, the
validation layout and chat records all become teacher records (docs/formats.md): concept and
requirements recovered, blocks extracted, scored with the chosen metric. Every row is written —
one whose answer has a format problem keeps it visible (`metadata.import_format_error`) for
prep to account for, instead of disappearing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core.metric import product_owner_metric
from engine.core.records import Concept, read_samples, teacher_record
from engine.errors import InputError
from engine.store.jsonl import Warn


def import_records(path: str | Path, *, metric: str = "po-v2", warn: Warn | None = None) -> tuple[str, list[dict[str, Any]]]:
    kind, samples = read_samples(path, warn=warn)
    if not samples:
        raise InputError("no records: nothing to import", path=path)
    out = []
    for s in samples:
        assert s.concept is not None
        vision, review = s.blocks()
        check = s.format_check()
        result = product_owner_metric(vision, review, s.concept.requirements_yaml, metric=metric)
        old_meta = dict(s.record.get("metadata") or {}) if isinstance(s.record.get("metadata"), dict) else {}
        meta: dict[str, Any] = {
            **old_meta,
            "source": "import",
            "source_file": Path(path).name,
            "source_line": s.line,
            "source_layout": s.layout,
            "model": old_meta.get("model", "unknown"),
            "provider": old_meta.get("provider", "unknown"),
        }
        if s.recorded_score is not None:
            meta["recorded_score"] = s.recorded_score
            meta["recorded_metric"] = s.recorded_metric
        if not check.valid:
            meta["import_format_error"] = check.reason
        concept = Concept(
            s.concept.concept,
            s.concept.requirements_yaml,
            s.concept.concept_id or f"CK-{s.concept.key[:12]}",
            s.concept.tier,
            s.concept.metadata,
        )
        out.append(
            teacher_record(concept, vision or "", review or "", score=result.score, metric=metric, breakdown=result.breakdown,
                           metadata=meta)
        )
    return kind, out
