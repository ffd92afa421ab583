"""Evaluation results as the eval stage writes them: one case's verdict, the summary, the file.

The file is a superset of the evaluation-result shape in docs/formats.md, so the replaced system's
files (`reference/inference_results/*.json`) and ours are read back by one reader,
`engine.stages.results.load_results` (the gate, the report and the cockpit use it). `metrics`
mean/std/min/max are over valid cases only (population std, 0 when n <= 1), exactly as the old
files; beside them what the old files lacked: the mean with format errors counted as 0, the
valid rate, the median, and (under `po_tui`) speed and output length.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from engine.core.blocks import check_pair, check_text
from engine.core.metric import product_owner_metric
from engine.core.numbers import finite
from engine.core.records import population_stats
from engine.core.yamltext import as_mapping, load_yaml
from engine.stages.eval.dataset import EvalCase, Reference

RESULTS_FORMAT = "po-tui-eval/1"
OK, FORMAT_ERROR = "ok", "format_error"


@dataclass
class Verdict:
    """What one answer is worth: validity, blocks, score (or the partial score of what parsed)."""

    valid: bool
    reason: str | None
    detail: str | None
    vision: str | None
    review: str | None
    score: float
    breakdown: dict[str, float]
    review_status: str | None


def judge_text(text: str, requirements_yaml: str, metric: str) -> Verdict:
    ex, check = check_text(text or "")
    vision, review = ex.vision_text, ex.review_text
    result = product_owner_metric(vision, review, requirements_yaml, metric=metric)
    status = as_mapping(load_yaml(review)[0]).get("status") if review else None
    return Verdict(
        check.valid, check.reason, check.detail, vision, review, result.score, result.breakdown,
        status if isinstance(status, str) else None,
    )


def reference_result(ref: Reference | None, requirements_yaml: str, metric: str) -> dict[str, Any] | None:
    """The dataset's own answer, scored with this evaluation's metric (side by side in the TUI)."""
    if ref is None:
        return None
    vision, review = ref.vision, ref.review
    if (vision is None or review is None) and ref.raw:
        ex = check_text(ref.raw)[0]
        vision = vision if vision is not None else ex.vision_text
        review = review if review is not None else ex.review_text
    check = check_pair(vision, review)
    return {
        "vision_yaml": vision,
        "review_yaml": review,
        "score": product_owner_metric(vision, review, requirements_yaml, metric=metric).score if check.valid else None,
        "valid": check.valid,
        "metric": metric,
        "recorded_score": ref.recorded_score,
        "recorded_metric": ref.recorded_metric,
    }


def case_result(case: EvalCase, attempts: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The results row of a finished case from its attempt rows (the last one is the answer)."""
    last = attempts[-1]
    v = judge_text(last["text"], case.concept.requirements_yaml, metric)
    latency = sum(a["latency_s"] for a in attempts)
    tokens = sum(a["output_tokens"] for a in attempts)
    return {
        "concept_id": case.concept_id,
        "tier": case.concept.tier,
        "status": OK if v.valid else FORMAT_ERROR,
        "attempts": len(attempts),
        "score": v.score if v.valid else None,
        "vision_yaml": v.vision,
        "review_yaml": v.review,
        "raw_response": last["text"],
        "error": None if v.valid else f"{v.reason}: {v.detail}" if v.detail else v.reason,
        "format_error": None if v.valid else v.reason,
        "error_detail": None if v.valid else v.detail,
        "review_status": v.review_status,
        "breakdown": v.breakdown,
        "partial_score": v.score,
        "latency_s": round(latency, 4),
        "output_tokens": last["output_tokens"],
        "output_tokens_total": tokens,
        "tokens_per_s": round(tokens / latency, 2) if latency > 0 else None,
        "finish_reason": last["finish_reason"],
        "wall_share_s": round(sum(a["wall_share_s"] for a in attempts), 6),
        "attempt_log": [
            {
                "attempt": a["attempt"],
                "reason": a["reason"],
                "detail": a["detail"],
                "output_tokens": a["output_tokens"],
                "input_tokens": a["input_tokens"],
                "latency_s": a["latency_s"],
                "finish_reason": a["finish_reason"],
                "batch_size": a["batch_size"],
            }
            for a in attempts
        ],
        "reference": reference_result(case.reference, case.concept.requirements_yaml, metric),
        "index": case.index,
        "line": case.line,
        "concept": case.concept.concept,
        "requirements_yaml": case.concept.requirements_yaml,
    }


# --- summary ----------------------------------------------------------------------------------


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The `metrics` block: the old files' four over valid cases, plus what the old files lacked."""
    total = len(results)
    valid = [float(r["score"]) for r in results if r.get("status") != FORMAT_ERROR and finite(r.get("score")) is not None]
    stats = population_stats(valid)
    return {
        "mean": stats["mean"],
        "std": stats["std"],
        "min": stats["min"],
        "max": stats["max"],
        "mean_with_errors_as_zero": sum(valid) / total if total else None,
        "valid_rate": len(valid) / total if total else None,
        "median": statistics.median(valid) if valid else None,
        "n": total,
        "valid": len(valid),
    }


def speed(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    wall = sum(r.get("wall_share_s") or 0.0 for r in results)
    generated = sum(r.get("output_tokens_total") or 0 for r in results)
    lengths = [r["output_tokens"] for r in results if isinstance(r.get("output_tokens"), int)]
    return {
        "s_per_sample": wall / len(results) if results else None,
        "output_tokens_per_s": generated / wall if wall > 0 else None,
        "output_tokens_mean": sum(lengths) / len(lengths) if lengths else None,
        "output_tokens_max": max(lengths) if lengths else None,
        "generation_wall_s": round(wall, 3),
        "output_tokens_generated": generated,
    }


def retry_stats(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    retried = [r for r in results if (r.get("attempts") or 1) > 1]
    return {
        "cases_retried": len(retried),
        "fixed_by_retry": sum(1 for r in retried if r.get("status") == OK),
        "format_errors": dict(Counter(r.get("format_error") for r in results if r.get("status") == FORMAT_ERROR)),
        "first_attempt_reasons": dict(
            Counter(r["attempt_log"][0]["reason"] for r in results if r.get("attempt_log") and r["attempt_log"][0]["reason"])
        ),
    }


def document(header: dict[str, Any], results: list[dict[str, Any]], po_tui: dict[str, Any]) -> dict[str, Any]:
    """The results file: the old files' fields first, then ours (docs/formats.md)."""
    metrics = summarize(results)
    valid = metrics["valid"]
    return {
        "model": header["model"],
        "adapter_path": header["adapter_path"],
        "timestamp": header["timestamp"],
        "dataset": header["dataset"],
        "tag": header["tag"],
        "metric": header["metric"],
        "total_samples": len(results),
        "valid_samples": valid,
        "failed_samples": len(results) - valid,
        "metrics": metrics,
        "po_tui": {"format": RESULTS_FORMAT, **po_tui, "speed": speed(results), "retry_stats": retry_stats(results)},
        "results": results,
    }
