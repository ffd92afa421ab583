"""The evaluation cases: the first N distinct concepts of any file that carries concepts.

Accepted layouts are those engine.core.records reads: concept records, teacher records (prep's
val.jsonl), the validation layout (concept under `input`, a reference answer under `output`),
prompt/response pairs (concept recovered from the prompt) and evaluation-result JSON that holds
its concepts. Cases are taken in file order, never shuffled: the seeds compared the same 20
cases run after run, and a comparison is only fair on the same cases. A concept that appears
again (prep's variants of one concept) is evaluated once. Where a row carries an answer (the
teacher's, granite4's, a previous model's) it is kept as the case's reference, for side-by-side
views.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from engine.core.records import (
    LAYOUT_CONCEPT,
    Concept,
    Sample,
    check_requirements,
    concept_from_record,
    detect_layout,
    is_eval_results,
    read_samples,
    sample_from_record,
)
from engine.errors import InputError
from engine.store.jsonl import Warn, iter_jsonl


@dataclass(frozen=True)
class Reference:
    """An answer the dataset row already carries, with its recorded score."""

    vision: str | None
    review: str | None
    raw: str | None
    recorded_score: float | None
    recorded_metric: str | None


@dataclass(frozen=True)
class EvalCase:
    index: int  # position among the selected cases (results keep this order)
    concept_id: str
    concept: Concept
    line: int | None  # 1-based line in a JSONL dataset (None for a JSON document)
    reference: Reference | None


def case_id(concept: Concept) -> str:
    """The concept's id, or a content id for rows without one (as prep names them)."""
    return concept.concept_id or f"CK-{concept.key[:12]}"


def _reference(sample: Sample) -> Reference | None:
    if sample.vision is None and sample.review is None and not sample.raw:
        return None
    return Reference(sample.vision, sample.review, sample.raw, sample.recorded_score, sample.recorded_metric)


def _rows(path: Path, warn: Warn | None) -> Iterator[tuple[int | None, Concept, Reference | None]]:
    """(line, concept, reference) for each row, lazily: a bad row after the last case needed is never read."""
    if is_eval_results(path):
        _, samples = read_samples(path)
        for sample in samples:
            if sample.concept is None:
                raise InputError(
                    "this evaluation result carries no concept and requirements to evaluate on",
                    path=path,
                    field=f"{sample.where}.concept",
                )
            yield None, sample.concept, _reference(sample)
        return
    on_torn = (lambda t: warn(t.describe())) if warn else None
    for line, obj in iter_jsonl(path, on_torn=on_torn):
        if detect_layout(obj) == LAYOUT_CONCEPT:
            yield line, concept_from_record(obj, path, line), None
        else:
            sample = sample_from_record(obj, path, line)
            assert sample.concept is not None
            yield line, sample.concept, _reference(sample)


def read_cases(path: str | Path, max_samples: int, *, warn: Warn | None = None) -> list[EvalCase]:
    """The first `max_samples` distinct concepts (0: all) in file order."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=p, field="--dataset")
    if p.is_dir():
        raise InputError("is a directory, expected a dataset file", path=p, field="--dataset")
    cases: list[EvalCase] = []
    seen: dict[str, tuple[str, int | None]] = {}  # concept key -> (id, line)
    ids: dict[str, str] = {}  # id -> concept key
    repeats = 0
    for line, concept, reference in _rows(p, warn):
        cid = case_id(concept)
        if concept.key in seen:
            repeats += 1
            continue
        if cid in ids:
            raise InputError(
                f"concept_id {cid!r} appears twice with different content (first at line {seen[ids[cid]][1]})",
                path=p,
                line=line,
                field="concept_id",
            )
        check_requirements(concept, p, line)  # before any model (or paid provider) is asked
        seen[concept.key] = (cid, line)
        ids[cid] = concept.key
        cases.append(EvalCase(len(cases), cid, concept, line, reference))
        if max_samples and len(cases) >= max_samples:
            break
    if not cases:
        raise InputError("no cases: the dataset holds no concept", path=p, field="--dataset")
    if repeats and warn:
        warn(f"{p}: {repeats} rows repeat a concept already selected: each concept is evaluated once")
    return cases


def cases_digest(cases: list[EvalCase]) -> str:
    """Identity of the selection: ids and concept contents in order (resume compares it)."""
    h = hashlib.sha256()
    for case in cases:
        h.update(f"{case.concept_id}\x00{case.concept.key}\n".encode("utf-8"))
    return h.hexdigest()[:16]
