"""Grounding: does an answer belong to its concept? And the constant-answer control.

A student can reach a decent Product Owner score by writing one good answer for every concept:
the metric rewards well-formed, complete blocks wherever they come from. What proves that it
learnt the task is that its answers depend on the concept. Per answer we measure:

- name match: the VISION `product_name` is the concept's product (the `title` of its
  requirements YAML), compared case- and whitespace-insensitively;
- cited ids: requirement ids found in the answer's two blocks. Which tokens count as ids is
  read from the evaluated concepts themselves (their id prefixes, `FR`/`NFR`/`C` in the
  synthetic ones, and any id without a prefix-and-number shape, literally), so an id of another
  concept counts as cited but not existing, while `AES-256` or `P95` count as nothing;
- id precision: cited ids that exist in that concept's requirements / cited ids;
- id coverage: the concept's ids cited / the concept's ids.

Answers that are format errors name nothing and cite nothing (as format errors count 0 in the
mean). A side's `grounding` is the mean of its name-match rate, id precision (0 when it cites
nothing) and id coverage.

The control: the teacher's most common answer on the held-out concepts (ties and the all-distinct
case go to the earliest concept), written for every concept and judged with the same format
check, metric and grounding as the real sides. A student that copies one answer scores like it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from engine.core.blocks import check_pair, render_response
from engine.core.metric import parse_block, product_owner_metric, requirements_of
from engine.stages.results import CaseResult, RunResults, RunSummary, opt_str, parse_case, summarize_cases

SIDES = ("student", "baseline", "teacher", "constant")
GROUNDING_FIELDS = ("name_match", "id_precision", "id_coverage", "grounding")
CONSTANT_SOURCE = Path("constant answer")  # what the control's cases name as their file
# How far above a constant answer's grounding a student must be for its answers to count as
# depending on the concept (the `grounded` gate preset and the report's sentence use it).
CLEAR_MARGIN = 0.25

_SHAPED_ID_RE = re.compile(r"^([A-Za-z]+)[-_]?(\d+)$")


# --- one concept -------------------------------------------------------------------------------


def id_key(rid: str) -> str:
    """One spelling per id: `fr-001`, `FR_001` and `FR001` are the same id (not `FR1`)."""
    rid = " ".join(str(rid).split())
    match = _SHAPED_ID_RE.match(rid)
    return (match.group(1) + match.group(2)).upper() if match else rid.upper()


def requirement_ids(requirements_yaml: str | None) -> list[str]:
    """The concept's requirement ids (as keys), in order, once each; [] when it has none."""
    if not requirements_yaml:
        return []
    keys = [id_key(rid) for rid, _desc in requirements_of(parse_block(requirements_yaml)) if rid]
    return list(dict.fromkeys(keys))


def _name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    name = " ".join(value.split()).casefold()
    return name or None


def product_title(requirements_yaml: str | None) -> str | None:
    """The concept's product: the requirements' `title` (normalised), None when there is none."""
    return _name(parse_block(requirements_yaml).get("title")) if requirements_yaml else None


@dataclass(frozen=True)
class IdScheme:
    """Which tokens of an answer are requirement ids: those shaped like the evaluated concepts' ids."""

    prefixes: frozenset[str]
    literals: frozenset[str]  # ids that are not PREFIX+digits, matched whole

    @classmethod
    def of(cls, requirement_texts: Iterable[str | None]) -> "IdScheme":
        prefixes: set[str] = set()
        literals: set[str] = set()
        for text in requirement_texts:
            for key in requirement_ids(text):
                match = _SHAPED_ID_RE.match(key)
                if match:
                    prefixes.add(match.group(1))
                else:
                    literals.add(key)
        return cls(frozenset(prefixes), frozenset(literals))

    def pattern(self) -> re.Pattern[str] | None:
        parts = []
        if self.prefixes:
            alternatives = "|".join(re.escape(p) for p in sorted(self.prefixes, key=lambda p: (-len(p), p)))
            parts.append(rf"(?:{alternatives})[-_]?\d+")
        parts += [re.escape(lit).replace(r"\ ", r"\s+") for lit in sorted(self.literals, key=lambda x: (-len(x), x))]
        if not parts:
            return None
        return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(parts) + r")(?![A-Za-z0-9])", re.IGNORECASE)

    def cited(self, text: str) -> frozenset[str]:
        pattern = self.pattern()
        if pattern is None or not text:
            return frozenset()
        return frozenset(id_key(m.group(0)) for m in pattern.finditer(text))


# --- one answer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerGrounding:
    """How one answer relates to its concept."""

    valid: bool
    name_match: bool | None  # None: the concept has no title to match
    cited: frozenset[str]
    existing: frozenset[str]  # the cited ids that are the concept's
    coverage: float | None  # None: the concept has no ids


def ground_answer(
    vision: str | None, review: str | None, requirements_yaml: str | None, scheme: IdScheme, *, valid: bool
) -> AnswerGrounding:
    ids = set(requirement_ids(requirements_yaml))
    title = product_title(requirements_yaml)
    if not valid:
        return AnswerGrounding(False, False if title else None, frozenset(), frozenset(), 0.0 if ids else None)
    name = _name(parse_block(vision or "").get("product_name"))
    cited = scheme.cited(f"{vision or ''}\n{review or ''}")
    existing = frozenset(cited & ids)
    return AnswerGrounding(
        True,
        (name == title) if title else None,
        cited,
        existing,
        len(existing) / len(ids) if ids else None,
    )


# --- one side ----------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class SideGrounding:
    """A side's rates over its answers (None when not computable: no titles, no ids, no citations)."""

    n: int
    name_match: float | None
    id_precision: float | None
    id_coverage: float | None
    grounding: float | None
    cited: int  # ids cited, summed over answers (each id once per answer)
    existing: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize_grounding(answers: Sequence[AnswerGrounding]) -> SideGrounding:
    names = [1.0 if a.name_match else 0.0 for a in answers if a.name_match is not None]
    coverage = [a.coverage for a in answers if a.coverage is not None]
    cited = sum(len(a.cited) for a in answers)
    existing = sum(len(a.existing) for a in answers)
    name_rate, cover_rate = _mean(names), _mean(coverage)
    precision = existing / cited if cited else None
    parts = [x for x in (name_rate, cover_rate) if x is not None]
    grounding = (sum(parts) + (precision or 0.0)) / (len(parts) + 1) if parts else None
    return SideGrounding(len(answers), name_rate, precision, cover_rate, grounding, cited, existing)


def ground_cases(cases: Sequence[CaseResult], requirements: Mapping[str, str], scheme: IdScheme) -> SideGrounding:
    return summarize_grounding([
        ground_answer(c.vision_yaml, c.review_yaml, c.requirements_yaml or requirements.get(c.concept_id), scheme,
                      valid=c.valid)
        for c in cases
    ])


# --- the constant-answer control ---------------------------------------------------------------


@dataclass(frozen=True)
class ConstantAnswer:
    """The answer copied to every concept, and where it came from."""

    vision: str
    review: str
    concept_id: str  # the concept it was written for
    occurrences: int  # how many of the teacher's answers are this exact text
    pool: int  # how many format-valid teacher answers it was chosen from
    origin: str  # "teacher" (the teacher reference run) or "reference answers" (the dataset's)

    def describe(self) -> str:
        same = "all answers differ" if self.occurrences == 1 else f"written {self.occurrences} times"
        return (f"the teacher's most common answer ({self.origin}: {same} among {self.pool}; "
                f"the one for {self.concept_id}), written for every concept")


def teacher_answers(runs: Mapping[str, RunResults]) -> tuple[list[tuple[str, str | None, str | None]], str]:
    """(concept_id, vision, review) of the teacher's answers on the held-out concepts, in case order:
    the teacher reference run's, else the dataset answers the student's (or baseline's) cases carry."""
    teacher = runs.get("teacher")
    if teacher is not None and teacher.cases:
        return [(c.concept_id, c.vision_yaml, c.review_yaml) for c in teacher.cases], "teacher"
    for tag in ("student", "baseline"):
        run = runs.get(tag)
        refs = [(c.concept_id, c.reference) for c in run.cases if isinstance(c.reference, dict)] if run else []
        if refs:
            return [(cid, opt_str(ref.get("vision_yaml")), opt_str(ref.get("review_yaml"))) for cid, ref in refs], "reference answers"
    return [], "none"


def pick_constant(answers: Sequence[tuple[str, str | None, str | None]], origin: str) -> ConstantAnswer | None:
    """The format-valid answer text that occurs most often; a tie (all distinct included) goes to
    the earliest. None when no answer is format-valid."""
    valid = [(cid, v, r) for cid, v, r in answers if v is not None and r is not None and check_pair(v, r).valid]
    if not valid:
        return None
    counts = Counter((v.strip(), r.strip()) for _cid, v, r in valid)
    best = max(counts.values())
    for cid, v, r in valid:
        if counts[(v.strip(), r.strip())] == best:
            return ConstantAnswer(v, r, cid, best, len(valid), origin)
    return None  # unreachable: some answer has the highest count


def constant_cases(answer: ConstantAnswer, concepts: Sequence[tuple[str, str | None, str]], metric: str) -> list[CaseResult]:
    """The constant answer judged for each (concept_id, tier, requirements_yaml) like a real answer."""
    valid = check_pair(answer.vision, answer.review).valid
    cases = []
    for i, (cid, tier, requirements_yaml) in enumerate(concepts):
        score = product_owner_metric(answer.vision, answer.review, requirements_yaml, metric=metric).score
        raw = {
            "concept_id": cid, "tier": tier, "status": "ok" if valid else "format_error",
            "score": score if valid else None, "vision_yaml": answer.vision, "review_yaml": answer.review,
            "raw_response": render_response(answer.vision, answer.review), "requirements_yaml": requirements_yaml,
        }
        cases.append(parse_case(raw, i, CONSTANT_SOURCE, metric=metric))
    return cases


# --- every side at once ------------------------------------------------------------------------


@dataclass
class Grounding:
    """Grounding per side, and the control's own scores; `notes` say what could not be computed."""

    sides: dict[str, SideGrounding]
    constant: ConstantAnswer | None
    constant_summary: RunSummary | None
    notes: list[str] = field(default_factory=list)

    def value(self, side: str, name: str) -> float | None:
        g = self.sides.get(side)
        return getattr(g, name) if g is not None else None

    def as_dict(self) -> dict[str, Any]:
        c = self.constant
        return {
            "sides": {side: g.as_dict() for side, g in self.sides.items()},
            "constant": None if c is None else {
                "concept_id": c.concept_id, "occurrences": c.occurrences, "pool": c.pool, "origin": c.origin,
                "description": c.describe(), **(self.constant_summary.as_dict() if self.constant_summary else {}),
            },
            "notes": list(self.notes),
        }


def ground_runs(runs: Mapping[str, RunResults]) -> Grounding:
    """Grounding of the student, baseline and teacher runs present, and of the constant answer on
    the student's concepts (the held-out set), all in the student's metric."""
    requirements: dict[str, str] = {}
    for run in runs.values():
        for c in run.cases:
            if c.requirements_yaml and c.concept_id not in requirements:
                requirements[c.concept_id] = c.requirements_yaml
    scheme = IdScheme.of(requirements.values())
    sides: dict[str, SideGrounding] = {}
    notes: list[str] = []
    for side in SIDES[:3]:
        run = runs.get(side)
        if run is not None:
            sides[side] = ground_cases(run.cases, requirements, scheme)
    held_out = runs.get("student") or runs.get("baseline") or runs.get("teacher")
    if held_out is None:
        return Grounding(sides, None, None, ["no results to ground"])
    if any(c.concept_id not in requirements for c in held_out.cases):
        notes.append("some cases carry no requirements (an old results file?): grounding counts what they carry, "
                     "and the constant answer is not judged")
        return Grounding(sides, None, None, notes)
    answers, origin = teacher_answers(runs)
    constant = pick_constant(answers, origin)
    if constant is None:
        notes.append("no constant answer: " + (
            "none of the teacher's answers is format-valid" if answers
            else "no teacher answers (no teacher results, no reference answers in the cases)"))
        return Grounding(sides, None, None, notes)
    concepts = [(c.concept_id, c.tier, requirements[c.concept_id]) for c in held_out.cases]
    cases = constant_cases(constant, concepts, held_out.metric)
    sides["constant"] = ground_cases(cases, requirements, scheme)
    return Grounding(sides, constant, summarize_cases(cases), notes)
