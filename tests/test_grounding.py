"""Grounding: answers that belong to their concept, and the constant-answer control that does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.blocks import render_response
from engine.core.metric import product_owner_metric
from engine.stages.grounding import (
    IdScheme,
    ground_answer,
    ground_runs,
    id_key,
    pick_constant,
    product_title,
    requirement_ids,
    summarize_grounding,
    teacher_answers,
)
from engine.stages.results import RunResults, parse_case
from tests.po_samples import dump, review, vision

# Four held-out concepts with different products, id schemes and counts.
CONCEPTS = {
    "POCON-0001": ("Field Service Scheduler", ["FR001", "FR002", "FR003", "NFR001", "C001"],
                   "dispatch technicians routes arrival windows"),
    "POCON-0002": ("Tenant Portal Workspace", ["FR-011", "FR-012", "NFR-004", "NFR-005", "C-003", "C-004", "C-005"],
                   "leases rent payments inspections"),
    "POCON-0003": ("Lending Pipeline Manager", ["REQ-1", "REQ-2", "REQ-3"], "loan applications underwriting"),
    "POCON-0004": ("Clinic Intake Desk", ["FR101", "FR102", "FR103", "FR104", "FR105", "NFR201", "C301", "C302"],
                   "patient intake forms triage"),
}


def requirements_yaml(title: str, ids: list[str], topic: str) -> str:
    sections: dict[str, list] = {"functional_requirements": [], "non_functional_requirements": [], "constraints": []}
    for n, rid in enumerate(ids):
        section = ("non_functional_requirements" if rid.startswith("NFR") else
                   "constraints" if rid.startswith("C") else "functional_requirements")
        sections[section].append({"id": rid, "description": f"{topic.split()[n % len(topic.split())]} need number {n}"})
    return dump({"title": title, "description": f"{title}: {topic}.", **sections})


def specific_answer(title: str, ids: list[str]) -> tuple[str, str]:
    """A good answer for one concept: its product, its ids."""
    r = review(requirements_alignment={"aligned": [f"{rid} fits the vision of {title}." for rid in ids],
                                       "gaps": [], "conflicts": []},
               recommended_actions=[f"Deliver {ids[0]} first.", f"Test {ids[-1]} early."])
    return dump(vision(product_name=title)), dump(r)


def raw_cases(answers: dict[str, tuple[str | None, str | None]]) -> list[dict]:
    """Results-file cases of these answers (None blocks: a format error), scored with po-v2."""
    cases = []
    for cid, (v, r) in answers.items():
        title, ids, topic = CONCEPTS[cid]
        req = requirements_yaml(title, ids, topic)
        valid = v is not None and r is not None
        score = product_owner_metric(v, r, req, metric="po-v2").score if valid else None
        cases.append({"concept_id": cid, "tier": "simple", "status": "ok" if valid else "format_error", "score": score,
                      "vision_yaml": v, "review_yaml": r, "raw_response": render_response(v, r) if valid else "no blocks",
                      "format_error": None if valid else "missing_vision_block", "requirements_yaml": req})
    return cases


def run_of(tag: str, answers: dict[str, tuple[str | None, str | None]]) -> RunResults:
    cases = [parse_case(raw, i, f"{tag}.json", metric="po-v2") for i, raw in enumerate(raw_cases(answers))]
    return RunResults(Path(f"{tag}.json"), tag, None, None, None, None, None, "po-v2", False, {}, {}, cases)


def specific_answers() -> dict[str, tuple[str | None, str | None]]:
    return {cid: specific_answer(title, ids) for cid, (title, ids, _t) in CONCEPTS.items()}


def test_ids_are_read_the_way_the_metric_matches_them():
    assert id_key("FR-001") == id_key("fr_001") == id_key("FR001") == "FR001" and id_key("FR1") != "FR001"
    title, ids, topic = CONCEPTS["POCON-0002"]
    req = requirements_yaml(title, ids, topic)
    assert requirement_ids(req) == ["FR011", "FR012", "NFR004", "NFR005", "C003", "C004", "C005"]
    assert product_title(req) == "tenant portal workspace" and product_title("not: [yaml") is None
    scheme = IdScheme.of(requirements_yaml(*c) for c in CONCEPTS.values())
    text = "FR-011 and fr012 fit; NFR004. AES-256 at rest, P95 under 2 s, ISO 27001, FR0011x, REQ-2 and REQ 3, XFR001"
    # Only tokens shaped like the concepts' ids count (not AES-256, P95, a glued token or a spaced one).
    assert scheme.cited(text) == {"FR011", "FR012", "NFR004", "REQ2"}
    # An id that is no prefix+number is matched verbatim, whole.
    odd = IdScheme.of([dump({"functional_requirements": [{"id": "login.sso", "description": "SSO"}]})])
    assert odd.cited("covers login.sso, not xlogin.sso") == {"LOGIN.SSO"}


def test_one_answer_grounded_against_its_own_concept_and_another():
    reqs = {cid: requirements_yaml(*c) for cid, c in CONCEPTS.items()}
    scheme = IdScheme.of(reqs.values())
    v, r = specific_answer("Field Service Scheduler", CONCEPTS["POCON-0001"][1])
    own = ground_answer(v, r, reqs["POCON-0001"], scheme, valid=True)
    assert own.name_match and own.coverage == 1.0 and own.existing == own.cited == {"FR001", "FR002", "FR003", "NFR001", "C001"}
    other = ground_answer(v, r, reqs["POCON-0004"], scheme, valid=True)
    assert other.name_match is False and other.existing == set() and other.coverage == 0.0
    broken = ground_answer(v, r, reqs["POCON-0001"], scheme, valid=False)  # a format error names and cites nothing
    assert broken.name_match is False and broken.cited == set() and broken.coverage == 0.0
    s = summarize_grounding([own, other, broken])
    assert s.name_match == pytest.approx(1 / 3) and s.id_precision == pytest.approx(0.5)
    assert s.id_coverage == pytest.approx(1 / 3) and s.grounding == pytest.approx((1 / 3 + 0.5 + 1 / 3) / 3)
    # Nothing cited: precision is not computable, and counts 0 in the grounding.
    quiet = review(requirements_alignment={"aligned": ["All fit."], "gaps": [], "conflicts": []},
                   recommended_actions=["Ship it."], narrative="Fine.", summary=["Fine."])
    silent = summarize_grounding([ground_answer(v, dump(quiet), reqs["POCON-0001"], scheme, valid=True)])
    assert silent.cited == 0 and silent.id_precision is None and silent.grounding == pytest.approx(1 / 3)
    # No title and no ids to ground against (an old file's concept): nothing to say.
    bare = summarize_grounding([ground_answer(v, r, None, scheme, valid=True)])
    assert bare.name_match is None and bare.id_coverage is None and bare.grounding is None


def test_constant_answer_scores_well_below_concept_specific_answers():
    answers = specific_answers()
    teacher = run_of("teacher", answers)
    student = run_of("student", answers)
    g = ground_runs({"student": student, "teacher": teacher})
    assert g.constant is not None and g.constant.concept_id == "POCON-0001" and g.constant.occurrences == 1
    assert g.sides["student"].grounding == pytest.approx(1.0) and g.sides["teacher"].grounding == pytest.approx(1.0)
    constant = g.sides["constant"]
    assert constant.name_match == pytest.approx(0.25)  # right only for the concept it was written for
    assert constant.id_precision == pytest.approx(0.25) and constant.id_coverage == pytest.approx(0.25)
    assert g.value("student", "grounding") - g.value("constant", "grounding") > 0.7
    # Judged with the same metric: valid everywhere, and below the answers written for each concept.
    assert g.constant_summary.valid_rate == 1.0
    assert g.constant_summary.mean < student.cases[0].score
    assert g.constant_summary.mean_with_errors_as_zero < sum(c.score for c in student.cases) / 4 - 0.1


def test_a_student_that_copies_one_answer_grounds_like_the_constant():
    answers = specific_answers()
    copy = answers["POCON-0003"]
    g = ground_runs({"student": run_of("student", {cid: copy for cid in answers}), "teacher": run_of("teacher", answers)})
    assert g.value("student", "grounding") == pytest.approx(0.25)
    assert g.value("student", "grounding") - g.value("constant", "grounding") == pytest.approx(0.0)


def test_the_most_common_teacher_answer_is_the_constant():
    a, b, c = (("v: 1", "r: 1"), ("v: 2", "r: 2"), ("v: 3", "r: 3"))
    pick = pick_constant([("C1", *a), ("C2", *b), ("C3", *b), ("C4", *c)], "teacher")
    assert (pick.vision, pick.concept_id, pick.occurrences, pick.pool) == ("v: 2", "C2", 2, 4)
    assert pick_constant([("C1", *a), ("C2", *b), ("C3", *c)], "teacher").concept_id == "C1"  # all differ: the first
    assert pick_constant([("C1", *a), ("C2", *b), ("C3", *b), ("C4", *a)], "teacher").concept_id == "C1"  # a tie: the earliest
    # Format errors are never the constant; none valid, no constant.
    assert pick_constant([("C1", "- a list", "r: 1"), ("C2", "- a list", "r: 1"), ("C3", *c)], "teacher").concept_id == "C3"
    assert pick_constant([("C1", None, "r: 1"), ("C2", "v: [", "r: 1")], "teacher") is None


def test_without_a_teacher_run_the_reference_answers_are_the_teachers():
    answers = specific_answers()
    student = run_of("student", answers)
    for case, (v, r) in zip(student.cases, answers.values(), strict=True):
        case.reference = {"vision_yaml": v, "review_yaml": r, "score": 1.0}
    found, origin = teacher_answers({"student": student})
    assert origin == "reference answers" and [cid for cid, _v, _r in found] == list(answers)
    g = ground_runs({"student": student})
    assert g.constant.origin == "reference answers" and g.sides["constant"].name_match == pytest.approx(0.25)
    # Nothing to take the constant from: said, not guessed.
    bare = ground_runs({"student": run_of("student", answers)})
    assert bare.constant is None and "no teacher answers" in bare.notes[0] and "constant" not in bare.sides
