"""`po-tui teacher --rescore`: rebuild accepted and rejected records from responses.jsonl alone.

No API call: every answer ever paid for is in responses.jsonl with its concept, so a new metric
or threshold only re-judges them. Per sample, the first stored answer that is valid and reaches
min-score is accepted; otherwise the sample is rejected with its last reason. The previous
dataset and rejects are kept as `*.before-rescore-<ts>`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from engine.errors import InputError
from engine.stages.teacher.judge import LOW_SCORE, judge
from engine.stages.teacher.outputs import accepted_record, concept_of, reject_row, sample_metadata
from engine.stages.teacher.store import TeacherStore
from engine.store.atomic import atomic_write_jsonl
from engine.store.jsonl import Warn


def rescore(out_dir: str, *, metric: str, min_score: float, warn: Warn | None = None) -> dict[str, Any]:
    store = TeacherStore(out_dir, warn=warn)
    if not store.responses_path.exists():
        raise InputError("no responses.jsonl here: nothing to rescore", path=store.responses_path)
    state = store.load()
    manifest = store.read_manifest() or {"version": 1, "segments": []}  # refused before anything moves
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for (concept_id, variant), rows in state.responses.items():
        concept = concept_of(rows[0])
        reasons: list[str] = []
        verdict = None
        for i, row in enumerate(rows):
            verdict = judge(row.get("text") or "", concept.requirements_yaml, metric, row.get("finish_reason") or "STOP")
            if verdict.accepted(min_score):
                meta = sample_metadata(rows[: i + 1], reasons, temperature=None)
                meta["rescored"] = True
                accepted.append(accepted_record(concept, concept_id, verdict, metric, meta))
                break
            reasons.append(verdict.problem or LOW_SCORE)
        else:
            assert verdict is not None
            reason = verdict.problem or "below_min_score"
            if not verdict.valid:
                detail = verdict.detail
            elif verdict.problem:
                detail = f"status {verdict.status!r}"
            else:
                detail = f"score {verdict.score:.4f} < min-score {min_score:.2f}"
            meta = sample_metadata(rows, reasons, temperature=None)
            meta["rescored"] = True
            rejected.append(reject_row(concept_id, variant, concept.tier, reason or "invalid", detail, verdict, metric, meta))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (store.dataset_path, store.rejects_path):
        if path.exists():
            os.replace(path, path.with_name(f"{path.name}.before-rescore-{stamp}"))
    atomic_write_jsonl(store.dataset_path, accepted)
    atomic_write_jsonl(store.rejects_path, rejected)
    manifest.setdefault("rescores", []).append({"at": stamp, "metric": metric, "min_score": min_score})
    fingerprint = dict(manifest.get("fingerprint") or {})
    fingerprint.update(metric=metric, min_score=min_score)
    manifest["fingerprint"] = fingerprint
    store.write_manifest(manifest)
    return {"samples": len(state.responses), "responses": state.request_count, "accepted": len(accepted), "rejected": len(rejected)}
