"""Teacher batch mode: samples' requests go out as Gemini Batch API jobs, at half the price.

`BatchCaller.call` has the role of `ProviderCaller.call` for the runner: one sample's attempt
awaits its answer. Underneath, requests queue up and are submitted together as jobs (cut under the
20 MB inline limit and `batch_max_requests`), each job is polled every `batch_poll_s`, and its
answers are handed back by request key; the runner then appends each to responses.jsonl before
judging it, exactly as in interactive mode. A corrective retry is simply the next round's job.

Never paid twice: the moment a job is created, its name and request keys are appended (fsynced)
to `batch_jobs.jsonl`. A resumed run that needs the answer to a request whose key is in a job
that did not fail polls THAT job instead of creating another; a job that ended FAILED, EXPIRED or
CANCELLED (by someone else) has its requests queued into a new job, counted as provider errors and
bounded by `api_retries`, as are per-request errors of a partial success that retrying can help.

Budget: before a job is created its worst case (request bytes counted as input tokens, plus the
answer limit and the thinking budget as output, at the batch price) must fit what the budget
leaves after money spent and jobs still open; only the requests that fit are submitted, and when
none fits and no job is open the run stops with stop_reason `budget`.

Cancel (SIGTERM, `po-tui cancel`): the run cancels its open remote jobs before it exits;
`po-tui teacher --out DIR --cancel-batches` cancels the open jobs a dead process left behind.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from engine.core.timefmt import utc_stamp
from engine.providers.backoff import Backoff
from engine.providers.base import (
    AUTH,
    BAD_RESPONSE,
    CONNECTION,
    INVALID_REQUEST,
    NOT_FOUND,
    SERVER_ERROR,
    TIMEOUT,
    Completion,
    Message,
    ProviderError,
)
from engine.providers.gemini_batch import (
    CANCELLED,
    EXPIRED,
    FAILED,
    INLINE_BUDGET_BYTES,
    WITH_RESULTS,
    BatchRequest,
    GeminiBatch,
    JobStatus,
)
from engine.runlog.events import register_event_type
from engine.stages.teacher.pricing import PriceTable
from engine.store.jsonl import JsonlAppender, Warn, iter_jsonl

register_event_type(
    "teacher_batch",
    "A teacher batch job changed state: job, state, requests, done/succeeded/failed (once known), "
    "waiting_s (since it was created), eta_s (from this run's finished jobs; null before one finished).",
    required=("job", "state"),
)

BATCH_JOBS = "batch_jobs.jsonl"
# Gemini 2.5 models answer at most this many tokens: the worst case when no --max-output-tokens is set.
OUTPUT_LIMIT_TOKENS = 65536
# After a request queues, wait until no other joined for LINGER_S (at most LINGER_MAX_S, and
# never longer than a poll interval) before submitting the queue as a job.
LINGER_S = 0.5
LINGER_MAX_S = 5.0
CANCEL_TIMEOUT_S = 20.0
# A create that failed this way may still have created the job: look for it before creating again.
MAYBE_CREATED = frozenset({CONNECTION, TIMEOUT, BAD_RESPONSE, SERVER_ERROR})


def request_key(concept_id: str, variant: int, attempt: int) -> str:
    """The key a request travels with (InlinedRequest metadata) and is persisted under."""
    return json.dumps([concept_id, variant, attempt], ensure_ascii=False, separators=(",", ":"))


def _split_key(key: str) -> dict[str, Any]:
    concept_id, variant, attempt = json.loads(key)
    return {"concept_id": concept_id, "variant": variant, "attempt": attempt}


# --------------------------------------------------------------------------- batch_jobs.jsonl


def _intent(display_name: str) -> str:
    """Where a job about to be created is kept until its name is known."""
    return "?" + display_name


@dataclass
class JobRecord:
    """What batch_jobs.jsonl says about one job."""

    name: str
    model: str
    created_at: str
    requests: dict[str, str]  # key -> request hash, in submission order
    worst_usd: float = 0.0
    state: str = "JOB_STATE_PENDING"
    collected: bool = False
    errors: set[str] = field(default_factory=set)  # keys that came back as per-request errors
    display_name: str = ""
    confirmed: bool = True  # False: about to be created when the process stopped (the name unknown)

    @property
    def failed(self) -> bool:
        """Ended without answers: its requests must be asked again."""
        return self.state in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")

    @property
    def open(self) -> bool:
        return not self.failed and not self.collected


class BatchJobLog:
    """The append-only, fsynced record of every job created for this output directory.

    Rows: `{"event": "submitting", display_name, model, created_at, worst_usd, requests:
    [{concept_id, variant, attempt, hash}]}` just before a create is sent (a process killed before
    it learns the job's name resumes by finding the job under that unique display name), the same
    with `"event": "created"` and the `job` name the moment the job exists (`not_created` when the
    create certainly failed), then `{"event": "state", job, state, at}`
    on each change, and `{"event": "collected", job, state, errors: [keys], at}` once its answers
    were handed out (`errors`: the requests that came back as per-request errors). The reader
    tolerates a torn last line, unknown fields and rows it cannot use (warned and skipped).
    """

    def __init__(self, out_dir: str | Path, *, warn: Warn | None = None) -> None:
        self.path = Path(out_dir) / BATCH_JOBS
        self.warn = warn
        self._appender: JsonlAppender | None = None

    def load(self) -> dict[str, JobRecord]:
        jobs: dict[str, JobRecord] = {}
        if not self.path.exists():
            return jobs
        torn = (lambda t: self.warn(t.describe())) if self.warn else None
        for lineno, row in iter_jsonl(self.path, on_torn=torn):
            try:
                self._apply(jobs, row)
            except (KeyError, TypeError, ValueError, AttributeError):
                if self.warn:
                    self.warn(f"{self.path}:{lineno}: unreadable batch job row: ignored")
        return jobs

    @staticmethod
    def _apply(jobs: dict[str, JobRecord], row: Mapping[str, Any]) -> None:
        event = row["event"]
        display = str(row.get("display_name") or "")
        if event in ("submitting", "created"):
            requests = {request_key(str(r["concept_id"]), int(r["variant"]), int(r["attempt"])): str(r["hash"]) for r in row["requests"]}
            jobs.pop(_intent(display), None)
            name = str(row["job"]) if event == "created" else _intent(display)
            jobs[name] = JobRecord(name, str(row["model"]), str(row["created_at"]), requests, float(row.get("worst_usd") or 0.0),
                                   display_name=display, confirmed=event == "created")
            return
        if event == "not_created":
            jobs.pop(_intent(display))
            return
        job = jobs.get(str(row["job"]))
        if job is None:
            raise ValueError("a job never created")
        job.state = str(row.get("state") or job.state)
        if event == "collected":
            job.collected = True
            job.errors = {request_key(str(e["concept_id"]), int(e["variant"]), int(e["attempt"])) for e in row.get("errors") or ()}

    def append(self, row: dict[str, Any]) -> None:
        if self._appender is None:
            self._appender = JsonlAppender(self.path, warn=self.warn)
        self._appender.write(row)

    def submitting(self, display_name: str, model: str, requests: Sequence[BatchRequest], worst_usd: float) -> None:
        self._job_row("submitting", None, display_name, model, requests, worst_usd)

    def created(self, name: str, display_name: str, model: str, requests: Sequence[BatchRequest], worst_usd: float) -> None:
        self._job_row("created", name, display_name, model, requests, worst_usd)

    def adopted(self, record: JobRecord) -> None:
        """A `created` row for a job found at the provider by its display name (after a `submitting`)."""
        self.append({
            "event": "created", "job": record.name, "display_name": record.display_name, "model": record.model,
            "created_at": record.created_at, "worst_usd": round(record.worst_usd, 6),
            "requests": [{**_split_key(k), "hash": h} for k, h in record.requests.items()],
        })

    def not_created(self, display_name: str) -> None:
        self.append({"event": "not_created", "display_name": display_name, "at": utc_stamp()})

    def _job_row(self, event: str, name: str | None, display: str, model: str, requests: Sequence[BatchRequest], worst: float) -> None:
        self.append({
            "event": event, "job": name, "display_name": display, "model": model, "created_at": utc_stamp(), "worst_usd": round(worst, 6),
            "requests": [{**_split_key(r.key), "hash": r.digest} for r in requests],
        })

    def state(self, name: str, state: str) -> None:
        self.append({"event": "state", "job": name, "state": state, "at": utc_stamp()})

    def collected(self, name: str, state: str, errors: Sequence[str]) -> None:
        self.append({"event": "collected", "job": name, "state": state, "errors": [_split_key(k) for k in errors], "at": utc_stamp()})

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None


# --------------------------------------------------------------------------- the caller


class _Stopped:
    """What a waiting request gets when the run stops before its answer (budget, cancel)."""


STOPPED = _Stopped()


@dataclass
class Waiter:
    key: str
    request: BatchRequest
    future: asyncio.Future
    worst_usd: float
    context: dict[str, Any]
    tries: int = 0  # failed tries so far (failed jobs, retryable per-request errors)
    submitted: float = 0.0


@dataclass
class OpenJob:
    name: str
    keys: list[str]  # submission order (answers without metadata are matched by position)
    worst_usd: float
    created: float  # monotonic
    waiters: dict[str, Waiter] = field(default_factory=dict)
    state: str | None = None
    task: asyncio.Task | None = None
    resumed: bool = False  # created by an earlier process: `created` is when this one took it up


class BatchCaller:
    """Batch-mode replacement of ProviderCaller for the teacher runner (see the module doc)."""

    def __init__(
        self,
        batch: GeminiBatch,
        settings: Any,  # TeacherSettings
        log: BatchJobLog,
        prices: PriceTable,
        events: Any,
        io: Any,  # OffLoop: appends off the event loop, in order
        *,
        check: Callable[[], None],
        stop: Callable[[str], None],
        stats: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.batch = batch
        self.s = settings
        self.log = log
        self.prices = prices
        self.events = events
        self.io = io
        self._check = check
        self._stop = stop
        self.stats = stats
        self.clock = clock
        self.persisted = log.load()
        self.jobs: dict[str, OpenJob] = {}  # jobs this process polls
        self.queue: list[Waiter] = []
        self.results: dict[str, Completion | ProviderError] = {}  # answers no one awaited yet (resume)
        self.reserved_usd = 0.0
        self.durations: list[float] = []  # seconds from create to answers, of this process's jobs (the ETA)
        self._wake = asyncio.Event()
        self._submitter: asyncio.Task | None = None
        self._closing = False
        self._confirming = asyncio.Lock()
        self.backoff = Backoff(settings.backoff_base_s, settings.backoff_max_s)

    # ---- the runner's side

    async def call(
        self,
        system: str,
        conversation: Sequence[Message],
        *,
        temperature: float,
        max_output_tokens: int | None,
        seed: int | None,
        context: Mapping[str, Any] | None = None,
    ) -> Completion:
        """The answer to this attempt, from a batch job; its ProviderError; Stop via `check`."""
        self._check()
        context = dict(context or {})
        attempt = (len(conversation) + 1) // 2  # the prompt, then a (model, user) pair per retry
        key = request_key(str(context.get("concept_id")), int(context.get("variant") or 0), attempt)
        request = self.batch.request(
            key, system, conversation, temperature=temperature, max_output_tokens=max_output_tokens, seed=seed
        )
        if key in self.results:
            return self._deliver(key, self.results.pop(key))
        waiter = Waiter(key, request, asyncio.get_running_loop().create_future(), self._worst_usd(request, max_output_tokens), context)
        job = await self._persisted_job(key, request.digest)
        if job is not None:
            self._await_persisted(job, waiter)
        else:
            self._enqueue(waiter)
        try:
            result = await waiter.future
        finally:
            if not waiter.future.done():  # the sample was cancelled: it no longer waits
                waiter.future.cancel()
        if result is STOPPED:
            self._check()
            raise ProviderError(TIMEOUT, "the run stopped before the batch job answered")
        return self._deliver(key, result)

    def _deliver(self, key: str, result: Completion | ProviderError) -> Completion:
        if isinstance(result, ProviderError):
            raise result
        return result

    # ---- resume: a request already in a job is awaited there

    async def _persisted_job(self, key: str, digest: str) -> JobRecord | None:
        """The latest persisted job holding this request, when its answer can still come from it."""
        latest = None
        for job in self.persisted.values():
            if key in job.requests:
                latest = job
        if latest is not None and not latest.confirmed:
            latest = await self._confirm(latest)
        if latest is None or latest.failed or key in latest.errors:
            return None
        if latest.model != self.batch.model:  # another phase's model asked it: not this answer
            return None
        if latest.requests[key] != digest:
            self.events.log(f"batch job {latest.name}: request {key} changed since it was submitted: asked again", level="warning")
            return None
        return latest

    async def _confirm(self, intent: JobRecord) -> JobRecord | None:
        """A create the process may have sent before it stopped: the job if the provider has it
        under the intent's display name (recorded as created), else None (recorded as not created)."""
        async with self._confirming:
            if self.persisted.get(intent.name) is not intent:  # another sample settled it meanwhile
                return next((j for j in self.persisted.values() if j.display_name == intent.display_name and j.confirmed), None)
            found = await self._find(intent.display_name)
            del self.persisted[intent.name]
            if found is None:
                await self.io.run(self.log.not_created, intent.display_name)
                self.events.log(f"batch job {intent.display_name} was never created: its requests are submitted")
                return None
            record = replace(intent, name=found.name, state=found.state, confirmed=True)
            await self.io.run(self.log.adopted, record)
            self.persisted[record.name] = record
            self.events.log(f"batch job {found.name} ({intent.display_name}) found at the provider: polled, not submitted again")
            return record

    def _await_persisted(self, record: JobRecord, waiter: Waiter) -> None:
        job = self.jobs.get(record.name)
        if job is None:
            # No state yet: the first poll reports it (a teacher_batch event for status and the cockpit).
            job = OpenJob(record.name, list(record.requests), record.worst_usd, self.clock(), resumed=True)
            self.jobs[record.name] = job
            self.reserved_usd += record.worst_usd
            self.events.log(f"resuming batch job {record.name} ({len(record.requests)} requests): polled, not submitted again")
            job.task = asyncio.create_task(self._poll(job, first_delay=0.0), name=f"batch-poll:{job.name}")
        job.waiters[waiter.key] = waiter

    def _failed_try(self, exc: ProviderError, tries: int, **context: Any) -> float | None:
        """Count and report one failed try (a `provider_error` event); the backoff before the next
        one, or None when it is given up (fatal, not retryable, or --api-retries spent)."""
        self.stats.provider_errors[exc.kind] += 1
        give_up = exc.fatal or not exc.retryable or tries > self.s.api_retries
        delay = None if give_up else self.backoff.delay(tries, exc.retry_after_s)
        self.events.emit("provider_error", kind=exc.kind, status=exc.status, message=exc.message, **context,
                         attempt=tries, retry_in_s=None if delay is None else round(delay, 3))
        return delay

    async def _find(self, display_name: str) -> JobStatus | None:
        """`GeminiBatch.find`, retried like any call: a request is never sent again on a guess."""
        tries = 0
        while True:
            try:
                return await self.batch.find(display_name)
            except ProviderError as exc:
                tries += 1
                delay = self._failed_try(exc, tries, batch_display_name=display_name)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    # ---- submitting

    def _enqueue(self, waiter: Waiter) -> None:
        self.queue.append(waiter)
        if self._submitter is None:
            self._submitter = asyncio.create_task(self._submit_loop(), name="batch-submit")
        self._wake.set()

    def _worst_usd(self, request: BatchRequest, max_output_tokens: int | None) -> float:
        """Every request byte as an input token, the answer limit and the thinking budget as output."""
        thinking = self.s.thinking_budget if self.s.thinking_budget and self.s.thinking_budget > 0 else 0
        output = (max_output_tokens or OUTPUT_LIMIT_TOKENS) + thinking
        cost = self.prices.cost(self.batch.model, request.size, output, batch=True)
        return cost or 0.0

    def _remaining_usd(self) -> float | None:
        if self.s.budget_usd is None:
            return None
        return self.s.budget_usd - self.stats.cost_usd - self.reserved_usd

    async def _submit_loop(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self._linger()
            self.queue = [w for w in self.queue if not w.future.done()]
            while self.queue and not self._closing:
                chunk = self._next_chunk()
                if not chunk:
                    if not self.jobs:  # nothing open whose real cost could free budget
                        self._stop_budget()
                    break
                await self._create(chunk)

    async def _linger(self) -> None:
        """Wait while the queue still grows (the round's other samples, answers being recorded and
        new samples starting), so that they go out as one job rather than many small ones."""
        step = min(LINGER_S, self.s.batch_poll_s)
        deadline = self.clock() + min(LINGER_MAX_S, self.s.batch_poll_s)
        queued = -1
        while len(self.queue) != queued and self.clock() < deadline and not self._closing:
            queued = len(self.queue)
            await asyncio.sleep(step)

    def _next_chunk(self) -> list[Waiter]:
        """The queue's head, within the job limits and what the budget leaves."""
        remaining = self._remaining_usd()
        chunk: list[Waiter] = []
        size = worst = 0.0
        for waiter in self.queue:
            if len(chunk) >= self.s.batch_max_requests or (chunk and size + waiter.request.size > INLINE_BUDGET_BYTES):
                break
            if remaining is not None and worst + waiter.worst_usd > remaining:
                break
            chunk.append(waiter)
            size += waiter.request.size
            worst += waiter.worst_usd
        return chunk

    def _stop_budget(self) -> None:
        self.events.log(
            f"budget of ${self.s.budget_usd:.2f}: the worst case of the next batch job does not fit what is left: stopping",
            level="warning",
        )
        self._stop("budget")
        for waiter in self.queue:
            if not waiter.future.done():
                waiter.future.set_result(STOPPED)
        self.queue.clear()

    async def _create(self, chunk: list[Waiter]) -> None:
        requests = [w.request for w in chunk]
        worst = sum(w.worst_usd for w in chunk)
        display = f"po-tui-teacher-{uuid.uuid4().hex[:16]}"
        # Durable before the create is sent: killed before the answer, a resume finds the job by this name.
        await self.io.run(self.log.submitting, display, self.batch.model, requests, worst)
        tries = 0
        maybe_created = False  # a failed create the provider may still have carried out
        status: JobStatus | None = None
        while status is None:
            try:
                self._check()
            except Exception:  # noqa: BLE001 - the run is stopping: nothing more is submitted
                if not maybe_created:
                    await self.io.run(self.log.not_created, display)
                self._release(chunk, STOPPED)
                return
            try:
                if maybe_created:
                    status = await self.batch.find(display)
                if status is None:
                    status = await self.batch.create(requests, display)
            except ProviderError as exc:
                tries += 1
                maybe_created = maybe_created or exc.kind in MAYBE_CREATED
                delay = self._failed_try(exc, tries, batch_requests=len(chunk))
                if delay is None:
                    if not maybe_created:  # else a resume asks the provider whether it exists
                        await self.io.run(self.log.not_created, display)
                    self._release(chunk, exc)
                    return
                await asyncio.sleep(delay)
        # Durable before anything else happens: a process killed from here on resumes by polling it.
        await self.io.run(self.log.created, status.name, display, self.batch.model, requests, worst)
        self.persisted[status.name] = JobRecord(
            status.name, self.batch.model, utc_stamp(), {w.key: w.request.digest for w in chunk}, worst, status.state, display_name=display)
        self.stats.requests += len(chunk)
        now = self.clock()
        job = OpenJob(status.name, [w.key for w in chunk], worst, now, {w.key: w for w in chunk})
        for waiter in chunk:
            waiter.submitted = now
        self.jobs[job.name] = job
        self.reserved_usd += worst
        taken = set(id(w) for w in chunk)
        self.queue = [w for w in self.queue if id(w) not in taken]
        self._state_changed(job, status.state)
        job.task = asyncio.create_task(self._poll(job, first_delay=self.s.batch_poll_s), name=f"batch-poll:{job.name}")

    def _release(self, chunk: list[Waiter], result: Any) -> None:
        taken = set(id(w) for w in chunk)
        self.queue = [w for w in self.queue if id(w) not in taken]
        for waiter in chunk:
            if not waiter.future.done():
                if isinstance(result, BaseException):
                    waiter.future.set_exception(result)
                else:
                    waiter.future.set_result(result)

    # ---- polling and collecting

    def _state_changed(self, job: OpenJob, state: str, status: JobStatus | None = None) -> None:
        if state == job.state:
            return
        job.state = state
        if job.name in self.persisted:
            self.persisted[job.name].state = state
        self.io.submit(self.log.state, job.name, state)
        waiting = self.clock() - job.created
        counts: dict[str, Any] = {}
        eta: float | None = None
        if status is not None and status.ended:
            failed = sum(isinstance(r, ProviderError) for r in status.results.values())
            counts = {"done": len(job.keys), "succeeded": len(status.results) - failed, "failed": failed}
            eta = 0.0
            if not job.resumed and state in WITH_RESULTS:
                self.durations.append(waiting)
        elif self.durations:  # the SDK gives no progress counts: judge by this run's finished jobs
            eta = max(0.0, statistics.median(self.durations) - waiting)
        self.events.emit(
            "teacher_batch", job=job.name, state=state, requests=len(job.keys), **counts,
            waiting_s=round(waiting, 3), eta_s=None if eta is None else round(eta, 3),
        )

    async def _poll(self, job: OpenJob, *, first_delay: float) -> None:
        await asyncio.sleep(first_delay)
        while True:
            try:
                status = await self.batch.get(job.name, job.keys)
            except ProviderError as exc:
                # The job is paid for: a poll that failed is tried again at the next interval,
                # however often; a job the provider no longer knows is treated as failed.
                self.stats.provider_errors[exc.kind] += 1
                gone = exc.kind in (NOT_FOUND, INVALID_REQUEST)
                self.events.emit("provider_error", kind=exc.kind, status=exc.status, message=exc.message, batch_job=job.name,
                                 attempt=1, retry_in_s=None if exc.kind == AUTH or gone else self.s.batch_poll_s)
                if gone:
                    status = JobStatus(job.name, FAILED, error=exc.message)
                    self._state_changed(job, status.state, status)
                    break
                if exc.kind == AUTH:
                    self._finish_job(job)
                    for waiter in job.waiters.values():
                        if not waiter.future.done():
                            waiter.future.set_exception(exc)
                    return
                await asyncio.sleep(self.s.batch_poll_s)
                continue
            self._state_changed(job, status.state, status)
            if status.ended:
                break
            await asyncio.sleep(self.s.batch_poll_s)
        await self._collect(job, status)

    def _finish_job(self, job: OpenJob) -> None:
        self.jobs.pop(job.name, None)
        self.reserved_usd = max(0.0, self.reserved_usd - job.worst_usd)
        self._wake.set()  # money freed: the queue may fit now

    async def _collect(self, job: OpenJob, status: JobStatus) -> None:
        if status.state in WITH_RESULTS:
            errors = [k for k, r in status.results.items() if isinstance(r, ProviderError)]
            for key in job.keys:
                result = status.results.get(key) or ProviderError(BAD_RESPONSE, f"batch job {job.name} returned no answer for {key}")
                if isinstance(result, Completion):
                    result = replace(result, extra={**result.extra, "batch_job": job.name},
                                     latency_s=round(self.clock() - job.created, 3))
                waiter = job.waiters.get(key)
                if waiter is None:
                    if isinstance(result, Completion):  # a resumed job's answer the run has not asked for yet
                        self.results[key] = result  # (an error is recorded in `errors`: that request is sent again)
                elif isinstance(result, ProviderError):
                    self._retry_or_fail(waiter, result)
                elif not waiter.future.done():
                    waiter.future.set_result(result)
            await self.io.run(self.log.collected, job.name, status.state, errors)
            if job.name in self.persisted:
                self.persisted[job.name].collected = True
                self.persisted[job.name].errors = set(errors)
        else:
            await self.io.run(self.log.collected, job.name, status.state, [])
            if self._closing and status.state == CANCELLED:
                for waiter in job.waiters.values():
                    if not waiter.future.done():
                        waiter.future.set_result(STOPPED)
            else:
                kind = TIMEOUT if status.state == EXPIRED else SERVER_ERROR
                why = f"batch job {job.name} ended {status.state}" + (f" ({status.error})" if status.error else "")
                self.events.log(f"{why}: its {len(job.waiters)} awaited requests are submitted again (up to --api-retries)",
                                level="warning")
                for waiter in job.waiters.values():
                    self._retry_or_fail(waiter, ProviderError(kind, why))
        self._finish_job(job)

    def _retry_or_fail(self, waiter: Waiter, exc: ProviderError) -> None:
        """A failed try of one request: into the next job, or its error once retries are spent."""
        if waiter.future.done():
            return
        waiter.tries += 1
        # Sent again with the next job (no backoff of its own: jobs take minutes to hours).
        if self._failed_try(exc, waiter.tries, **waiter.context) is None:
            waiter.future.set_exception(exc)
        else:
            self._enqueue(waiter)

    # ---- the end

    async def aclose(self, *, cancel: bool) -> None:
        """Stop submitting and polling; with `cancel`, cancel the open remote jobs first."""
        self._closing = True
        self._wake.set()
        if cancel:
            if self._submitter is not None and not self._submitter.done():
                # A create in flight finishes first, so the job it makes is known and cancelled too.
                await asyncio.wait({self._submitter}, timeout=CANCEL_TIMEOUT_S)
            for name in list(self.jobs):
                await cancel_job(self.batch, self.log, name, self.events, io=self.io)
        tasks = [t for t in [self._submitter, *(j.task for j in self.jobs.values())] if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiter in [*self.queue, *(w for j in self.jobs.values() for w in j.waiters.values())]:
            if not waiter.future.done():
                waiter.future.set_result(STOPPED)
        await self.io.drain()
        self.log.close()


async def cancel_job(batch: GeminiBatch, log: BatchJobLog, name: str, events: Any, *, io: Any = None) -> bool:
    """Ask the provider to cancel one job and record it; False (logged) when that failed."""
    try:
        await asyncio.wait_for(batch.cancel(name), timeout=CANCEL_TIMEOUT_S)
    except (ProviderError, asyncio.TimeoutError) as exc:
        events.log(f"batch job {name}: cancel failed: {exc}", level="warning")
        return False
    if io is not None:
        await io.run(log.state, name, CANCELLED)
    else:
        log.state(name, CANCELLED)
    events.log(f"batch job {name}: cancelled")
    return True


class _Say:
    """The `events.log` of a command with no event log: one line on stderr per message."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def log(self, message: str, level: str = "info") -> None:
        self._say(message)


def cancel_open_jobs(out_dir: str | Path, settings: Any, say: Callable[[str], None], *, warn: Warn | None = None) -> tuple[int, int]:
    """Cancel the jobs batch_jobs.jsonl holds as open (a teacher killed before it could); the key
    comes from the environment, as for a run. (cancelled, open) counts."""
    from engine.providers import make_provider

    log = BatchJobLog(out_dir, warn=warn)
    records = [job for job in log.load().values() if job.open]
    if not records:
        return 0, 0

    async def cancel_all() -> int:
        provider = make_provider(settings)
        done = 0
        try:
            batch = GeminiBatch(provider)  # type: ignore[arg-type]
            for record in records:
                if not record.confirmed:  # killed while creating it: cancel it if the provider has it
                    found = await batch.find(record.display_name)
                    if found is None:
                        log.not_created(record.display_name)
                        done += 1
                        continue
                    record = replace(record, name=found.name, confirmed=True)
                    log.adopted(record)
                status = await batch.get(record.name)
                if status.ended:  # nothing left to cancel; a --resume collects its answers
                    say(f"batch job {record.name} already ended ({status.state}): left for --resume")
                    done += 1
                    continue
                done += await cancel_job(batch, log, record.name, _Say(say))
            return done
        finally:
            await provider.aclose()
            log.close()

    return asyncio.run(cancel_all()), len(records)
