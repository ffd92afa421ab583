"""A teacher provider (Gemini, Vertex, OpenAI-compatible, synthetic) answering evaluation requests.

The same providers, credentials and error kinds as `po-tui teacher`, through the same call path
(`engine.providers.calls`): keys come from the environment only. Up to `--concurrency` calls are
in flight, within `--rpm`/`--tpm` (one limiter for the whole evaluation, every round and retry);
transient failures (429, 5xx, timeouts, dropped connections, unparseable bodies) are retried
with backoff, never sooner than Retry-After. A call that still fails leaves its case unfinished
(a rerun retries it); an auth or not-found error stops the run, since every other call would
fail the same way. One event loop serves every round, because provider clients (and the
limiter's lock) are bound to the loop they were first used on.

What the provider is asked depends on who it stands for (`EvalSettings.resolved_prompt_format`):
a teacher gets the teacher's system prompt before the student prompt; a served student or
baseline (vLLM, llama.cpp's llama-server, Ollama behind `--provider openai`) gets exactly the
messages it was trained on -- the student prompt as the only user message, no system message --
so the server's chat template rebuilds the training tokens (a template with a default system
message, as Qwen2.5's, adds it there as it did in training). A served student is also decoded
as the local eval decodes it: 1200 new tokens unless `--max-new-tokens`, and the repetition
penalty sent explicitly, since vLLM otherwise applies the model's generation_config.json (1.05
for Qwen2.5) and llama.cpp its `--repeat-penalty`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence

from engine.core.prompts import teacher_system_prompt
from engine.errors import InputError
from engine.providers.backoff import Backoff
from engine.providers.base import Message, Provider, ProviderError
from engine.providers.calls import ProviderCaller, RetryPolicy
from engine.providers.limiter import RateLimiter
from engine.stages.eval.generate import ASSISTANT, Generation, OnDone, Request
from engine.stages.eval.settings import EvalSettings
from engine.stages.teacher.settings import TeacherSettings


def teacher_settings(s: EvalSettings) -> TeacherSettings:
    """The teacher's settings for this provider, so `make_provider` builds it exactly as the teacher does."""
    return TeacherSettings(
        provider=s.provider,  # type: ignore[arg-type]
        model=s.resolved_model(),
        temperature=s.temperature,
        max_output_tokens=s.resolved_max_new_tokens(),
        timeout_s=s.timeout_s,
        base_url=s.base_url,
        project=s.project,
        location=s.location,
        api_key_env=s.api_key_env,
        seed=s.seed,
        synthetic=s.synthetic,
    )


def make_eval_provider(s: EvalSettings) -> Provider:
    """Build the provider (InputError when a key, project or URL is missing) before anything is written."""
    from engine.providers import make_provider

    provider = make_provider(teacher_settings(s))
    if s.provider == "openai" and s.sends_repetition_penalty:
        # vLLM's name and llama-server's; OpenAI-compatible servers ignore fields they do not know.
        provider.extra_body = {"repetition_penalty": s.repetition_penalty, "repeat_penalty": s.repetition_penalty}
    return provider


class _Abandoned(Exception):
    """A call not sent because the run is stopping (a fatal provider error)."""


class ProviderGenerator:
    name = "provider"

    def __init__(self, provider: Provider, s: EvalSettings, events: Any, *, limiter: RateLimiter | None = None) -> None:
        self.provider = provider
        self.s = s
        self.events = events
        self.system = "" if s.student_prompt else teacher_system_prompt()
        self.limiter = limiter or RateLimiter(s.rpm, s.tpm)
        policy = RetryPolicy(s.api_retries, Backoff(s.backoff_base_s), s.timeout_s)
        self.caller = ProviderCaller(provider, self.limiter, policy, events, check=self._check_fatal)
        self.loop = asyncio.new_event_loop()
        self.fatal: ProviderError | None = None
        self.failures: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []

    def _check_fatal(self) -> None:
        """After an auth or not-found error no call is sent."""
        if self.fatal is not None:
            raise _Abandoned

    def _stop_others(self) -> None:
        """A fatal error: the calls still waiting (for the gate, the limiter, a backoff) are
        dropped now, not after their wait, and their cases stay unfinished; answers already on
        their way are kept."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current and task not in self.caller.sending:
                task.cancel()

    def run(self, requests: Sequence[Request], on_done: OnDone) -> None:
        self.loop.run_until_complete(self._run(requests, on_done))
        if self.fatal is not None:
            raise InputError(f"{self.provider.name}: {self.fatal}", field="provider")

    async def _run(self, requests: Sequence[Request], on_done: OnDone) -> None:
        gate = asyncio.Semaphore(self.s.concurrency)
        last = [time.perf_counter()]
        tasks = self._tasks = [asyncio.create_task(self._one(r, gate, on_done, last)) for r in requests]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _one(self, request: Request, gate: asyncio.Semaphore, on_done: OnDone, last: list[float]) -> None:
        try:
            await self._answer(request, gate, on_done, last)
        except (_Abandoned, asyncio.CancelledError):
            if self.fatal is None:
                raise  # a cancel from outside (Ctrl-C), not our stop

    async def _answer(self, request: Request, gate: asyncio.Semaphore, on_done: OnDone, last: list[float]) -> None:
        async with gate:
            conversation = [Message("model" if t.role == ASSISTANT else "user", t.text) for t in request.turns]
            try:
                completion = await self.caller.call(
                    self.system,
                    conversation,
                    temperature=self.s.temperature,
                    max_output_tokens=self.s.resolved_max_new_tokens(),
                    seed=request.seed,
                    context={"concept_id": request.concept_id},
                )
            except ProviderError as exc:
                self.failures[exc.kind] = self.failures.get(exc.kind, 0) + 1
                if exc.fatal:
                    self.fatal = self.fatal or exc
                    self._stop_others()
                    return
                on_done(Generation(request.key, "", 0, 0, "ERROR", 0.0, 0.0, error=str(exc)))
                return
        now = time.perf_counter()
        share, last[0] = now - last[0], now  # gaps between completions sum to the round's wall time
        on_done(
            Generation(
                key=request.key,
                text=completion.text or "",
                output_tokens=completion.output_tokens,
                input_tokens=completion.input_tokens,
                finish_reason=completion.finish_reason,
                latency_s=completion.latency_s,
                wall_share_s=share,
            )
        )

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.provider.aclose())
        finally:
            self.loop.close()
