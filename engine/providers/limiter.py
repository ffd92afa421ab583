"""Requests-per-minute and tokens-per-minute limits, shared by every request in flight.

A sliding 60-second window (the way API quotas are counted), plus a shared pause: when the server
answers 429 with Retry-After, every worker waits, instead of each one hammering it on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable


class RateLimiter:
    WINDOW_S = 60.0

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], "asyncio.Future[None] | object"] = asyncio.sleep,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._sleep = sleep
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, float]] = deque()
        self._token_sum = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.waited_s = 0.0

    def _expire(self, now: float) -> None:
        horizon = now - self.WINDOW_S
        while self._requests and self._requests[0] <= horizon:
            self._requests.popleft()
        while self._tokens and self._tokens[0][0] <= horizon:
            self._token_sum -= self._tokens.popleft()[1]

    def _wait_needed(self, now: float, tokens: float) -> float:
        wait = max(0.0, self._paused_until - now)
        if self.rpm is not None and len(self._requests) >= self.rpm:
            wait = max(wait, self._requests[0] + self.WINDOW_S - now)
        if self.tpm is not None and self._tokens and self._token_sum + tokens > self.tpm:
            # Wait until enough of the window expires to fit this request.
            need = self._token_sum + tokens - self.tpm
            freed = 0.0
            for ts, amount in self._tokens:
                freed += amount
                if freed >= need:
                    wait = max(wait, ts + self.WINDOW_S - now)
                    break
        return wait

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait until one more request of about `tokens` tokens fits in the window, then take it."""
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                wait = self._wait_needed(now, tokens)
                if wait <= 0:
                    break
                self.waited_s += wait
                await self._sleep(wait)
            self._requests.append(now)
            if tokens:
                self._tokens.append((now, tokens))
                self._token_sum += tokens

    def record_tokens(self, estimated: float, actual: float) -> None:
        """Correct the window once the real usage of a request is known."""
        delta = actual - estimated
        if delta and self.tpm is not None:
            self._tokens.append((self._clock(), delta))
            self._token_sum += delta

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` (a Retry-After from the server)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
