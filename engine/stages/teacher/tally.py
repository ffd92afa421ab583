"""Running numbers of a teacher run: what the TUI, `po-tui status` and the summary show."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class PhaseCounts:
    """One planned phase's numbers (teacher.phases): what it was asked for and what it got."""

    phase: int  # 1-based, the plan's order
    model: str
    target: int
    mode: str | None = None
    thinking_budget: int | None = None
    accepted: int = 0
    rejected: int = 0
    requests: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0

    def row(self) -> dict[str, Any]:
        done = self.accepted + self.rejected
        return {
            "phase": self.phase, "model": self.model, "target": self.target, "mode": self.mode,
            "thinking_budget": self.thinking_budget, "accepted": self.accepted, "rejected": self.rejected,
            "acceptance_rate": self.accepted / done if done else None, "requests": self.requests,
            "cost_usd": round(self.cost_usd, 6), "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "thinking_tokens": self.thinking_tokens,
        }


@dataclass
class TeacherTally:
    target: int | None
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    accepted: int = 0  # all accepted, earlier segments included
    rejected: int = 0
    accepted_run: int = 0  # this process only: the rate is about now
    rejected_run: int = 0
    requests: int = 0
    replayed: int = 0
    retries: int = 0
    retried_items: int = 0  # finished items that needed at least one retry
    retry_successes: int = 0  # ... and were accepted in the end
    in_flight: int = 0
    cost_usd: float = 0.0  # all money spent in this output directory
    cost_usd_run: float = 0.0
    unpriced_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0  # billed output, thinking included
    thinking_tokens: int = 0  # the part of output_tokens the model spent thinking
    provider_errors: Counter = field(default_factory=Counter)
    reject_reasons: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    per_model: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    phases: list[PhaseCounts] = field(default_factory=list)  # empty: a run without teacher.phases
    current_phase: PhaseCounts | None = None  # the phase now running: counts below go to it too

    def __post_init__(self) -> None:
        self.started = self.clock()

    def phase_response(self, cost_usd: float, input_tokens: int, output_tokens: int, thinking_tokens: int) -> None:
        """A paid answer of the running phase (the run totals are counted by the runner)."""
        if self.current_phase is not None:
            ph = self.current_phase
            ph.requests += 1
            ph.cost_usd += cost_usd
            ph.input_tokens += input_tokens
            ph.output_tokens += output_tokens
            ph.thinking_tokens += thinking_tokens

    def phase_sample(self, accepted: bool) -> None:
        """A finished sample of the running phase."""
        if self.current_phase is not None:
            if accepted:
                self.current_phase.accepted += 1
            else:
                self.current_phase.rejected += 1

    def elapsed(self) -> float:
        return max(1e-9, self.clock() - self.started)

    def records_per_min(self) -> float:
        return self.accepted_run / self.elapsed() * 60.0

    def acceptance_rate(self) -> float | None:
        done = self.accepted + self.rejected
        return self.accepted / done if done else None

    def retry_success_rate(self) -> float | None:
        return self.retry_successes / self.retried_items if self.retried_items else None

    def eta_s(self) -> float | None:
        if self.target is None:
            return None
        remaining = max(0, self.target - self.accepted)
        if remaining == 0:
            return 0.0
        rate = self.accepted_run / self.elapsed()
        return remaining / rate if rate > 0 else None

    def snapshot(self) -> dict[str, Any]:
        per_accepted = self.cost_usd / self.accepted if self.accepted else None
        snap = {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "attempted": self.accepted + self.rejected,
            "target": self.target,
            "in_flight": self.in_flight,
            "requests": self.requests,
            "replayed": self.replayed,
            "retries": self.retries,
            "records_per_min": round(self.records_per_min(), 3),
            "acceptance_rate": self.acceptance_rate(),
            "retry_success_rate": self.retry_success_rate(),
            "eta_s": self.eta_s(),
            "elapsed_s": round(self.elapsed(), 3),
            "cost_usd": round(self.cost_usd, 6),
            "cost_usd_run": round(self.cost_usd_run, 6),
            "cost_per_accepted_usd": round(per_accepted, 6) if per_accepted is not None else None,
            "unpriced_requests": self.unpriced_requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "thinking_tokens": self.thinking_tokens,
            "provider_errors": dict(self.provider_errors),
            "reject_reasons": dict(self.reject_reasons),
            "statuses": dict(self.statuses),
            "per_model": {m: dict(c) for m, c in self.per_model.items()},
        }
        if self.phases:  # only planned runs carry it: other runs' events stay as they were
            snap["per_phase"] = [ph.row() for ph in self.phases]
            snap["phase"] = self.current_phase.phase if self.current_phase is not None else None
        return snap
