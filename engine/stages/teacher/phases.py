"""Planned phases (teacher.phases): one teacher run, model after model, over one output directory.

Why a wrapper and not a runner mode: each phase is an ordinary TeacherRun with the phase's
settings (model, mode, thinking budget, temperature) and its own provider, so everything a run
guarantees (answers stored before they are parsed, replay on resume, budget, cancel) holds per
phase unchanged. What the phases share is the store, one tally (the totals, the budget and the
ETA are the run's) and the finished samples: a concept accepted or rejected in phase 1 is not
asked again in phase 2.

Phase n runs until it has its own `max_records` accepted; its rows are tagged `phase: n`. On
resume, the accepted records per phase are counted from the stored rows: finished phases are
skipped, the unfinished one continues, replaying only its own stored answers (an answer phase 1
received after reaching its target belongs to phase 1's model: phase 2 asks that concept again).
A phase that stops for any reason but its target (budget, cancel, a fatal provider error,
concepts exhausted) ends the run.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.core.records import Concept
from engine.providers.base import Provider
from engine.stages.teacher.phasecount import count_phases, phase_of
from engine.stages.teacher.pricing import PriceTable
from engine.stages.teacher.runner import TeacherRun
from engine.stages.teacher.settings import TeacherSettings
from engine.stages.teacher.store import ResumeState, TeacherStore
from engine.stages.teacher.tally import PhaseCounts, TeacherTally
from engine.store.jsonl import iter_jsonl

UNTAGGED_PHASE = 1  # rows written before the run was planned count toward its first phase


def _rows(path: Path) -> list[dict[str, Any]]:
    # No torn-line warning here: store.load() read the same files just before and warned once.
    return [row for _, row in iter_jsonl(path)] if path.exists() else []


def phase_view(state: ResumeState, phase: int) -> ResumeState:
    """The resume state phase `phase` runs on: every finished sample of the run (none is asked
    twice), but only its own stored answers to replay."""
    responses: dict = defaultdict(list)
    for key, rows in state.responses.items():
        own = [r for r in rows if phase_of(r, UNTAGGED_PHASE) == phase]
        if own:
            responses[key] = own
    return ResumeState(
        accepted=state.accepted, rejected=state.rejected, responses=responses, cost_usd=state.cost_usd,
        input_tokens=state.input_tokens, output_tokens=state.output_tokens, request_count=state.request_count,
    )


def plan_label(settings: TeacherSettings) -> str:
    """The models of a plan in order, for summaries: `gemini-2.5-pro then gemini-2.5-flash`."""
    return " then ".join(settings.phase_settings(p).resolved_model() for p in settings.phases or [])


class PhasedRun:
    """Runs `settings.phases` in order; `run()` returns the run's summary with `per_phase`."""

    def __init__(
        self,
        settings: TeacherSettings,
        concepts: Sequence[tuple[str, Concept]],
        store: TeacherStore,
        make_provider: Callable[[TeacherSettings], Provider],
        events: Any,
        *,
        prices: PriceTable | None = None,
        on_change: Any = None,
    ) -> None:
        if not settings.phases:
            raise ValueError("PhasedRun needs teacher.phases")
        self.s = settings
        self.concepts = concepts
        self.store = store
        self.make_provider = make_provider
        self.events = events
        self.prices = prices or PriceTable()
        self.on_change = on_change
        self.current: TeacherRun | None = None
        self.cancelled = False
        self.plan = [(n, phase, settings.phase_settings(phase)) for n, phase in enumerate(settings.phases, 1)]
        self.tally = TeacherTally(target=settings.max_records)

    def cancel(self) -> None:
        """SIGTERM / Ctrl-C: stop the running phase and start no other."""
        self.cancelled = True
        if self.current is not None:
            self.current.cancel()

    def _start_tally(self, state: ResumeState) -> None:
        """The run's totals and each phase's counts from what is stored, once, before phase 1."""
        t = self.tally
        t.accepted = len(state.accepted)
        t.rejected = sum(state.finished(k, retry_errors=self.s.retry_errors) for k in state.rejected)
        t.cost_usd = state.cost_usd
        stored = count_phases(
            _rows(self.store.dataset_path), _rows(self.store.rejects_path),
            (row for rows in state.responses.values() for row in rows), untagged=UNTAGGED_PHASE,
        )
        for n, phase, ps in self.plan:
            counts = PhaseCounts(n, ps.resolved_model(), phase.max_records, getattr(ps, "mode", None), ps.thinking_budget)
            for name, value in stored.get(n, {}).items():
                if name != "model":
                    setattr(counts, name, value)
            t.phases.append(counts)

    async def run(self) -> dict[str, Any]:
        state = self.store.load()
        self._start_tally(state)
        last: TeacherRun | None = None
        stop = "target"
        for (n, _, ps), counts in zip(self.plan, self.tally.phases, strict=True):
            remaining = counts.target - counts.accepted
            if remaining <= 0:
                continue  # done in an earlier segment
            if self.cancelled:
                stop = "cancelled"
                break
            if last is not None:
                state = self.store.load()  # what the phases before wrote: finished there, not asked here
            self.tally.current_phase = counts
            self.events.log(f"teacher phase {n}/{len(self.plan)}: {ps.resolved_model()} until {counts.target} accepted "
                            f"({counts.accepted} already)")
            # The phase's target over the run's count: the runner stops at the run's total.
            run_settings = ps.model_copy(update={"max_records": self.tally.accepted + remaining})
            provider = self.make_provider(ps)
            self.current = last = TeacherRun(run_settings, self.concepts, self.store, provider, self.events, prices=self.prices,
                                             resume=phase_view(state, n), on_change=self.on_change, tally=self.tally, phase=n)
            try:
                await last.run()
            finally:
                await provider.aclose()
            stop = last.stop_reason or "target"
            if stop != "target":
                break
        self.tally.current_phase = None
        return self._summary(last, stop)

    def _summary(self, last: TeacherRun | None, stop: str) -> dict[str, Any]:
        snap = last.summary() if last is not None else self.tally.snapshot()
        snap["stop_reason"] = stop
        snap["model"] = plan_label(self.s)
        snap["provider"] = self.s.provider
        snap["prices_as_of"] = self.prices.as_of
        snap["per_phase"] = [ph.row() for ph in self.tally.phases]
        snap["phase"] = None
        return snap
