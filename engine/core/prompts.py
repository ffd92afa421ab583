"""Prompts: the teacher's system prompt and the ONE student prompt renderer.

Training, evaluation and the teacher's user message all call `render_student_prompt`, so the
student is evaluated on exactly the layout it was trained on (the replaced system trained and
evaluated on two different layouts). The layout keeps the `CONCEPT:` / `REQUIREMENTS:` /
`Respond only` markers, so concept and requirements can be recovered from any prompt we wrote.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

from engine.errors import InputError
from engine.store.inputfile import MIB, read_text

TEACHER_PROMPT_FILE = "product_owner.md"
STUDENT_PROMPT_FILE = "student.md"


def prompts_dir() -> Path:
    """`$PO_TUI_PROMPTS_DIR`; else the installed `engine.prompts`; else the checkout's `prompts/`.

    The repository's top-level prompts/ is the one source. pyproject maps it to the package
    `engine.prompts`: a wheel ships it as engine/prompts/, an editable install points the name
    at prompts/ in the checkout. A checkout run without any install (or an editable install made
    before that mapping) has no such package, so the folder next to engine/ is the fallback.
    """
    override = os.environ.get("PO_TUI_PROMPTS_DIR")
    if override:
        return Path(override)
    try:
        spec = importlib.util.find_spec("engine.prompts")
    except ImportError:
        spec = None
    # A folder of .md files and no __init__.py: a namespace package, found by its locations.
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / TEACHER_PROMPT_FILE).is_file():
            return Path(location)
    return Path(__file__).resolve().parents[2] / "prompts"


PROMPT_MAX_BYTES = MIB  # a template is a page of text; more is the wrong file


@lru_cache(maxsize=16)
def _read(path: str) -> str:
    return read_text(path, what="a prompt template", max_bytes=PROMPT_MAX_BYTES)


def teacher_system_prompt(path: str | Path | None = None) -> str:
    return _read(str(path or prompts_dir() / TEACHER_PROMPT_FILE)).strip()


def student_template(path: str | Path | None = None) -> str:
    text = _read(str(path or prompts_dir() / STUDENT_PROMPT_FILE))
    for marker in ("{{concept}}", "{{requirements_yaml}}"):
        if marker not in text:
            raise InputError(f"student prompt template lacks {marker}", path=path or STUDENT_PROMPT_FILE)
    return text.strip()


def template_id(path: str | Path | None = None) -> str:
    """A short id of the student template, recorded in datasets and eval results."""
    digest = hashlib.sha256(student_template(path).encode("utf-8")).hexdigest()
    return f"student-{digest[:12]}"


def render_student_prompt(
    concept: str, requirements_yaml: str, *, template: str | Path | None = None
) -> str:
    """The student's full instruction for one concept (also the teacher's user message)."""
    text = student_template(template)
    return text.replace("{{concept}}", concept.strip()).replace(
        "{{requirements_yaml}}", requirements_yaml.strip()
    )


def student_messages(
    concept: str, requirements_yaml: str, *, template: str | Path | None = None
) -> list[dict[str, str]]:
    """Chat form of the same prompt, for tokenizers with a chat template."""
    return [{"role": "user", "content": render_student_prompt(concept, requirements_yaml, template=template)}]


def teacher_retry_instruction(reason: str, detail: str | None) -> str:
    """The corrective follow-up sent after a format error, naming what was wrong."""
    what = {
        "missing_vision_block": "the ```yaml VISION block was missing",
        "missing_review_block": "the ```yaml REVIEW block was missing",
        "invalid_vision_yaml": "the VISION block was not valid YAML",
        "invalid_review_yaml": "the REVIEW block was not valid YAML",
        "vision_not_mapping": "the VISION block was not a YAML mapping",
        "review_not_mapping": "the REVIEW block was not a YAML mapping",
    }.get(reason, reason)
    extra = f" ({detail})" if detail else ""
    return (
        f"Your previous answer could not be used: {what}{extra}. Answer again with exactly two "
        "fenced YAML blocks, ```yaml VISION first and ```yaml REVIEW second, each a valid YAML "
        "mapping with every required key, quoting list items that contain ': '."
    )


# --- model input (training and evaluation share this, so the student sees one layout) ---------

PLAIN_SEPARATOR = "\n\n"


def use_chat_template(tokenizer, mode: str = "auto") -> bool:
    """`auto`: the tokenizer's chat template when the base has one; `on`/`off` force it."""
    if mode == "on":
        if not getattr(tokenizer, "chat_template", None):
            raise InputError("the tokenizer has no chat template", field="chat_template")
        return True
    if mode == "off":
        return False
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text_for_model(tokenizer, prompt: str, *, chat: bool) -> str:
    """The exact text the model is conditioned on before its answer."""
    if chat:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt + PLAIN_SEPARATOR


def encode_prompt(tokenizer, prompt: str, *, chat: bool) -> list[int]:
    text = prompt_text_for_model(tokenizer, prompt, chat=chat)
    # A chat template writes its own special tokens; a plain prompt gets the tokenizer's (BOS, if any).
    return list(tokenizer(text, add_special_tokens=not chat)["input_ids"])


def encode_response(tokenizer, response: str) -> list[int]:
    """The answer's tokens plus EOS, so the student learns to stop after the REVIEW block."""
    ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids
