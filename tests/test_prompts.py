"""The single student prompt renderer and the teacher prompt."""

from __future__ import annotations

from engine.core.metric import ALLOWED_STATUSES
from engine.core.prompts import (
    render_student_prompt,
    student_messages,
    teacher_retry_instruction,
    teacher_system_prompt,
    template_id,
)
from engine.core.records import split_prompt


def test_student_prompt_states_format_keys_statuses_and_ids():
    text = render_student_prompt("A concept.", "title: T\nfunctional_requirements: []\n")
    for needle in ("```yaml VISION", "```yaml REVIEW", "requirements_alignment", "recommended_actions",
                   "narrative", "last_updated", "FR001", "NFR002", "C001", *ALLOWED_STATUSES):
        assert needle in text, needle
    assert split_prompt(text) == ("A concept.", "title: T\nfunctional_requirements: []")


def test_teacher_prompt_states_the_contract():
    text = teacher_system_prompt()
    for needle in ("```yaml VISION", "```yaml REVIEW", "non_goals", "success_metrics", "gaps", "conflicts",
                   *ALLOWED_STATUSES, "requirement ids"):
        assert needle in text, needle


def test_chat_messages_carry_the_same_prompt():
    msgs = student_messages("C", "title: T")
    assert msgs == [{"role": "user", "content": render_student_prompt("C", "title: T")}]


def test_template_id_is_stable():
    assert template_id() == template_id()
    assert template_id().startswith("student-")


def test_retry_instruction_names_the_problem():
    text = teacher_retry_instruction("invalid_review_yaml", "REVIEW YAML line 4, column 1: bad")
    assert "REVIEW block was not valid YAML" in text and "line 4" in text
