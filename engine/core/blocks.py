"""Find the VISION and REVIEW fenced YAML blocks in a model's text and judge their validity.

The answer format (docs/formats.md): a fence line starts with three backticks, `yaml` or `yml`,
whitespace, the label (case-insensitive), and the block runs up to the next line that is three
backticks. The first block with each label wins. Validity (docs/metric.md): both blocks found
and each parses to a mapping; otherwise a format_error with one of the reasons below. Oddities
that do not make a sample invalid (prose around the blocks, REVIEW first, a repeated block) are
kept as `notes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.core.yamltext import YamlProblem, load_yaml

LABELS = ("VISION", "REVIEW")

MISSING_VISION = "missing_vision_block"
MISSING_REVIEW = "missing_review_block"
INVALID_VISION = "invalid_vision_yaml"
INVALID_REVIEW = "invalid_review_yaml"
VISION_NOT_MAPPING = "vision_not_mapping"
REVIEW_NOT_MAPPING = "review_not_mapping"
REASONS = (
    MISSING_VISION,
    MISSING_REVIEW,
    INVALID_VISION,
    INVALID_REVIEW,
    VISION_NOT_MAPPING,
    REVIEW_NOT_MAPPING,
)

_OPEN_RE = re.compile(r"^```(?:yaml|yml)[ \t]+(vision|review)\b.*$", re.IGNORECASE)
_CLOSE_RE = re.compile(r"^\s*```\s*$")


@dataclass(frozen=True)
class Block:
    label: str
    text: str
    start_line: int  # 1-based line of the opening fence in the whole text
    closed: bool


@dataclass(frozen=True)
class FormatCheck:
    """Validity of one sample: the first failing reason (or None) and a readable detail."""

    valid: bool
    reason: str | None = None
    detail: str | None = None
    line: int | None = None  # 1-based, within the block's YAML, for invalid_*_yaml
    column: int | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"valid": self.valid, "reason": self.reason}
        if self.detail:
            out["detail"] = self.detail
        if self.line is not None:
            out["line"], out["column"] = self.line, self.column
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class Extraction:
    """Blocks found in a text: the winning VISION/REVIEW plus what else was seen."""

    vision: Block | None = None
    review: Block | None = None
    duplicates: list[str] = field(default_factory=list)
    prose: bool = False
    order: list[str] = field(default_factory=list)

    @property
    def vision_text(self) -> str | None:
        return self.vision.text if self.vision and self.vision.closed else None

    @property
    def review_text(self) -> str | None:
        return self.review.text if self.review and self.review.closed else None


def extract_blocks(text: str) -> Extraction:
    """Scan `text` line by line for labelled fences; never raises."""
    out = Extraction()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _OPEN_RE.match(lines[i].strip())
        if not match:
            if lines[i].strip():
                out.prose = True
            i += 1
            continue
        label = match.group(1).upper()
        start = i
        i += 1
        body: list[str] = []
        closed = False
        while i < len(lines):
            if _CLOSE_RE.match(lines[i]):
                closed = True
                i += 1
                break
            body.append(lines[i])
            i += 1
        block = Block(label, "\n".join(body), start + 1, closed)
        out.order.append(label)
        current = out.vision if label == "VISION" else out.review
        if current is None or (not current.closed and closed):
            if label == "VISION":
                out.vision = block
            else:
                out.review = block
        else:
            out.duplicates.append(label)
    return out


def _check_block(label: str, text: str | None, block: Block | None) -> FormatCheck | None:
    missing = MISSING_VISION if label == "VISION" else MISSING_REVIEW
    invalid = INVALID_VISION if label == "VISION" else INVALID_REVIEW
    not_mapping = VISION_NOT_MAPPING if label == "VISION" else REVIEW_NOT_MAPPING
    if block is not None and not block.closed:
        return FormatCheck(
            False, missing, f"{label} fence opened at line {block.start_line} is never closed"
        )
    if text is None or not text.strip():
        detail = f"no ```yaml {label} block" if text is None else f"{label} block is empty"
        return FormatCheck(False, missing, detail)
    value, problem = load_yaml(text)
    if problem is not None:
        return _yaml_failure(invalid, label, problem)
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "null"
        return FormatCheck(False, not_mapping, f"{label} YAML is a {kind}, not a mapping")
    return None


def _yaml_failure(reason: str, label: str, problem: YamlProblem) -> FormatCheck:
    return FormatCheck(
        False, reason, f"{label} YAML {problem.describe()}", problem.line, problem.column
    )


def _notes(ex: Extraction) -> tuple[str, ...]:
    notes: list[str] = []
    if ex.order[:2] == ["REVIEW", "VISION"] or (ex.order and ex.order[0] == "REVIEW"):
        notes.append("review_before_vision")
    for label in ex.duplicates:
        notes.append(f"duplicate_{label.lower()}_block")
    if ex.prose:
        notes.append("prose_outside_blocks")
    return tuple(notes)


def check_text(text: str) -> tuple[Extraction, FormatCheck]:
    """Extract both blocks from a raw model answer and judge validity."""
    ex = extract_blocks(text)
    notes = _notes(ex)
    for label, block in (("VISION", ex.vision), ("REVIEW", ex.review)):
        failure = _check_block(label, block.text if block else None, block)
        if failure is not None:
            return ex, FormatCheck(
                False, failure.reason, failure.detail, failure.line, failure.column, notes
            )
    return ex, FormatCheck(True, notes=notes)


def check_pair(vision: str | None, review: str | None) -> FormatCheck:
    """Validity of already separated block texts (teacher and validation records)."""
    for label, text in (("VISION", vision), ("REVIEW", review)):
        failure = _check_block(label, text, None)
        if failure is not None:
            return failure
    return FormatCheck(True)


def render_response(vision: str, review: str) -> str:
    """The canonical answer: the VISION fence block, a newline, the REVIEW fence block."""
    return (
        f"```yaml VISION\n{vision.strip(chr(10))}\n```\n"
        f"```yaml REVIEW\n{review.strip(chr(10))}\n```"
    )
