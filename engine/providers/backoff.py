"""Exponential backoff with jitter that honours the server's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_s: float = 1.0
    max_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based): "equal jitter" in
        [d/2, d] with d = min(max, base * 2^(attempt-1)), and never less than Retry-After."""
        rng = rng or random
        d = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        wait = d / 2 + rng.uniform(0, d / 2)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return wait
