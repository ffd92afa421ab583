"""Judge one teacher answer: blocks, validity, score; and the instruction for the next try."""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.blocks import check_text
from engine.core.metric import ALLOWED_STATUSES, product_owner_metric
from engine.core.prompts import teacher_retry_instruction
from engine.core.yamltext import as_mapping, load_yaml
from engine.providers.base import FINISH_MAX_TOKENS, FINISH_STOP

LOW_SCORE = "low_score"
# Not a format_error (the YAML is fine) but never accepted into a teacher dataset: a student
# trained on `status: gaps` learns to write it (the replaced system's did).
INVALID_STATUS = "invalid_status"


@dataclass
class Verdict:
    valid: bool
    reason: str | None
    detail: str | None
    score: float
    breakdown: dict[str, float]
    status: str | None
    vision: str | None
    review: str | None
    finish_reason: str

    def accepted(self, min_score: float) -> bool:
        return self.usable and self.score >= min_score

    @property
    def usable(self) -> bool:
        """Valid blocks and an allowed status: worth keeping if it scores enough."""
        return self.problem is None

    @property
    def problem(self) -> str | None:
        """Why this answer cannot be kept whatever its score: a format_error or a bad status."""
        if not self.valid:
            return self.reason or "invalid"
        if self.status not in ALLOWED_STATUSES:
            return INVALID_STATUS
        return None


def judge(text: str, requirements_yaml: str, metric: str, finish_reason: str = FINISH_STOP) -> Verdict:
    ex, check = check_text(text or "")
    vision, review = ex.vision_text, ex.review_text
    result = product_owner_metric(vision, review, requirements_yaml, metric=metric)
    parsed_review, _ = load_yaml(review) if review else (None, None)
    status = as_mapping(parsed_review).get("status")
    detail = check.detail
    if not check.valid and finish_reason not in (FINISH_STOP, ""):
        detail = f"{detail} (finish reason {finish_reason})" if detail else f"finish reason {finish_reason}"
    return Verdict(
        valid=check.valid,
        reason=check.reason,
        detail=detail,
        score=result.score,
        breakdown=result.breakdown,
        status=status if isinstance(status, str) else None,
        vision=vision,
        review=review,
        finish_reason=finish_reason,
    )


def retry_instruction(verdict: Verdict, min_score: float) -> str:
    """The corrective follow-up: exactly what was wrong with the previous answer."""
    if not verdict.valid:
        text = teacher_retry_instruction(verdict.reason or "invalid", verdict.detail)
        if verdict.finish_reason == FINISH_MAX_TOKENS:
            text += " Your answer was cut off at the output limit: keep it shorter."
        return text
    if verdict.problem == INVALID_STATUS:
        return (
            f"Your answer used status {verdict.status!r}, which is not allowed. Answer again with both "
            f"blocks; status must be exactly one of {', '.join(ALLOWED_STATUSES)}, consistent with the "
            "aligned, gaps and conflicts lists."
        )
    weakest = sorted(verdict.breakdown.items(), key=lambda kv: kv[1])[:2]
    parts = ", ".join(f"{name} {points:.1f}/30" for name, points in weakest)
    return (
        f"Your answer is valid but scored {verdict.score:.3f}, below the required {min_score:.2f} "
        f"(weakest: {parts}). Answer again with both blocks: cite every requirement id in "
        "aligned, gaps or conflicts; make status consistent with those lists; give at least two "
        "items in every list; write a narrative of 2-4 sentences (at least 160 characters)."
    )
