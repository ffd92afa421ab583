"""The evaluation loop: attempts, corrective retries, durable progress, events.

Round 1 asks every unfinished case; each answer is stored (fsync) the moment it exists, then
judged. A valid answer, or the last allowed attempt, finishes the case: its result row is stored
and an `eval_case` event emitted. A format error sends the case to the next round with the
conversation so far plus an instruction naming what was wrong (the teacher's wording), so the
retries of a round are batched together too. On resume, stored answers are replayed through the
same decisions instead of being generated again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from engine.core.prompts import render_student_prompt, teacher_retry_instruction
from engine.runlog.events import register_event_type
from engine.stages.eval.dataset import EvalCase
from engine.stages.eval.generate import ASSISTANT, FINISH_MAX_TOKENS, USER, Generation, Generator, Request, Turn
from engine.stages.eval.results import OK, case_result, judge_text
from engine.stages.eval.settings import EvalSettings
from engine.stages.eval.store import CaseStore, Stored

register_event_type(
    "eval_case",
    "An evaluation case finished: index, concept_id, status (ok|format_error), score, partial_score, "
    "attempts, format_error, review_status, latency_s, output_tokens.",
    required=("concept_id", "status", "score", "attempts"),
)

PROGRESS_INTERVAL_S = 0.5


def retry_instruction(reason: str, detail: str | None, finish_reason: str) -> str:
    """The corrective follow-up: the teacher's instruction, plus a note when the answer was cut off."""
    text = teacher_retry_instruction(reason, detail)
    if finish_reason == FINISH_MAX_TOKENS:
        text += " Your answer was cut off at the output limit: keep it shorter."
    return text


def request_seed(seed: int, concept_id: str, attempt: int) -> int:
    digest = hashlib.sha256(f"{seed}:{concept_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class CaseState:
    case: EvalCase
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def turns(self) -> tuple[Turn, ...]:
        concept = self.case.concept
        turns = [Turn(USER, render_student_prompt(concept.concept, concept.requirements_yaml))]
        for a in self.attempts:
            turns.append(Turn(ASSISTANT, a["text"] or "(empty answer)"))
            turns.append(Turn(USER, retry_instruction(a["reason"], a["detail"], a["finish_reason"])))
        return tuple(turns)


class EvalRun:
    def __init__(
        self,
        s: EvalSettings,
        cases: Sequence[EvalCase],
        store: CaseStore,
        stored: Stored,
        generator: Generator,
        events: Any,
        *,
        on_case: Callable[[dict[str, Any], int, int], None] | None = None,
    ) -> None:
        self.s = s
        self.cases = list(cases)
        self.store = store
        self.generator = generator
        self.events = events
        self.on_case = on_case
        self.results: dict[int, dict[str, Any]] = {i: r for i, r in stored.cases.items() if i < len(self.cases)}
        self.states = {
            c.index: CaseState(c, list(stored.attempts.get(c.index, [])))
            for c in self.cases
            if c.index not in self.results
        }
        self.replayed = sum(len(st.attempts) for st in self.states.values())
        self.failed: dict[int, str] = {}  # provider calls that failed after their retries
        self._last_progress = 0.0
        self._started = time.monotonic()
        self._done_at_start = len(self.results)

    @property
    def total(self) -> int:
        return len(self.cases)

    def run(self) -> list[dict[str, Any]]:
        """Finish every case that can be; return the results finished so far, in dataset order."""
        queue = [st for st in self.states.values() if not self._settle(st)]
        self._progress(force=True)
        while queue:
            by_key = {st.case.index: st for st in queue}
            retry: list[CaseState] = []
            requests = [
                Request(st.case.index, st.turns(), request_seed(self.s.seed, st.case.concept_id, len(st.attempts) + 1), st.case.concept_id)
                for st in queue
            ]

            # by_key and retry are this round's; bound here so a callback that outlived its round
            # could never file a result into the next one.
            def on_done(gen: Generation, *, by_key: dict[int, CaseState] = by_key, retry: list[CaseState] = retry) -> None:
                st = by_key[gen.key]
                if gen.error is not None:
                    self.failed[gen.key] = gen.error
                    return
                self._record(st, gen)
                if not self._settle(st):
                    retry.append(st)

            self.generator.run(requests, on_done)
            queue = sorted(retry, key=lambda st: st.case.index)
        self._progress(force=True)
        return [self.results[i] for i in sorted(self.results)]

    def _record(self, st: CaseState, gen: Generation) -> None:
        v = judge_text(gen.text, st.case.concept.requirements_yaml, self.s.metric)
        row = {
            "index": st.case.index,
            "concept_id": st.case.concept_id,
            "attempt": len(st.attempts) + 1,
            "text": gen.text,
            "finish_reason": gen.finish_reason,
            "output_tokens": gen.output_tokens,
            "input_tokens": gen.input_tokens,
            "latency_s": round(gen.latency_s, 4),
            "wall_share_s": round(gen.wall_share_s, 6),
            "batch_size": gen.batch_size,
            "reason": None if v.valid else v.reason,
            "detail": None if v.valid else v.detail,
        }
        self.store.append_attempt(row)  # durable before the case moves on
        st.attempts.append(row)

    def _settle(self, st: CaseState) -> bool:
        """Finish the case if its last answer is valid or it has no attempts left; True if finished."""
        if not st.attempts:
            return False
        last = st.attempts[-1]
        if last["reason"] is not None and len(st.attempts) <= self.s.retries:
            return False
        result = case_result(st.case, st.attempts, self.s.metric)
        self.store.append_case(st.case.index, result)
        self.results[st.case.index] = result
        self.events.emit(
            "eval_case",
            index=st.case.index,
            concept_id=result["concept_id"],
            status=result["status"],
            score=result["score"],
            partial_score=result["partial_score"],
            attempts=result["attempts"],
            format_error=result["format_error"],
            review_status=result["review_status"],
            latency_s=result["latency_s"],
            output_tokens=result["output_tokens"],
        )
        if self.on_case is not None:
            self.on_case(result, len(self.results), self.total)
        self._progress()
        return True

    def _progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        done = len(self.results)
        new = done - self._done_at_start
        elapsed = now - self._started
        rate = new / elapsed if new and elapsed > 0 else None
        eta = (self.total - done) / rate if rate else None
        self.events.progress(
            done, self.total, unit="cases", rate_per_s=round(rate, 4) if rate else None,
            eta_s=round(eta, 1) if eta is not None else None,
        )

    def summary_counts(self) -> dict[str, int]:
        ok = sum(1 for r in self.results.values() if r["status"] == OK)
        return {"done": len(self.results), "ok": ok, "failed_calls": len(self.failed), "replayed_attempts": self.replayed}
