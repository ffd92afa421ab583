"""Block extraction and the format_error reasons."""

from __future__ import annotations

import pytest

from engine.core.blocks import REASONS, check_pair, check_text, extract_blocks, render_response

VISION = "product_name: Scheduler\nproduct_summary: A scheduler.\n"
REVIEW = "status: aligned\nsummary:\n- fine\n"


def answer(vision=VISION, review=REVIEW, *, vlabel="yaml VISION", rlabel="yaml REVIEW"):
    return f"```{vlabel}\n{vision}```\n```{rlabel}\n{review}```\n"


def test_canonical_answer_is_valid_and_round_trips():
    text = render_response(VISION, REVIEW)
    ex, check = check_text(text)
    assert check.valid and check.reason is None and check.notes == ()
    assert ex.vision_text == VISION.rstrip("\n")
    assert ex.review_text == REVIEW.rstrip("\n")


def test_yml_and_case_insensitive_labels():
    ex, check = check_text(answer(vlabel="yml vision", rlabel="YAML Review"))
    assert check.valid
    assert ex.vision_text.startswith("product_name")


def test_extra_prose_is_noted_not_fatal():
    text = "Sure! Here are the blocks:\n" + answer() + "\nHope this helps."
    _, check = check_text(text)
    assert check.valid
    assert "prose_outside_blocks" in check.notes


def test_wrong_order_is_noted_not_fatal():
    text = f"```yaml REVIEW\n{REVIEW}```\n```yaml VISION\n{VISION}```\n"
    ex, check = check_text(text)
    assert check.valid
    assert "review_before_vision" in check.notes
    assert ex.review_text.startswith("status")


def test_duplicated_block_first_wins():
    text = answer() + "```yaml VISION\nproduct_name: Second\n```\n"
    ex, check = check_text(text)
    assert check.valid
    assert "duplicate_vision_block" in check.notes
    assert "Scheduler" in ex.vision_text


def test_missing_fence_label_or_language_is_missing_block():
    _, check = check_text(f"```yaml\n{VISION}```\n```yaml REVIEW\n{REVIEW}```")
    assert check.reason == "missing_vision_block"
    _, check = check_text(f"```yaml VISION\n{VISION}```\n```REVIEW\n{REVIEW}```")
    assert check.reason == "missing_review_block"
    _, check = check_text("VISION:\n" + VISION + "REVIEW:\n" + REVIEW)
    assert check.reason == "missing_vision_block"
    assert "no ```yaml VISION block" in check.detail


def test_unclosed_block_counts_as_missing_with_detail():
    text = f"```yaml VISION\n{VISION}```\n```yaml REVIEW\n{REVIEW}"  # truncated answer
    _, check = check_text(text)
    assert check.reason == "missing_review_block"
    assert "never closed" in check.detail and "line 5" in check.detail


def test_empty_block_is_missing():
    _, check = check_text(answer(review="\n"))
    assert check.reason == "missing_review_block"


def test_invalid_yaml_reports_line_and_column():
    broken = "status: aligned\nsummary:\n- fine\nnarrative: first line\nwrapped at column one: bad\n  - x: [\n"
    _, check = check_text(answer(review=broken))
    assert check.reason == "invalid_review_yaml"
    assert check.line is not None and check.column is not None
    assert f"line {check.line}, column {check.column}" in check.detail


def test_wrapped_id_line_is_invalid_vision_yaml():
    broken = "product_name: X\nkey_capabilities:\n- FR001: does a thing\nthat wraps: badly: here\n"
    _, check = check_text(answer(vision=broken))
    assert check.reason == "invalid_vision_yaml"
    assert check.line == 4


def test_not_mapping_reasons():
    _, check = check_text(answer(vision="- a\n- b\n"))
    assert check.reason == "vision_not_mapping"
    assert "list" in check.detail
    _, check = check_text(answer(review="just text\n"))
    assert check.reason == "review_not_mapping"


def test_vision_problem_reported_before_review_problem():
    _, check = check_text("nothing here")
    assert check.reason == "missing_vision_block"


@pytest.mark.parametrize(
    ("vision", "review", "reason"),
    [
        (None, REVIEW, "missing_vision_block"),
        (VISION, "", "missing_review_block"),
        ("a: [", REVIEW, "invalid_vision_yaml"),
        (VISION, "- x", "review_not_mapping"),
        (VISION, REVIEW, None),
    ],
)
def test_check_pair(vision, review, reason):
    assert check_pair(vision, review).reason == reason


def test_reason_codes_are_the_documented_six():
    assert set(REASONS) == {
        "missing_vision_block",
        "missing_review_block",
        "invalid_vision_yaml",
        "invalid_review_yaml",
        "vision_not_mapping",
        "review_not_mapping",
    }


def test_fence_inside_content_ends_block():
    text = "```yaml VISION\nproduct_name: X\n```\nproduct_summary: lost\n```yaml REVIEW\nstatus: aligned\n```"
    ex = extract_blocks(text)
    assert ex.vision_text == "product_name: X"
    assert ex.prose
