"""Score `Sample`s: validity (format_error reason) and the metric, side by side."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from engine.core.metric import product_owner_metric
from engine.core.records import Sample, population_stats

FORMAT_ERROR = "format_error"


@dataclass
class Scored:
    sample: Sample
    score: float
    breakdown: dict[str, float]
    valid: bool
    reason: str | None
    detail: str | None
    metric: str

    @property
    def counted_valid(self) -> bool:
        """Valid for summary statistics: the file's own verdict when it recorded one.

        Old evaluation files marked as `ok` answers whose REVIEW YAML does not parse, and
        their recorded means count them; to reproduce those means the recorded status wins.
        """
        if self.sample.recorded_status is not None:
            return self.sample.recorded_status != FORMAT_ERROR
        return self.valid

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.sample.id,
            "score": self.score,
            "breakdown": self.breakdown,
            "valid": self.valid,
            "reason": self.reason,
        }
        if self.detail:
            row["detail"] = self.detail
        row["metric"] = self.metric
        if self.sample.line is not None:
            row["line"] = self.sample.line
        if self.sample.recorded_score is not None:
            row["recorded_score"] = self.sample.recorded_score
        if self.sample.recorded_status is not None:
            row["recorded_status"] = self.sample.recorded_status
        return row


def score_sample(sample: Sample, metric: str) -> Scored:
    if sample.concept is None:
        raise ValueError(f"sample {sample.id} has no concept to score against")
    check = sample.format_check()
    vision, review = sample.blocks()
    result = product_owner_metric(vision, review, sample.concept.requirements_yaml, metric=metric)
    return Scored(sample, result.score, result.breakdown, check.valid, check.reason, check.detail, metric)


@dataclass
class ScoreSummary:
    n: int
    counted_valid: int
    stats: dict[str, Any]
    format_valid: int
    reasons: Counter
    recorded_compared: int
    recorded_matched: int
    recorded_other_metric: set[str]
    max_diff: float
    uses_recorded_status: bool


def summarize(rows: Iterable[Scored], *, tolerance: float = 1e-9) -> ScoreSummary:
    rows = list(rows)
    counted = [r for r in rows if r.counted_valid]
    reasons = Counter(r.reason for r in rows if not r.valid)
    compared = matched = 0
    max_diff = 0.0
    other: set[str] = set()
    for r in rows:
        if r.sample.recorded_score is None:
            continue
        if r.sample.recorded_metric not in (None, r.metric):
            other.add(r.sample.recorded_metric)
            continue
        compared += 1
        diff = abs(r.score - r.sample.recorded_score)
        max_diff = max(max_diff, diff)
        matched += diff <= tolerance
    return ScoreSummary(
        n=len(rows),
        counted_valid=len(counted),
        stats=population_stats(r.score for r in counted),
        format_valid=sum(r.valid for r in rows),
        reasons=reasons,
        recorded_compared=compared,
        recorded_matched=matched,
        recorded_other_metric=other,
        max_diff=max_diff,
        uses_recorded_status=any(r.sample.recorded_status is not None for r in rows),
    )
