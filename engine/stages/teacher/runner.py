"""The teacher run: C samples in flight, rate-limited, retried, resumable, cost-aware.

Per sample (a concept and a variant number): call the provider, append the raw answer to
responses.jsonl (fsync) before looking at it, extract the blocks, judge validity and score, and
retry with an instruction naming what was wrong. Resume replays stored answers through the same
decisions, so a killed run loses at most the requests that were in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from engine.core.prompts import render_student_prompt, teacher_system_prompt
from engine.core.records import Concept
from engine.core.timefmt import utc_stamp
from engine.providers.backoff import Backoff
from engine.providers.base import Completion, Message, Provider, ProviderError
from engine.providers.calls import ProviderCaller, RetryPolicy
from engine.providers.limiter import RateLimiter
from engine.runlog.events import register_event_type
from engine.stages.teacher.judge import LOW_SCORE, Verdict, judge, retry_instruction
from engine.stages.teacher.offloop import OffLoop, QueuedEvents
from engine.stages.teacher.outputs import accepted_record, reject_row, sample_metadata
from engine.stages.teacher.pricing import PriceTable
from engine.stages.teacher.settings import TeacherSettings
from engine.stages.teacher.store import Key, ResumeState, TeacherStore
from engine.stages.teacher.tally import TeacherTally

register_event_type(
    "teacher_sample",
    "A teacher sample finished: concept_id, variant, outcome (accepted|rejected), score, status, "
    "reason, attempts, model, cost_usd, latency_s.",
    required=("concept_id", "variant", "outcome"),
)
register_event_type(
    "teacher_retry",
    "A teacher sample is retried: concept_id, variant, attempt (the one that failed), reason, detail.",
    required=("concept_id", "variant", "attempt", "reason"),
)
register_event_type(
    "teacher_stats",
    "Running teacher numbers (at most twice a second, and at the end): accepted, rejected, target, "
    "records_per_min, acceptance_rate, retry_success_rate, eta_s, cost_usd, provider_errors, ...",
    required=("accepted", "rejected"),
)

STATS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class WorkItem:
    concept: Concept
    concept_id: str
    variant: int

    @property
    def key(self) -> Key:
        return self.concept_id, self.variant


@dataclass
class Outcome:
    item: WorkItem
    state: str  # accepted | rejected | unfinished


class Stop(Exception):
    """The run is stopping (budget, fatal provider error, cancel): leave the item unfinished."""


def work_items(concepts: Sequence[tuple[str, Concept]], samples_per_concept: int) -> Iterator[WorkItem]:
    """Variant-major order: every concept once before any concept twice (more distinct concepts
    if the run stops early)."""
    for variant in range(samples_per_concept):
        for concept_id, concept in concepts:
            yield WorkItem(concept, concept_id, variant)


class TeacherRun:
    def __init__(
        self,
        settings: TeacherSettings,
        concepts: Sequence[tuple[str, Concept]],
        store: TeacherStore,
        provider: Provider,
        events: Any,
        *,
        prices: PriceTable | None = None,
        resume: ResumeState | None = None,
        on_change: Any = None,
        tally: TeacherTally | None = None,
        phase: int | None = None,
    ) -> None:
        """`tally` and `phase`: set by the phase runner (engine/stages/teacher/phases.py), which runs
        one TeacherRun per planned phase over one tally; `phase` tags every row this run writes."""
        self.s = settings
        self.concepts = concepts
        self.store = store
        self.provider = provider
        self.io = OffLoop()
        self.events = QueuedEvents(events, self.io)
        self.prices = prices or PriceTable()
        self.resume = resume or ResumeState()
        self.on_change = on_change  # called with the tally after each finished sample (terminal UI)
        self.model = settings.resolved_model()
        self.system = teacher_system_prompt(settings.system_prompt)
        self.prompt_hash = settings.prompt_hash()
        self.stop_reason: str | None = None
        self.fatal: ProviderError | None = None
        self.tag: dict[str, Any] = {"phase": phase} if phase is not None else {}
        shared = tally is not None
        self.tally = tally if tally is not None else TeacherTally(target=settings.max_records)
        policy = RetryPolicy(settings.api_retries, Backoff(settings.backoff_base_s, settings.backoff_max_s), settings.timeout_s)
        # The tally counts the caller's requests and provider errors as they happen.
        self.caller = ProviderCaller(
            provider, RateLimiter(settings.rpm, settings.tpm), policy, self.events, check=self._check_stop, stats=self.tally
        )
        if settings.mode == "batch":
            self.caller = self._batch_caller()
        if not shared:  # a shared tally was set from the stored state once, by its owner
            self.tally.accepted = len(self.resume.accepted)
            # Rejects that --retry-errors asks again are not counted twice.
            self.tally.rejected = sum(self.resume.finished(k, retry_errors=settings.retry_errors) for k in self.resume.rejected)
            self.tally.cost_usd = self.resume.cost_usd
        self._last_stats = 0.0
        self._tasks: set[asyncio.Task] = set()

    # -- control -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """SIGTERM / Ctrl-C: stop starting work and abandon requests in flight."""
        self.stop_reason = self.stop_reason or "cancelled"
        for task in self._tasks:
            task.cancel()

    def _batch_caller(self) -> Any:
        """Batch mode: the same role as ProviderCaller.call, through Gemini Batch API jobs."""
        from engine.providers.gemini_batch import GeminiBatch
        from engine.stages.teacher.batch import BatchCaller, BatchJobLog

        return BatchCaller(
            GeminiBatch(self.provider), self.s, BatchJobLog(self.store.dir, warn=self.store.warn), self.prices, self.events, self.io,
            check=self._check_stop, stop=self._stop_for, stats=self.tally,
        )

    def _stop_for(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason

    def _budget_reached(self) -> bool:
        return self.s.budget_usd is not None and self.tally.cost_usd >= self.s.budget_usd

    def _check_stop(self) -> None:
        if self.stop_reason is None and self._budget_reached():
            self.stop_reason = "budget"
            self.events.log(f"budget of ${self.s.budget_usd:.2f} reached: finishing requests in flight", level="warning")
        if self.stop_reason is not None:
            raise Stop(self.stop_reason)

    def _target_reached(self) -> bool:
        return self.s.max_records is not None and self.tally.accepted >= self.s.max_records

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        pending = (
            item
            for item in work_items(self.concepts, self.s.samples_per_concept)
            if not self.resume.finished(item.key, retry_errors=self.s.retry_errors)
        )
        self._emit_stats(force=True)
        exhausted = False
        while True:
            while (
                not exhausted
                and self.stop_reason is None
                and len(self._tasks) < self.s.concurrency
                and (self.s.max_records is None or self.tally.accepted + len(self._tasks) < self.s.max_records)
            ):
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    break
                self._tasks.add(asyncio.create_task(self._run_item(item), name=f"teacher:{item.key}"))
                self.tally.in_flight = len(self._tasks)
            if not self._tasks:
                break
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._tasks.discard(task)
                if not task.cancelled() and task.exception() is not None:
                    for other in self._tasks:
                        other.cancel()
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                    raise task.exception()  # a bug, not a provider problem: fail loudly
            self.tally.in_flight = len(self._tasks)
            self._emit_stats()
        if self.stop_reason is None:
            self.stop_reason = "target" if self._target_reached() else "exhausted"
        if hasattr(self.caller, "aclose"):  # batch mode: cancel the open remote jobs when cancelled
            await self.caller.aclose(cancel=self.stop_reason == "cancelled")
        self._emit_stats(force=True)
        await self.io.drain()
        self.io.close()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        snap = self.tally.snapshot()
        snap["stop_reason"] = self.stop_reason
        snap["model"] = self.model
        snap["provider"] = self.provider.name
        snap["prices_as_of"] = self.prices.as_of
        if self.fatal is not None:
            snap["fatal_error"] = str(self.fatal)
        return snap

    def _emit_stats(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_stats < STATS_INTERVAL_S:
            return
        self._last_stats = now
        snap = self.tally.snapshot()
        self.events.emit("teacher_stats", **snap)
        self.events.progress(self.tally.accepted, self.tally.target, unit="records", eta_s=snap["eta_s"])

    # -- one sample ----------------------------------------------------------------------------

    async def _run_item(self, item: WorkItem) -> Outcome:
        try:
            return await self._attempts(item)
        except Stop:
            return Outcome(item, "unfinished")
        except asyncio.CancelledError:
            return Outcome(item, "unfinished")

    async def _attempts(self, item: WorkItem) -> Outcome:
        stored = self.resume.responses.get(item.key, [])
        prompt = render_student_prompt(item.concept.concept, item.concept.requirements_yaml, template=self.s.student_template)
        conversation = [Message("user", prompt)]
        reasons: list[str] = []
        rows: list[dict[str, Any]] = []
        format_retries = low_retries = 0
        while True:
            attempt = len(rows) + 1
            if attempt <= len(stored):
                row = stored[attempt - 1]
                self.tally.replayed += 1
            else:
                try:
                    completion = await self._call(item, conversation)
                except ProviderError as exc:
                    return await self._reject(item, f"provider_error:{exc.kind}", str(exc), None, rows, reasons)
                row = await self._record_response(item, attempt, completion, conversation, reasons)
            rows.append(row)
            verdict = judge(row["text"], item.concept.requirements_yaml, self.s.metric, row.get("finish_reason") or "STOP")
            problem = verdict.problem
            if problem is not None:
                reasons.append(problem)
                if format_retries < self.s.max_retries:
                    format_retries += 1
                    self._retry(item, attempt, verdict, conversation, row["text"])
                    continue
                detail = verdict.detail if not verdict.valid else f"status {verdict.status!r}"
                return await self._reject(item, problem, detail, verdict, rows, reasons)
            if verdict.score < self.s.min_score:
                reasons.append(LOW_SCORE)
                if low_retries < self.s.low_score_retries:
                    low_retries += 1
                    self._retry(item, attempt, verdict, conversation, row["text"])
                    continue
                detail = f"score {verdict.score:.4f} < min-score {self.s.min_score:.2f}"
                return await self._reject(item, "below_min_score", detail, verdict, rows, reasons)
            return await self._accept(item, verdict, rows, reasons)

    def _retry(self, item: WorkItem, attempt: int, verdict: Verdict, conversation: list[Message], text: str) -> None:
        reason = verdict.problem or LOW_SCORE
        if not verdict.valid:
            detail = verdict.detail
        elif reason == LOW_SCORE:
            detail = f"score {verdict.score:.4f}"
        else:
            detail = f"status {verdict.status!r}"
        self.tally.retries += 1
        self.events.emit("teacher_retry", concept_id=item.concept_id, variant=item.variant, attempt=attempt, reason=reason, detail=detail)
        conversation.append(Message("model", text or "(empty answer)"))
        conversation.append(Message("user", retry_instruction(verdict, self.s.min_score)))

    async def _call(self, item: WorkItem, conversation: list[Message]) -> Completion:
        """One provider call through the shared call path (limits, retries, backoff);
        ProviderError if it still fails; Stop when the run is stopping or the error is fatal."""
        try:
            return await self.caller.call(
                self.system,
                conversation,
                temperature=self.s.temperature,
                max_output_tokens=self.s.max_output_tokens,
                seed=self._seed(item),
                context={"concept_id": item.concept_id, "variant": item.variant},
            )
        except ProviderError as exc:
            if not exc.fatal:
                raise
            self.fatal = exc
            self.stop_reason = self.stop_reason or "fatal_provider_error"
            self.cancel_others()
            raise Stop("fatal") from None

    def cancel_others(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    def _seed(self, item: WorkItem) -> int:
        digest = hashlib.sha256(f"{self.s.seed}:{item.concept_id}:{item.variant}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    async def _record_response(
        self, item: WorkItem, attempt: int, c: Completion, conversation: list[Message], reasons: list[str]
    ) -> dict[str, Any]:
        model = c.model or self.model
        cost = self.prices.cost(model, c.input_tokens, c.output_tokens, batch=self.s.mode == "batch")
        if cost is None:
            self.tally.unpriced_requests += 1
            cost = 0.0
        row = {
            "concept_id": item.concept_id,
            "variant": item.variant,
            "attempt": attempt,
            "provider": self.provider.name,
            "model": model,
            "text": c.text,
            "finish_reason": c.finish_reason,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "thinking_tokens": c.thinking_tokens,
            "thinking_budget": self.s.thinking_budget,
            "latency_s": round(c.latency_s, 4),
            "cost_usd": cost,
            "created_at": utc_stamp(),
            "prompt_hash": self.prompt_hash,
            "retry_of": reasons[-1] if reasons else None,
            "seed": self._seed(item),
            "tier": item.concept.tier,
            "concept": item.concept.concept,
            "requirements_yaml": item.concept.requirements_yaml,
        }
        row.update(self.tag)
        if c.extra:
            row["extra"] = c.extra
        await self.io.run(self.store.append_response, row)  # durable before anything looks at it
        self.tally.cost_usd += cost
        self.tally.cost_usd_run += cost
        self.tally.input_tokens += c.input_tokens
        self.tally.output_tokens += c.output_tokens
        self.tally.thinking_tokens += c.thinking_tokens
        self.tally.phase_response(cost, c.input_tokens, c.output_tokens, c.thinking_tokens)
        return row

    def _finish(self, item: WorkItem, accepted: bool, rows: list[dict[str, Any]], reasons: list[str]) -> None:
        model = rows[-1]["model"] if rows else self.model
        if len(rows) > 1:  # it was asked again at least once
            self.tally.retried_items += 1
            self.tally.retry_successes += accepted
        self.tally.per_model[model]["accepted" if accepted else "rejected"] += 1
        self.tally.phase_sample(accepted)
        if self.on_change is not None:
            self.on_change(self.tally)
        self._emit_stats()

    async def _accept(self, item: WorkItem, v: Verdict, rows: list[dict[str, Any]], reasons: list[str]) -> Outcome:
        if self._target_reached():
            # Another sample reached the target first: keep the answer (it is in responses.jsonl
            # for a later, larger run) but do not exceed the target.
            return Outcome(item, "unfinished")
        meta = sample_metadata(rows, reasons, temperature=self.s.temperature)
        self.tally.accepted += 1  # counted before the write, so no other sample overshoots
        self.tally.accepted_run += 1
        await self.io.run(self.store.append_accepted, accepted_record(item.concept, item.concept_id, v, self.s.metric, meta))
        self.tally.statuses[v.status or "invalid"] += 1
        self.events.emit(
            "teacher_sample",
            concept_id=item.concept_id,
            variant=item.variant,
            outcome="accepted",
            score=v.score,
            status=v.status,
            reason=None,
            attempts=len(rows),
            model=meta["model"],
            cost_usd=meta["cost_usd"],
            latency_s=meta["latency_s"],
            **self.tag,
        )
        self._finish(item, True, rows, reasons)
        return Outcome(item, "accepted")

    async def _reject(
        self,
        item: WorkItem,
        reason: str,
        detail: str | None,
        v: Verdict | None,
        rows: list[dict[str, Any]],
        reasons: list[str],
    ) -> Outcome:
        if rows:
            meta = sample_metadata(rows, reasons, temperature=self.s.temperature)
        else:
            meta = {"model": self.model, "provider": self.provider.name, "variant": item.variant, "attempts": 0, **self.tag}
        await self.io.run(
            self.store.append_reject,
            reject_row(item.concept_id, item.variant, item.concept.tier, reason, detail, v, self.s.metric, meta)
        )
        self.tally.rejected += 1
        self.tally.rejected_run += 1
        self.tally.reject_reasons[reason] += 1
        self.tally.statuses[(v.status if v and v.valid else None) or "invalid"] += 1
        self.events.emit(
            "teacher_sample",
            concept_id=item.concept_id,
            variant=item.variant,
            outcome="rejected",
            score=v.score if v else None,
            status=v.status if v else None,
            reason=reason,
            attempts=len(rows),
            model=meta.get("model"),
            cost_usd=meta.get("cost_usd", 0.0),
            latency_s=meta.get("latency_s"),
            **self.tag,
        )
        self._finish(item, False, rows, reasons)
        return Outcome(item, "rejected")
