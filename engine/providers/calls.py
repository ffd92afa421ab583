"""One provider call path for every stage: rate limits, retries, backoff, Retry-After, error events.

Why one: the teacher and eval stages both call the same providers, and every rule here is about
the provider, not the stage. Two copies drifted (eval's skipped the rate limiter, so evaluating
through Gemini ignored `--rpm`/`--tpm`); now both stages build a `ProviderCaller` and differ only
in what they do with the answer.

A call: wait for the limiter (requests and estimated tokens per minute), call the provider,
correct the limiter with the real token usage. A transient failure (429, 5xx, timeout, dropped
connection, unparseable body) is retried after an exponential backoff with jitter that is never
shorter than the server's Retry-After, and a 429 with Retry-After pauses every request sharing
the limiter, not only this one. Every failed try is one `provider_error` event. A call that still
fails, or fails in a way retrying cannot help (`fatal` or not retryable), raises its
`ProviderError`; what that means for the run (reject the sample, leave the case unfinished, stop
everything on a fatal error) is the stage's decision.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from engine.providers.backoff import Backoff
from engine.providers.base import RATE_LIMITED, TIMEOUT, Completion, Message, Provider, ProviderError
from engine.providers.limiter import RateLimiter
from engine.runlog.events import register_event_type

register_event_type(
    "provider_error",
    "A provider call failed: kind, status, message, attempt (this call's try number), retry_in_s (null "
    "when given up), and what the call was for (concept_id; the teacher adds variant).",
    required=("kind", "message"),
)

# The provider enforces its own timeout; the caller waits this much longer before it calls the
# provider hung (a client that never returns would otherwise hold its slot forever).
HANG_GRACE_S = 30.0
# Tokens assumed for an answer when the request sets no output limit (the estimate the token
# limiter reserves before the call; the real usage corrects it afterwards).
DEFAULT_OUTPUT_ESTIMATE = 2048


def estimate_tokens(system: str, conversation: Sequence[Message], max_output: int | None) -> int:
    """About four characters a token for the prompt, plus the answer's limit (or 2048)."""
    chars = len(system) + sum(len(m.text) for m in conversation)
    return chars // 4 + (max_output or DEFAULT_OUTPUT_ESTIMATE)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed call is tried again."""

    api_retries: int = 6  # tries after the first
    backoff: Backoff = Backoff()
    timeout_s: float = 120.0  # the provider's own per-call timeout


@dataclass
class CallStats:
    """What a caller counts; a stage may pass its own object with these two fields (the teacher's
    tally), so its running numbers include them without a copy."""

    requests: int = 0  # tries sent to the provider
    provider_errors: Counter = field(default_factory=Counter)  # failed tries by kind


class ProviderCaller:
    """Calls one provider under one limiter; shared by every request of a stage's run.

    `check` runs before each try and again once the limiter lets the request through: a stage
    raises from it to abandon the call when the run is stopping (budget, cancel, fatal error
    elsewhere), so a request that queued behind the limiter is not sent after all.
    """

    def __init__(
        self,
        provider: Provider,
        limiter: RateLimiter,
        policy: RetryPolicy,
        events: Any,
        *,
        check: Callable[[], None] | None = None,
        stats: Any = None,
        jitter: random.Random | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.limiter = limiter
        self.policy = policy
        self.events = events
        self._check = check or (lambda: None)
        self.jitter = jitter or random.Random()
        self._sleep = sleep
        self.stats = stats if stats is not None else CallStats()
        # Tasks whose request is with the provider right now: a stage that stops early may drop
        # the calls still waiting (for the limiter, a backoff) but keep these answers.
        self.sending: set[asyncio.Task] = set()

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
        """The provider's answer; its ProviderError once retrying is over or cannot help.

        `context` (concept_id, variant, ...) goes into each `provider_error` event.
        """
        estimate = estimate_tokens(system, conversation, max_output_tokens)
        tries = 0
        while True:
            self._check()
            tries += 1
            await self.limiter.acquire(estimate)
            self._check()
            self.stats.requests += 1
            task = asyncio.current_task()
            self.sending.add(task)
            try:
                completion = await asyncio.wait_for(
                    self.provider.generate(
                        system, list(conversation), temperature=temperature, max_output_tokens=max_output_tokens, seed=seed
                    ),
                    timeout=self.policy.timeout_s + HANG_GRACE_S,
                )
            except asyncio.TimeoutError:
                exc = ProviderError(TIMEOUT, f"no answer within {self.policy.timeout_s + HANG_GRACE_S:.0f}s")
            except ProviderError as err:
                exc = err
            else:
                self.limiter.record_tokens(estimate, completion.input_tokens + completion.output_tokens)
                return completion
            finally:
                self.sending.discard(task)
            self.stats.provider_errors[exc.kind] += 1
            give_up = exc.fatal or not exc.retryable or tries > self.policy.api_retries
            delay = None if give_up else self.policy.backoff.delay(tries, exc.retry_after_s, self.jitter)
            self.events.emit(
                "provider_error",
                kind=exc.kind,
                status=exc.status,
                message=exc.message,
                **dict(context or {}),
                attempt=tries,
                retry_in_s=round(delay, 3) if delay is not None else None,
            )
            if delay is None:
                raise exc
            if exc.kind == RATE_LIMITED and exc.retry_after_s:
                self.limiter.pause(exc.retry_after_s)  # every request waits, not only this one
            await self._sleep(delay)
