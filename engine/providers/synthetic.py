"""The offline `synthetic` teacher: a rule-based Product Owner behind the Provider interface.

Why: the demo and the tests need a teacher without network, keys or cost that still walks
every path of the teacher stage: valid answers, low scores, format errors, truncation, retries
that fix (or fail to fix) the problem, latency. Every choice comes from a `random.Random`
seeded by (provider seed, request seed, prompt hash, attempt), never the global RNG or the
clock, so a rerun gives the same texts.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from typing import Sequence

from engine.core.blocks import check_text
from engine.core.records import split_prompt
from engine.providers import po_writer
from engine.providers.base import FINISH_MAX_TOKENS, FINISH_STOP, Completion, Message

DEFAULT_MODEL = "synthetic-po-1"

# Defects that make an answer invalid: what an unfixed retry of a format error repeats.
_INVALID_DEFECTS = ("missing_review", "wrapped_id_line", "truncated")

_CONFUSED = (
    "I could not find a product concept or requirements in your message. Please send the "
    "concept and its requirements YAML and I will write the vision and the review."
)


def _rng(provider_seed: int, seed: int | None, first_prompt: str, attempt: int) -> random.Random:
    digest = hashlib.sha256(first_prompt.encode("utf-8")).hexdigest()
    return random.Random(f"synthetic:{provider_seed}:{seed}:{digest}:{attempt}")


class SyntheticProvider:
    """Deterministic fake teacher; rates set how often it errs and how often retries fix it."""

    name = "synthetic"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        seed: int = 0,
        latency_s: float = 0.0,
        latency_jitter_s: float = 0.0,
        defect_rate: float = 0.15,
        fix_rate: float = 0.85,
        low_quality_rate: float = 0.1,
        style: str = po_writer.STYLE_FULL,
    ) -> None:
        for label, rate in (
            ("defect_rate", defect_rate),
            ("fix_rate", fix_rate),
            ("low_quality_rate", low_quality_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{label} must be between 0 and 1")
        if latency_s < 0 or latency_jitter_s < 0:
            raise ValueError("latency_s and latency_jitter_s must not be negative")
        if style not in po_writer.STYLES:
            raise ValueError(f"style must be one of {', '.join(po_writer.STYLES)}")
        self.model = model
        self.seed = seed
        self.latency_s = latency_s
        self.latency_jitter_s = latency_jitter_s
        self.defect_rate = defect_rate
        self.fix_rate = fix_rate
        self.low_quality_rate = low_quality_rate
        self.style = style  # how its answers are written: full prose, or compact (the demo's)

    async def generate(
        self,
        system: str,
        messages: Sequence[Message],
        *,
        temperature: float = 0.0,
        max_output_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        started = time.perf_counter()
        users = [m for m in messages if m.role == "user"]
        first = users[0].text if users else ""
        attempt = max(1, len(users))
        rng = _rng(self.seed, seed, first, attempt)
        delay = self.latency_s + rng.uniform(0.0, self.latency_jitter_s)
        text, finish = self._answer(first, messages, attempt, rng)
        if max_output_tokens is not None and len(text) > max_output_tokens * 4:
            text, finish = text[: max_output_tokens * 4], FINISH_MAX_TOKENS
        if delay > 0:
            await asyncio.sleep(delay)
        return Completion(
            text=text,
            finish_reason=finish,
            input_tokens=(len(system) + sum(len(m.text) for m in messages)) // 4,
            output_tokens=max(1, len(text) // 4),
            latency_s=time.perf_counter() - started,
            model=self.model,
            extra={"synthetic": True},
        )

    def _answer(
        self, first: str, messages: Sequence[Message], attempt: int, rng: random.Random
    ) -> tuple[str, str]:
        """(text, finish reason) for this attempt of this conversation."""
        parts = split_prompt(first)
        if parts is None:
            return _CONFUSED, FINISH_STOP
        concept, requirements = parts
        if attempt == 1:
            return self._first_attempt(concept, requirements, rng)
        if rng.random() < self.fix_rate:
            return self._write(concept, requirements, rng), FINISH_STOP
        return self._unfixed_retry(concept, requirements, messages, rng)

    def _first_attempt(
        self, concept: str, requirements: str, rng: random.Random
    ) -> tuple[str, str]:
        defect = rng.choice(po_writer.DEFECTS) if rng.random() < self.defect_rate else None
        low = rng.random() < self.low_quality_rate
        quality = po_writer.QUALITY_LOW if low else po_writer.QUALITY_FULL
        text = self._write(concept, requirements, rng, quality=quality)
        if defect is None:
            return text, FINISH_STOP
        return po_writer.inject_defect(text, defect, rng)

    def _unfixed_retry(
        self, concept: str, requirements: str, messages: Sequence[Message], rng: random.Random
    ) -> tuple[str, str]:
        """The same kind of problem again: invalid stays invalid, weak stays weak."""
        previous = next((m.text for m in reversed(messages) if m.role == "model"), None)
        was_invalid = previous is not None and not check_text(previous)[1].valid
        if was_invalid:
            text = self._write(concept, requirements, rng)
            return po_writer.inject_defect(text, rng.choice(_INVALID_DEFECTS), rng)
        text = self._write(concept, requirements, rng, quality=po_writer.QUALITY_LOW)
        return text, FINISH_STOP

    def _write(
        self, concept: str, requirements: str, rng: random.Random, *, quality: str = po_writer.QUALITY_FULL
    ) -> str:
        return po_writer.write_answer(concept, requirements, rng, quality=quality, style=self.style)

    async def aclose(self) -> None:
        """Nothing to release: no connections, no files."""
