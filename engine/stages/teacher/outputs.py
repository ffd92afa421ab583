"""Accepted teacher records and reject rows, built from a sample's stored answers.

Shared by the live run and `--rescore`, so a rebuilt dataset is field-for-field what the run
would have written.
"""

from __future__ import annotations

from typing import Any, Sequence

from engine.core.records import Concept, teacher_record
from engine.core.timefmt import utc_stamp
from engine.stages.teacher.judge import Verdict


def sample_metadata(rows: Sequence[dict[str, Any]], reasons: Sequence[str], *, temperature: float | None) -> dict[str, Any]:
    """Totals over every attempt of a sample: what it cost to get this record."""
    last = rows[-1]
    meta: dict[str, Any] = {
        "model": last["model"],
        "provider": last["provider"],
        "variant": last["variant"],
        "attempts": len(rows),
        "retry_reasons": list(reasons),
        "input_tokens": sum(int(r.get("input_tokens") or 0) for r in rows),
        "output_tokens": sum(int(r.get("output_tokens") or 0) for r in rows),
        "thinking_tokens": sum(int(r.get("thinking_tokens") or 0) for r in rows),
        "thinking_budget": last.get("thinking_budget"),  # None: the model's default
        "cost_usd": round(sum(float(r.get("cost_usd") or 0.0) for r in rows), 8),
        "latency_s": round(sum(float(r.get("latency_s") or 0.0) for r in rows), 4),
        "finish_reason": last.get("finish_reason"),
        "prompt_hash": last.get("prompt_hash"),
        "seed": last.get("seed"),
        "temperature": temperature,
        "created_at": utc_stamp(),
    }
    if last.get("phase") is not None:
        meta["phase"] = last["phase"]  # teacher.phases: the planned phase that paid for this record
    if last["provider"] == "synthetic":
        meta["synthetic"] = True  # labelled wherever its records go
    return meta


def accepted_record(
    concept: Concept, concept_id: str, verdict: Verdict, metric: str, meta: dict[str, Any]
) -> dict[str, Any]:
    return teacher_record(
        Concept(concept.concept, concept.requirements_yaml, concept_id, concept.tier),
        verdict.vision or "",
        verdict.review or "",
        score=verdict.score,
        metric=metric,
        breakdown=verdict.breakdown,
        metadata=meta,
    )


def reject_row(
    concept_id: str,
    variant: int,
    tier: str | None,
    reason: str,
    detail: str | None,
    verdict: Verdict | None,
    metric: str,
    meta: dict[str, Any],
) -> dict[str, Any]:
    return {
        "concept_id": concept_id,
        "variant": variant,
        "tier": tier,
        "reason": reason,
        "detail": detail,
        "score": verdict.score if verdict else None,
        "status": verdict.status if verdict else None,
        "metric": metric,
        "metadata": meta,
    }


def concept_of(row: dict[str, Any]) -> Concept:
    """The concept a stored response was generated for (responses carry it, so a rescore needs
    nothing but responses.jsonl)."""
    return Concept(row["concept"], row["requirements_yaml"], str(row["concept_id"]), row.get("tier"))
