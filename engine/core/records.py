"""Record formats (docs/formats.md): read every layout users already have, write ours.

Readers turn any supported file into `Sample`s (one PO answer with its concept) or `Concept`s:
- concept records (`concepts.jsonl`);
- teacher records, ours and the replaced system's legacy ones without ids or metadata;
- the validation layout (`input` = concept, `output` = granite4 answer, top-level `score`);
- supervised prompt/response pairs, concept and requirements recovered from the prompt
  (newer layout ends the requirements at `Respond only`, older at `IMPORTANT:`);
- evaluation-result JSON (ours and the old ones), joined to concepts by `concept_id`.
Bad records raise `InputError` naming file, line and field; nothing is skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from engine.core.blocks import FormatCheck, check_pair, check_text, render_response
from engine.core.yamltext import load_yaml
from engine.errors import InputError
from engine.store.inputfile import loads_json, open_input, read_bytes, read_json, read_text
from engine.store.jsonl import Warn, iter_jsonl

TIERS = ("simple", "medium", "corporate")

LAYOUT_CONCEPT = "concept"
LAYOUT_TEACHER = "teacher"
LAYOUT_LEGACY_TEACHER = "legacy_teacher"
LAYOUT_VALIDATION = "validation"
LAYOUT_SUPERVISED = "supervised"
LAYOUT_CHAT = "chat"
LAYOUT_EVAL_CASE = "eval_result"

_TIER_RE = re.compile(r"\btargeting (simple|medium|corporate) operations\b", re.IGNORECASE)
_PROMPT_ENDS = ("\n\nRespond only", "\n\nIMPORTANT:")


@dataclass
class Concept:
    concept: str
    requirements_yaml: str
    concept_id: str | None = None
    tier: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Content identity: the same concept text and requirements give the same key."""
        return concept_key(self.concept, self.requirements_yaml)

    def to_dict(self) -> dict[str, Any]:
        return {
            "concept_id": self.concept_id,
            "concept": self.concept,
            "requirements_yaml": self.requirements_yaml,
            "tier": self.tier,
            "metadata": self.metadata,
        }


@dataclass
class Sample:
    """One Product Owner answer (VISION + REVIEW) for one concept, as found in some file."""

    id: str
    layout: str
    concept: Concept | None
    vision: str | None = None
    review: str | None = None
    raw: str | None = None
    line: int | None = None
    recorded_score: float | None = None
    recorded_status: str | None = None
    recorded_metric: str | None = None
    where: str = ""  # "line 12" or "results[3]": where the record sits, for error messages
    record: dict = field(default_factory=dict)

    def format_check(self) -> FormatCheck:
        """Validity (docs/metric.md): from the raw answer when there is one, else the two blocks."""
        if self.raw is not None:
            return check_text(self.raw)[1]
        return check_pair(self.vision, self.review)

    def blocks(self) -> tuple[str | None, str | None]:
        """The VISION and REVIEW texts to score (extracted from the raw answer if needed)."""
        vision, review = self.vision, self.review
        if (vision is None or review is None) and self.raw is not None:
            ex = check_text(self.raw)[0]
            vision = vision if vision is not None else ex.vision_text
            review = review if review is not None else ex.review_text
        return vision, review


def concept_key(concept: str, requirements_yaml: str) -> str:
    norm = " ".join(concept.split()) + "\x00" + "\n".join(
        line.rstrip() for line in requirements_yaml.strip().splitlines()
    )
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


def guess_tier(concept: str) -> str | None:
    """The reference concepts say 'targeting <tier> operations'; recover the tier from that."""
    match = _TIER_RE.search(concept)
    return match.group(1).lower() if match else None


# --- field access with located errors ---------------------------------------------------------


class _Fields:
    """Typed access to one record's fields; every failure names file, line and field."""

    def __init__(self, obj: Any, path: str | Path, line: int | None, prefix: str = "") -> None:
        if not isinstance(obj, dict):
            raise InputError(
                f"expected a JSON object, got {type(obj).__name__}", path=path, line=line, field=prefix or None
            )
        self.obj, self.path, self.line, self.prefix = obj, path, line, prefix

    def _err(self, name: str, message: str) -> InputError:
        return InputError(message, path=self.path, line=self.line, field=f"{self.prefix}{name}")

    def str(self, name: str, *, required: bool = True, nonempty: bool = False) -> str | None:
        value = self.obj.get(name)
        if value is None:
            if required:
                raise self._err(name, "missing (required string)")
            return None
        if not isinstance(value, str):
            raise self._err(name, f"expected a string, got {type(value).__name__}")
        if nonempty and not value.strip():
            raise self._err(name, "empty string")
        return value

    def number(self, name: str) -> float | None:
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._err(name, f"expected a number, got {type(value).__name__}")
        return float(value)

    def int(self, name: str) -> int | None:
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._err(name, f"expected an integer, got {type(value).__name__}")
        return value

    def dict(self, name: str) -> dict:
        value = self.obj.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._err(name, f"expected an object, got {type(value).__name__}")
        return value

    def list(self, name: str) -> list:
        value = self.obj.get(name)
        if value is None:
            raise self._err(name, "missing (required list)")
        if not isinstance(value, list):
            raise self._err(name, f"expected a list, got {type(value).__name__}")
        return value

    def tier(self, name: str = "tier") -> str | None:
        value = self.str(name, required=False)
        return value.lower() if value else None

    def sub(self, name: str) -> "_Fields":
        value = self.obj.get(name)
        if not isinstance(value, dict):
            got = "missing" if value is None else f"a {type(value).__name__}"
            raise self._err(name, f"expected an object, got {got}")
        return _Fields(value, self.path, self.line, f"{self.prefix}{name}.")


# --- layouts ----------------------------------------------------------------------------------


def detect_layout(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    if "input" in obj and "output" in obj:
        return LAYOUT_VALIDATION
    if "teacher_product_vision" in obj or "teacher_product_owner_review" in obj:
        if "concept_id" in obj or "metric" in obj:
            return LAYOUT_TEACHER
        return LAYOUT_LEGACY_TEACHER
    if "prompt" in obj and "response" in obj:
        return LAYOUT_SUPERVISED
    if isinstance(obj.get("messages"), list):
        return LAYOUT_CHAT
    if "concept" in obj and "requirements_yaml" in obj:
        return LAYOUT_CONCEPT
    if "raw_response" in obj or "vision_yaml" in obj or "review_yaml" in obj:
        return LAYOUT_EVAL_CASE
    return None


def _concept_from(f: _Fields) -> Concept:
    concept = f.str("concept", nonempty=True)
    assert concept is not None
    return Concept(
        concept=concept,
        requirements_yaml=f.str("requirements_yaml", nonempty=True) or "",
        concept_id=f.str("concept_id", required=False),
        tier=f.tier() or guess_tier(concept),
        metadata=f.dict("metadata"),
    )


def split_prompt(prompt: str) -> tuple[str, str] | None:
    """(concept, requirements) from a supervised prompt, or None if the markers are absent."""
    head = "CONCEPT:\n"
    mid = "\n\nREQUIREMENTS:\n"
    start = prompt.find(head)
    if start < 0:
        return None
    start += len(head)
    middle = prompt.find(mid, start)
    if middle < 0:
        return None
    req_start = middle + len(mid)
    ends = [i for i in (prompt.find(end, req_start) for end in _PROMPT_ENDS) if i >= 0]
    req_end = min(ends) if ends else len(prompt)
    return prompt[start:middle].strip(), prompt[req_start:req_end].strip()


def sample_from_record(obj: Any, path: str | Path, line: int | None) -> Sample:
    """Any JSONL record that carries a PO answer -> Sample (concept records are not samples)."""
    layout = detect_layout(obj)
    f = _Fields(obj, path, line)
    fallback_id = f"line-{line}" if line is not None else "record"
    if layout in (LAYOUT_TEACHER, LAYOUT_LEGACY_TEACHER):
        concept = _concept_from(f)
        return Sample(
            id=concept.concept_id or fallback_id,
            layout=layout,
            concept=concept,
            vision=f.str("teacher_product_vision"),
            review=f.str("teacher_product_owner_review"),
            line=line,
            recorded_score=f.number("score"),
            # The replaced system's records carry no metric: their scores are po-v1.
            recorded_metric=f.str("metric", required=False) or "po-v1",
            where=f"line {line}",
            record=obj,
        )
    if layout == LAYOUT_VALIDATION:
        concept = _concept_from(f.sub("input"))
        out = f.sub("output")
        return Sample(
            id=concept.concept_id or fallback_id,
            layout=layout,
            concept=concept,
            vision=out.str("product_vision"),
            review=out.str("product_owner_review"),
            line=line,
            recorded_score=f.number("score"),
            recorded_metric=f.str("metric", required=False) or "po-v1",
            where=f"line {line}",
            record=obj,
        )
    if layout in (LAYOUT_SUPERVISED, LAYOUT_CHAT):
        if layout == LAYOUT_SUPERVISED:
            prompt = f.str("prompt", nonempty=True) or ""
            response = f.str("response") or ""
        else:
            prompt, response = _chat_turns(f)
        parts = split_prompt(prompt)
        if parts is None:
            raise InputError(
                "cannot recover the concept: no 'CONCEPT:' ... 'REQUIREMENTS:' section",
                path=path,
                line=line,
                field="prompt" if layout == LAYOUT_SUPERVISED else "messages",
            )
        concept = Concept(
            concept=parts[0],
            requirements_yaml=parts[1],
            concept_id=f.str("concept_id", required=False),
            tier=f.tier() or guess_tier(parts[0]),
            metadata=f.dict("metadata"),
        )
        return Sample(
            id=concept.concept_id or fallback_id,
            layout=layout,
            concept=concept,
            raw=response,
            line=line,
            recorded_score=f.number("score"),
            recorded_metric=f.str("metric", required=False) or "po-v1",
            where=f"line {line}",
            record=obj,
        )
    if layout == LAYOUT_CONCEPT:
        raise InputError(
            "a concept record has no answer to score (expected a teacher, validation, "
            "supervised or evaluation-result record)",
            path=path,
            line=line,
        )
    _refuse_half_concept(obj, path, line)
    keys = ", ".join(sorted(obj)[:8]) if isinstance(obj, dict) else type(obj).__name__
    raise InputError(
        f"unrecognised record layout (keys: {keys}); see docs/formats.md", path=path, line=line
    )


def _refuse_half_concept(obj: Any, path: str | Path, line: int | None) -> None:
    """A record with a concept but no requirements (or the reverse) is a concept record missing
    a field: say which, rather than that the layout is unrecognised."""
    if isinstance(obj, dict) and ("concept" in obj) != ("requirements_yaml" in obj):
        missing = "requirements_yaml" if "concept" in obj else "concept"
        raise InputError("missing (a concept record needs concept and requirements_yaml)", path=path, line=line, field=missing)


def _chat_turns(f: _Fields) -> tuple[str, str]:
    """(last user message, the assistant message after it) of a chat-format record."""
    messages = f.list("messages")
    prompt = response = None
    for i, message in enumerate(messages):
        m = _Fields(message, f.path, f.line, f"messages[{i}].")
        role = m.str("role")
        if role == "user":
            prompt, response = m.str("content") or "", None
        elif role == "assistant" and prompt is not None:
            response = m.str("content") or ""
    if prompt is None or response is None:
        raise f._err("messages", "expected a user message followed by an assistant message")
    return prompt, response


def concept_from_record(obj: Any, path: str | Path, line: int | None) -> Concept:
    """A concept from any layout that carries one (concept, teacher, validation, supervised)."""
    layout = detect_layout(obj)
    if layout == LAYOUT_CONCEPT:
        return _concept_from(_Fields(obj, path, line))
    if layout is None:
        _refuse_half_concept(obj, path, line)
    return_sample = sample_from_record(obj, path, line)
    assert return_sample.concept is not None
    return return_sample.concept


# --- files ------------------------------------------------------------------------------------


def _first_byte(path: Path) -> bytes:
    """The first non-whitespace byte of the file (b"" when there is none)."""
    with open_input(path) as fh:
        while chunk := fh.read(65536):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[:1]
    return b""


def read_json_document(path: str | Path) -> Any | None:
    """The file parsed as one JSON value when it is one (eval results), else None (JSON lines).

    A `.json` file must be one JSON value; any other name that does not parse as a whole is
    read as JSON lines. Decoding and parse errors are located InputErrors either way.
    """
    p = _check_file(path)
    if _first_byte(p) != b"{":
        return None
    if p.suffix == ".json":
        return loads_json(read_text(p, what="a JSON file"), p)
    try:
        return json.loads(read_bytes(p).decode("utf-8"))
    except (ValueError, RecursionError):  # JSON lines (or damage, a torn tail: the line reader judges)
        return None


def is_eval_results(path: str | Path) -> bool:
    """Whether the file is one JSON object with `results` (evaluation results), not JSON lines."""
    value = read_json_document(path)
    return isinstance(value, dict) and "results" in value


def _check_file(path: str | Path) -> Path:
    """`path` if it is a readable regular file, else the InputError saying why not."""
    p = Path(path)
    with open_input(p, what="a file"):
        return p


@dataclass
class EvalResults:
    """An evaluation-result JSON file: its header fields and its cases (raw dicts)."""

    path: Path
    header: dict
    cases: list[dict]


def read_eval_results(path: str | Path) -> EvalResults:
    p = _check_file(path)
    doc = read_json(p, what="an evaluation-results JSON file")
    f = _Fields(doc, p, None)
    cases = f.list("results")
    for i, case in enumerate(cases):
        _Fields(case, p, None, f"results[{i}].")
    return EvalResults(p, {k: v for k, v in doc.items() if k != "results"}, cases)


def eval_case_sample(
    case: dict,
    index: int,
    path: str | Path,
    concepts: dict[str, Concept] | None,
    metric: str | None = None,
) -> Sample:
    f = _Fields(case, path, None, f"results[{index}].")
    cid = f.str("concept_id", required=False)
    concept = None
    if "concept" in case and "requirements_yaml" in case:
        concept = _concept_from(f)
    elif concepts is not None:
        if cid is None:
            raise f._err("concept_id", "missing: cannot join this case to --concepts")
        concept = concepts.get(cid)
        if concept is None:
            raise f._err("concept_id", f"{cid!r} is not in the --concepts file")
    return Sample(
        id=cid or f"case-{index}",
        layout=LAYOUT_EVAL_CASE,
        concept=concept,
        vision=f.str("vision_yaml", required=False),
        review=f.str("review_yaml", required=False),
        raw=f.str("raw_response", required=False),
        recorded_score=f.number("score"),
        recorded_status=f.str("status", required=False),
        recorded_metric=metric or "po-v1",
        where=f"results[{index}]",
        record=case,
    )


def read_samples(
    path: str | Path, *, concepts: dict[str, Concept] | None = None, warn: Warn | None = None
) -> tuple[str, list[Sample]]:
    """Every answer in a supported file, in file order. Returns (file kind, samples)."""
    p = _check_file(path)
    if is_eval_results(p):
        results = read_eval_results(p)
        metric = results.header.get("metric")
        return "eval_results", [
            eval_case_sample(case, i, p, concepts, metric if isinstance(metric, str) else None)
            for i, case in enumerate(results.cases)
        ]
    samples = []
    for line, obj in iter_jsonl(p, on_torn=(lambda t: warn(t.describe())) if warn else None):
        samples.append(sample_from_record(obj, p, line))
    kinds = {s.layout for s in samples}
    return (kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "empty"), samples


def read_concepts(path: str | Path, *, warn: Warn | None = None) -> dict[str, Concept]:
    """Concepts by id from any layout carrying them; records without an id use their content key."""
    p = _check_file(path)
    out: dict[str, Concept] = {}
    for line, obj in iter_jsonl(p, on_torn=(lambda t: warn(t.describe())) if warn else None):
        concept = concept_from_record(obj, p, line)
        out.setdefault(concept.concept_id or concept.key, concept)
    return out


def read_concept_list(path: str | Path, *, warn: Warn | None = None, for_prompts: bool = False) -> list[Concept]:
    """Concepts in file order (duplicates kept), for stages that walk a concepts file.

    `for_prompts`: the concepts are about to be sent to a model (paid calls), so each one's
    requirements must parse as YAML (check_requirements) before the first request.
    """
    p = _check_file(path)
    out = []
    for line, obj in iter_jsonl(p, on_torn=(lambda t: warn(t.describe())) if warn else None):
        concept = concept_from_record(obj, p, line)
        if for_prompts:
            check_requirements(concept, p, line)
        out.append(concept)
    return out


def check_requirements(concept: Concept, path: str | Path, line: int | None, field: str = "requirements_yaml") -> None:
    """Refuse a concept whose requirements are not YAML: a model prompted with them answers
    against nothing the metric can read, so the call would be paid for and then wasted."""
    _value, problem = load_yaml(concept.requirements_yaml)
    if problem is not None:
        where = f" (line {problem.line}, column {problem.column})" if problem.line is not None else ""
        raise InputError(f"invalid YAML{where}: {problem.message}", path=path, line=line, field=field)


# --- writers ----------------------------------------------------------------------------------


def teacher_record(
    concept: Concept,
    vision: str,
    review: str,
    *,
    score: float,
    metric: str,
    breakdown: dict[str, float],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """A teacher record in the docs/formats.md shape (field names are a contract: never rename)."""
    return {
        "concept_id": concept.concept_id or concept.key,
        "tier": concept.tier,
        "concept": concept.concept,
        "requirements_yaml": concept.requirements_yaml,
        "teacher_product_vision": vision,
        "teacher_product_owner_review": review,
        "score": score,
        "metric": metric,
        "score_breakdown": breakdown,
        "metadata": metadata,
    }


def supervised_record(prompt: str, vision: str, review: str, **extra: Any) -> dict[str, Any]:
    """A supervised prompt/response pair; extra fields (concept_id, tier, score...) are kept."""
    return {"prompt": prompt, "response": render_response(vision, review), **extra}


def score_summary(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, median, min, max of a list of scores (None each when empty): the dataset and
    teacher statistics (`po-tui stats`, teacher_stats)."""
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def population_stats(scores: Iterable[float]) -> dict[str, float | int | None]:
    """n, mean, std (population, 0 when n <= 1), min, max: the eval-results `metrics` block."""
    values = [float(s) for s in scores]
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / n if n > 1 else 0.0
    return {"n": n, "mean": mean, "std": var**0.5, "min": min(values), "max": max(values)}
