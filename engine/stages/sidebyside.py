"""Per-case side by side: every run's answer to one concept, joined by concept_id.

The report's regression section and the TUI's diff view both need "for this concept, what did
the reference (teacher) write, what did the baseline and the student write, and how did each
score": one join, here, so they cannot disagree. Pure data; rendering is the caller's job.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Mapping

from engine.stages.results import CaseResult, RunResults


@dataclass
class CaseView:
    """One run's answer to one concept."""

    tag: str
    score: float | None  # None: a format error (or not scored)
    valid: bool
    reason: str | None
    review_status: str | None
    vision_yaml: str | None
    review_yaml: str | None
    raw_response: str | None
    check_reason: str | None  # po-tui's format check, also where the file counted the answer valid
    breakdown: dict | None = None  # the metric's parts (new files only)
    detail: str | None = None  # the format error's detail

    @classmethod
    def of(cls, tag: str, case: CaseResult) -> "CaseView":
        return cls(tag, case.score, case.valid, case.reason, case.review_status,
                   case.vision_yaml, case.review_yaml, case.raw_response, case.check_reason,
                   case.breakdown, case.detail)


@dataclass
class SideBySide:
    """One concept across runs; `views[tag]` is None where that run has no case for it."""

    concept_id: str
    tier: str | None
    concept: str | None
    requirements_yaml: str | None
    reference: dict | None  # {"vision_yaml", "review_yaml", "score"} when a results file carries it
    views: dict[str, CaseView | None] = field(default_factory=dict)

    def score(self, tag: str, *, errors_as_zero: bool = True) -> float | None:
        """The run's score for this concept; a format error counts 0 unless told otherwise."""
        view = self.views.get(tag)
        if view is None:
            return None
        if view.score is None:
            return 0.0 if errors_as_zero else None
        return view.score

    def delta(self, base: str, new: str) -> float | None:
        """new − base, format errors as 0; None when either run lacks the concept."""
        a, b = self.score(base), self.score(new)
        return b - a if a is not None and b is not None else None


def side_by_side(runs: Mapping[str, RunResults]) -> list[SideBySide]:
    """Rows in order of first appearance across `runs` (in the mapping's order)."""
    rows: dict[str, SideBySide] = {}
    for tag, run in runs.items():
        for case in run.cases:
            row = rows.get(case.concept_id)
            if row is None:
                row = rows[case.concept_id] = SideBySide(
                    case.concept_id, case.tier, case.concept, case.requirements_yaml, case.reference
                )
            row.tier = row.tier or case.tier
            row.concept = row.concept or case.concept
            row.requirements_yaml = row.requirements_yaml or case.requirements_yaml
            row.reference = row.reference or case.reference
            # A repeated concept_id within one run keeps its first case (the gate warns about it).
            row.views.setdefault(tag, CaseView.of(tag, case))
    for row in rows.values():
        for tag in runs:
            row.views.setdefault(tag, None)
    return list(rows.values())


def regressions(
    rows: list[SideBySide], base: str = "baseline", new: str = "student", limit: int | None = 5
) -> list[tuple[SideBySide, float]]:
    """Concepts where `new` scored below `base` (format errors as 0), largest drop first."""
    drops = [(row, d) for row in rows if (d := row.delta(base, new)) is not None and d < 0]
    drops.sort(key=lambda item: (item[1], item[0].concept_id))
    return drops if limit is None else drops[:limit]


def changed_lines(a: str | None, b: str | None) -> tuple[set[int], set[int]]:
    """Indices of the lines of `a` and of `b` that a line diff does not match (to highlight them)."""
    la, lb = (a or "").splitlines(), (b or "").splitlines()
    out_a: set[int] = set()
    out_b: set[int] = set()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, la, lb, autojunk=False).get_opcodes():
        if op != "equal":
            out_a.update(range(i1, i2))
            out_b.update(range(j1, j2))
    return out_a, out_b


def yaml_diff(a: str | None, b: str | None, from_label: str, to_label: str, *, context: int = 3) -> list[str]:
    """Unified diff lines of two YAML texts (an absent text diffs as empty)."""
    return list(
        difflib.unified_diff(
            (a or "").splitlines(), (b or "").splitlines(), fromfile=from_label, tofile=to_label,
            n=context, lineterm="",
        )
    )
