"""Every rule of docs/metric.md, each po-v1 quirk and each po-v2 fix, on hand-built answers."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.core.metric import (
    check_metric,
    parse_block,
    product_owner_metric,
    requirements_of,
    review_segments,
    status_consistent,
    tokens,
)
from tests.po_samples import ALL_IDS, DELETE, REQUIREMENTS, REQUIREMENTS_YAML, dump, review, vision

STEP = 30 / 16


def score(v, r, q=REQUIREMENTS_YAML, metric="po-v2"):
    return product_owner_metric(v, r, q, metric=metric)


# --- the reference answer ---------------------------------------------------------------------


def test_perfect_answer_v2_is_one_and_v1_tops_out_below():
    v2 = score(dump(vision()), dump(review()))
    assert v2.breakdown == {"schema": 30.0, "vision": 30.0, "alignment": 30.0, "specificity": 30.0}
    assert v2.score == 1.0
    v1 = score(dump(vision()), dump(review()), metric="po-v1")
    # v1 gives only 2 points each for empty gaps/conflicts lists: D = 6 + 12 + 2 + 2 + 6.
    assert v1.breakdown["specificity"] == 28.0
    assert v1.score == pytest.approx(118 / 120)


def test_accepts_parsed_mappings_and_text_alike():
    assert score(vision(), review(), REQUIREMENTS).score == score(dump(vision()), dump(review())).score


def test_unknown_metric_rejected():
    with pytest.raises(ValueError, match="unknown metric"):
        product_owner_metric({}, {}, {}, metric="po-v3")
    assert check_metric("po-v1") == "po-v1"


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "   ", "a: [unclosed", "- a list\n- of items", "just a string", "42", None, 3.5])
def test_unusable_blocks_become_empty_mapping(bad):
    assert parse_block(bad, "po-v1") == {}
    assert parse_block(bad, "po-v2") == {}
    result = score(bad, bad)
    assert 0.0 <= result.score <= 1.0


def test_empty_everything_scores_v1_credit_for_missing_alignment_only():
    v1 = score("", "", metric="po-v1")
    # Only check 11 passes in v1 (requirements_alignment missing counts as fine).
    assert v1.breakdown["schema"] == pytest.approx(STEP)
    assert v1.breakdown == {"schema": STEP, "vision": 0.0, "alignment": 0.0, "specificity": 0.0}
    v2 = score("", "")
    assert v2.breakdown["schema"] == 0.0
    assert v2.score == 0.0


def test_v2_strips_fences_and_leading_brackets_v1_does_not():
    text = "```yaml\n" + dump(vision()) + "```"
    assert parse_block(text, "po-v2") == vision()
    assert parse_block(text, "po-v1") == {}
    assert parse_block("]]" + dump(vision()), "po-v2") == vision()
    assert parse_block("]]" + dump(vision()), "po-v1") == {}
    assert parse_block("```yml anything here\nproduct_name: X\n```", "po-v2") == {"product_name": "X"}


def test_non_mapping_yaml_does_not_raise_in_either_version():
    for metric in ("po-v1", "po-v2"):
        result = score("- a\n- b", "[1, 2]", "just text", metric=metric)
        assert result.breakdown["alignment"] == 0.0


# --- A. schema --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"product_name": "   "},
        {"product_name": 7},
        {"product_summary": "too short to count"},
        {"target_users": []},
        {"value_proposition": "not a list"},
        {"key_capabilities": DELETE},
        {"non_goals": "none"},
        {"success_metrics": []},
        {"last_updated": "10 Nov 2025"},
    ],
)
def test_each_vision_schema_check_costs_one_step(change):
    base = score(vision(), review()).breakdown["schema"]
    assert score(vision(**change), review()).breakdown["schema"] == pytest.approx(base - STEP)


def test_non_goals_may_be_empty():
    assert score(vision(non_goals=[]), review()).breakdown["schema"] == 30.0


@pytest.mark.parametrize(
    "change",
    [
        {"status": "gaps"},
        {"status": "Aligned"},
        {"summary": []},
        {"recommended_actions": DELETE},
        {"narrative": "Short narrative."},
    ],
)
def test_each_review_schema_check_costs_one_step(change):
    assert score(vision(), review(**change)).breakdown["schema"] == pytest.approx(30 - STEP)


@pytest.mark.parametrize("key", ["aligned", "gaps", "conflicts"])
def test_alignment_lists_must_be_lists(key):
    r = review()
    r["requirements_alignment"][key] = "none"
    assert score(vision(), r).breakdown["schema"] == pytest.approx(30 - STEP)


def test_v1_unquoted_date_fails_quirk_and_v2_accepts_dates():
    unquoted = dump(vision()).replace("'2025-11-10'", "2025-11-10")
    assert parse_block(unquoted, "po-v1")["last_updated"] == dt.date(2025, 11, 10)
    assert score(unquoted, dump(review()), metric="po-v1").breakdown["schema"] == pytest.approx(30 - STEP)
    assert score(unquoted, dump(review())).breakdown["schema"] == 30.0
    stamp = dump(vision()).replace("'2025-11-10'", "2023-10-27 10:00:00+00:00")
    assert score(stamp, dump(review()), metric="po-v1").breakdown["schema"] == pytest.approx(30 - STEP)
    assert score(stamp, dump(review())).breakdown["schema"] == 30.0


def test_iso_strings_with_z_pass_both():
    v = vision(last_updated="2025-11-10T09:30:00Z")
    assert score(v, review(), metric="po-v1").breakdown["schema"] == 30.0
    assert score(v, review()).breakdown["schema"] == 30.0


def test_v1_missing_requirements_alignment_passes_check_v2_does_not():
    r = review(requirements_alignment=DELETE)
    # v1: check 11 passes; checks 12-14 fail (align = {}).
    assert score(vision(), r, metric="po-v1").breakdown["schema"] == pytest.approx(30 - 3 * STEP)
    assert score(vision(), r).breakdown["schema"] == pytest.approx(30 - 4 * STEP)
    falsy = review(requirements_alignment=[])
    assert score(vision(), falsy, metric="po-v1").breakdown["schema"] == pytest.approx(30 - 3 * STEP)
    not_mapping = review(requirements_alignment=["FR001"])
    assert score(vision(), not_mapping, metric="po-v1").breakdown["schema"] == pytest.approx(30 - 4 * STEP)


# --- B. vision completeness -------------------------------------------------------------------


def test_vision_points_per_list_and_summary_length():
    v = vision(target_users=["One"], value_proposition=[], key_capabilities="x")
    # 3 (one item) + 0 + 0 + 6 (success_metrics) + 6 (summary >= 120)
    assert score(v, review()).breakdown["vision"] == 15.0
    assert score(vision(product_summary="x" * 60), review()).breakdown["vision"] == 27.0
    assert score(vision(product_summary="x" * 59), review()).breakdown["vision"] == 24.0
    assert score(vision(product_summary="  " + "x" * 119 + "   "), review()).breakdown["vision"] == 27.0


# --- C. requirements alignment ----------------------------------------------------------------


def test_requirements_parsing_ignores_non_mappings_and_keeps_either_field():
    q = {
        "functional_requirements": [{"id": "FR001"}, "loose string", {"description": "no id"}, {"id": None, "description": None}],
        "constraints": {"not": "a list"},
    }
    assert requirements_of(q) == [("FR001", ""), ("", "no id")]


def test_no_requirements_means_zero_alignment():
    assert score(vision(), review(), "title: nothing listed").breakdown["alignment"] == 0.0


def test_coverage_ladder_points():
    # Structure fixed at 0 (aligned is not a list) so C is the ladder alone (v1, no gap/conflict bonus).
    def alignment_with(ids: list[str]) -> float:
        r = review(summary=[f"Covers {i}." for i in ids] or ["Nothing"], narrative="n" * 10, recommended_actions=["x"])
        r["requirements_alignment"] = {"aligned": "see summary", "gaps": [], "conflicts": []}
        return score(vision(), r, metric="po-v1").breakdown["alignment"]

    assert alignment_with(ALL_IDS) == 22.0  # c = 1
    assert alignment_with(ALL_IDS[:7]) == pytest.approx(16 + (7 / 9 - 0.70) / 0.15 * 6)
    assert alignment_with(ALL_IDS[:5]) == pytest.approx(8 + (5 / 9 - 0.50) / 0.20 * 8)
    assert alignment_with(ALL_IDS[:2]) == pytest.approx(2 / 9 * 8)


def test_description_overlap_covers_without_id():
    r = review(summary=["Dispatch technicians quickly to urgent repair work."], recommended_actions=["x"], narrative="x")
    r["requirements_alignment"] = {"aligned": "x", "gaps": [], "conflicts": []}
    # FR001's tokens: dispatch, technicians, to, urgent, repair, jobs -> 4/6 overlap >= 0.3
    c = score(vision(), r, metric="po-v1").breakdown["alignment"]
    assert c == pytest.approx(1 / 9 * 8)


def test_tokens_lowercase_spanish_letters_and_stopwords():
    assert tokens("The API para Gestión CRUD users Ñandú 42") == {"gestión", "ñandú", "42"}
    assert tokens("naïve") == {"na", "ve"}  # ï is outside the token class


def test_structure_points_from_aligned_list_length():
    r = review()
    r["requirements_alignment"]["aligned"] = r["requirements_alignment"]["aligned"][:3]
    r["summary"] = [f"{rid} noted" for rid in ALL_IDS]
    c = score(vision(), r, metric="po-v1").breakdown["alignment"]
    assert c == pytest.approx(22 + 8 * 3 / 9)


def test_v1_id_substring_quirk_and_v2_whole_token():
    q = dump({"functional_requirements": [{"id": "FR001", "description": ""}]})
    r = review(summary=["NFR001 only"], recommended_actions=["none"], narrative="none")
    r["requirements_alignment"] = {"aligned": [], "gaps": [], "conflicts": []}
    assert score(vision(), r, q, metric="po-v1").breakdown["alignment"] == 22.0
    # v2: not covered (c = 0), structure 0, status aligned with empty lists -> consistency 6
    assert score(vision(), r, q).breakdown["alignment"] == 6.0


def test_v2_hyphenated_ids_match_both_ways():
    q = dump({"functional_requirements": [{"id": "FR-001", "description": ""}, {"id": "FR002", "description": ""}]})
    r = review(summary=["FR001 and fr-002 are fine"], recommended_actions=["none"], narrative="none")
    r["requirements_alignment"] = {"aligned": [], "gaps": [], "conflicts": []}
    assert score(vision(), r, q).breakdown["alignment"] == pytest.approx(16.0 + 6.0)


def test_v1_dict_repr_quirk_and_v2_key_value_text():
    r = {"requirements_alignment": {"aligned": [{"FR001": "Dispatch works"}]}}
    assert review_segments(r, r["requirements_alignment"], "po-v1") == ["{'FR001': 'Dispatch works'}"]
    assert review_segments(r, r["requirements_alignment"], "po-v2") == ["FR001: Dispatch works"]
    # The YAML that produces it: an unquoted "- FR001: text" line.
    parsed = parse_block("requirements_alignment:\n  aligned:\n  - FR001: Dispatch works\n", "po-v1")
    assert parsed["requirements_alignment"]["aligned"] == [{"FR001": "Dispatch works"}]


def test_segments_order_and_plain_string_fields():
    r = {
        "summary": "one string",
        "recommended_actions": ["a1", "a2"],
        "narrative": "the end",
        "requirements_alignment": {"aligned": ["x"], "gaps": "ignored", "conflicts": ["c"]},
    }
    assert review_segments(r, r["requirements_alignment"], "po-v1") == ["one string", "a1", "a2", "x", "c", "the end"]


def test_v1_bonus_for_non_empty_gaps_and_conflicts():
    r = review(status="needs_adjustment")
    r["requirements_alignment"]["gaps"] = ["FR003 lacks a format"]
    r["requirements_alignment"]["conflicts"] = ["C002 conflicts"]
    # v1: ladder 22 + structure 8 + 3 + 3 = 36 -> capped at 30
    assert score(vision(), r, metric="po-v1").breakdown["alignment"] == 30.0
    r2 = review()
    r2["requirements_alignment"]["aligned"] = r2["requirements_alignment"]["aligned"][:4]
    r2["requirements_alignment"]["gaps"] = ["More detail on FR003"]
    r2["summary"] = [f"{rid} noted" for rid in ALL_IDS]
    assert score(vision(), r2, metric="po-v1").breakdown["alignment"] == pytest.approx(22 + 8 * 4 / 9 + 3)
    # v2 gives no bonus for inventing problems, only consistency: aligned + non-empty gaps = 0
    assert score(vision(), r2).breakdown["alignment"] == pytest.approx(16 + 8 * 4 / 9)


@pytest.mark.parametrize(
    ("status", "gaps", "conflicts", "ok"),
    [
        ("aligned", [], [], True),
        ("aligned", ["g"], [], False),
        ("aligned", [], "none", False),
        ("needs_adjustment", ["g"], [], True),
        ("needs_adjustment", [], ["c"], True),
        ("needs_adjustment", [], [], False),
        ("misaligned", [], ["c"], True),
        ("misaligned", ["g"], [], False),
        ("gaps", ["g"], [], False),
    ],
)
def test_v2_status_consistency(status, gaps, conflicts, ok):
    r = {"status": status}
    align = {"gaps": gaps, "conflicts": conflicts}
    assert status_consistent(r, align) is ok


# --- D. specificity ---------------------------------------------------------------------------


def test_specificity_points():
    r = review(summary=["one"], recommended_actions=["one"], narrative="n" * 80)
    # v2: 3 + 6 + 4 + 4 + 3
    assert score(vision(), r).breakdown["specificity"] == 20.0
    # v1: 3 + 6 + 2 + 2 + 3
    assert score(vision(), r, metric="po-v1").breakdown["specificity"] == 16.0
    r["requirements_alignment"]["gaps"] = ["g"]
    r["requirements_alignment"]["conflicts"] = ["c"]
    assert score(vision(), r, metric="po-v1").breakdown["specificity"] == 24.0
    assert score(vision(), r).breakdown["specificity"] == 20.0
    r["requirements_alignment"] = "not a mapping"
    assert score(vision(), r).breakdown["specificity"] == 12.0
    assert score(vision(), review(narrative="n" * 79)).breakdown["specificity"] == 26.0


def test_score_is_clamped_and_sum_over_120():
    result = score(vision(), review())
    assert result.score == min(1.0, sum(result.breakdown.values()) / 120)
