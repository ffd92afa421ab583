"""The teacher run's decisions with a scripted provider: retries, rejects, errors, budget, resume."""

from __future__ import annotations

import asyncio
import json
from collections import deque

import pytest

from engine.core.blocks import render_response
from engine.core.records import Concept
from engine.errors import InputError
from engine.providers.base import AUTH, RATE_LIMITED, SERVER_ERROR, Completion, ProviderError
from engine.providers.limiter import RateLimiter
from engine.runlog.events import EventWriter
from engine.runlog.tail import read_events
from engine.stages.teacher.pricing import PriceTable, load_prices
from engine.stages.teacher.runner import TeacherRun
from engine.stages.teacher.settings import TeacherSettings
from engine.stages.teacher.store import TeacherStore
from tests.po_samples import REQUIREMENTS_YAML, dump, review, vision

GOOD = render_response(dump(vision()), dump(review()))
NO_REVIEW = f"```yaml VISION\n{dump(vision())}```\n"
BROKEN = GOOD.replace("status: aligned", "status: aligned\nsummary: [unclosed")
WEAK = render_response(dump(vision(target_users=["x"], value_proposition=["y"])), "status: aligned\nsummary: [ok]\nnarrative: short\n")


class Scripted:
    """A provider that plays a script of answers/errors; records each conversation it got."""

    name = "gemini"

    def __init__(self, *steps, model="gemini-2.5-flash"):
        self.steps = deque(steps)
        self.model = model
        self.calls: list[list] = []

    async def generate(self, system, messages, *, temperature, max_output_tokens, seed):
        self.calls.append(list(messages))
        step = self.steps.popleft() if self.steps else GOOD
        await asyncio.sleep(0)
        if isinstance(step, ProviderError):
            raise step
        return Completion(step, "STOP", input_tokens=1000, output_tokens=500, latency_s=0.01, model=self.model)

    async def aclose(self):
        pass


def concepts(n=1):
    return [(f"POCON-{i:04d}", Concept(f"Concept {i}, targeting simple operations.", REQUIREMENTS_YAML, f"POCON-{i:04d}", "simple"))
            for i in range(n)]


def make_run(tmp_path, provider, n=1, **overrides):
    settings = TeacherSettings(provider="gemini", backoff_base_s=0.001, backoff_max_s=0.01, **overrides)
    store = TeacherStore(tmp_path / "out")
    events = EventWriter(tmp_path / "out" / "teacher.events.jsonl", "teacher")
    run = TeacherRun(settings, concepts(n), store, provider, events, resume=store.load())
    return run, store, events


def finish(run, store, events):
    summary = asyncio.run(run.run())
    store.close()
    events.close()
    return summary


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_missing_block_is_retried_with_an_instruction_naming_it(tmp_path):
    provider = Scripted(NO_REVIEW, GOOD)
    run, store, events = make_run(tmp_path, provider)
    summary = finish(run, store, events)
    assert summary["accepted"] == 1 and summary["retries"] == 1
    retry_conversation = provider.calls[1]
    assert [m.role for m in retry_conversation] == ["user", "model", "user"]
    assert "REVIEW block was missing" in retry_conversation[2].text
    record = lines(store.dataset_path)[0]
    assert record["metadata"]["attempts"] == 2
    assert record["metadata"]["retry_reasons"] == ["missing_review_block"]
    assert record["metadata"]["cost_usd"] == pytest.approx(2 * (1000 * 0.30 + 500 * 2.50) / 1e6)
    assert len(lines(store.responses_path)) == 2
    assert summary["retry_success_rate"] == 1.0


def test_invalid_yaml_retry_names_the_line_and_exhaustion_rejects(tmp_path):
    provider = Scripted(BROKEN, BROKEN, BROKEN)
    run, store, events = make_run(tmp_path, provider, max_retries=2)
    summary = finish(run, store, events)
    assert "line" in provider.calls[1][2].text and "not valid YAML" in provider.calls[1][2].text
    assert summary["accepted"] == 0 and summary["rejected"] == 1
    reject = lines(store.rejects_path)[0]
    assert reject["reason"] == "invalid_review_yaml" and "line" in reject["detail"]
    assert reject["metadata"]["attempts"] == 3


def test_low_score_rejected_or_retried(tmp_path):
    run, store, events = make_run(tmp_path, Scripted(WEAK), min_score=0.8)
    assert finish(run, store, events)["reject_reasons"] == {"below_min_score": 1}
    run, store, events = make_run(tmp_path / "b", Scripted(WEAK, GOOD), min_score=0.8, low_score_retries=1)
    summary = finish(run, store, events)
    assert summary["accepted"] == 1
    assert lines(store.dataset_path)[0]["metadata"]["retry_reasons"] == ["low_score"]


def test_transient_errors_are_retried_and_counted(tmp_path):
    provider = Scripted(
        ProviderError(RATE_LIMITED, "quota", status=429, retry_after_s=0.01),
        ProviderError(SERVER_ERROR, "boom", status=503),
        GOOD,
    )
    run, store, events = make_run(tmp_path, provider)
    summary = finish(run, store, events)
    assert summary["accepted"] == 1
    assert summary["provider_errors"] == {"rate_limited": 1, "server_error": 1}
    errors = [e for e in read_events(tmp_path / "out" / "teacher.events.jsonl") if e["type"] == "provider_error"]
    assert [e["data"]["kind"] for e in errors] == ["rate_limited", "server_error"]
    assert errors[0]["data"]["retry_in_s"] >= 0.01  # Retry-After honoured


def test_errors_past_api_retries_become_a_reject_and_the_run_goes_on(tmp_path):
    provider = Scripted(*[ProviderError(SERVER_ERROR, "down", status=500)] * 3, GOOD)
    run, store, events = make_run(tmp_path, provider, n=2, api_retries=2, concurrency=1)
    summary = finish(run, store, events)
    assert summary["rejected"] == 1 and summary["accepted"] == 1
    assert lines(store.rejects_path)[0]["reason"] == "provider_error:server_error"


def test_fatal_error_stops_the_run(tmp_path):
    provider = Scripted(ProviderError(AUTH, "API key not valid", status=403))
    run, store, events = make_run(tmp_path, provider, n=5, concurrency=1)
    summary = finish(run, store, events)
    assert summary["stop_reason"] == "fatal_provider_error"
    assert "auth" in summary["fatal_error"]
    assert len(provider.calls) == 1
    assert not store.rejects_path.exists()  # nothing is marked done: resume will retry them


def test_budget_stops_cleanly(tmp_path):
    run, store, events = make_run(tmp_path, Scripted(), n=10, concurrency=1, budget_usd=0.004)
    summary = finish(run, store, events)
    # each call costs 0.00155 $: the third call crosses the budget
    assert summary["stop_reason"] == "budget"
    assert summary["accepted"] == 3
    assert summary["cost_usd"] >= 0.004


def test_target_is_exact_under_concurrency(tmp_path):
    run, store, events = make_run(tmp_path, Scripted(), n=40, concurrency=16, max_records=25)
    summary = finish(run, store, events)
    assert summary["accepted"] == 25 and summary["stop_reason"] == "target"
    assert len(lines(store.dataset_path)) == 25
    assert len({r["concept_id"] for r in lines(store.dataset_path)}) == 25


def test_resume_replays_stored_answers_without_calling(tmp_path):
    # A run killed right after its first answer was stored, before it was judged.
    store = TeacherStore(tmp_path / "out")
    row = {"concept_id": "POCON-0000", "variant": 0, "attempt": 1, "provider": "gemini", "model": "gemini-2.5-flash",
           "text": NO_REVIEW, "finish_reason": "STOP", "input_tokens": 10, "output_tokens": 10, "cost_usd": 0.5,
           "concept": "Concept 0, targeting simple operations.", "requirements_yaml": REQUIREMENTS_YAML, "tier": "simple"}
    store.append_response(row)
    store.close()
    provider2 = Scripted(GOOD)
    run2, store2, events2 = make_run(tmp_path, provider2, n=1)
    summary = finish(run2, store2, events2)
    assert summary["replayed"] == 1 and summary["requests"] == 1
    assert summary["accepted"] == 1
    # The call made on resume is the retry of the stored answer, with its corrective instruction.
    assert [m.role for m in provider2.calls[0]] == ["user", "model", "user"]
    assert summary["cost_usd"] == pytest.approx(0.5 + (1000 * 0.30 + 500 * 2.50) / 1e6)
    record = lines(store2.dataset_path)[0]
    assert record["metadata"]["attempts"] == 2


def test_finished_samples_are_skipped_on_resume(tmp_path):
    run, store, events = make_run(tmp_path, Scripted(), n=3)
    finish(run, store, events)
    provider = Scripted()
    run2, store2, events2 = make_run(tmp_path, provider, n=5)
    summary = finish(run2, store2, events2)
    assert len(provider.calls) == 2
    assert summary["accepted"] == 5
    ids = [r["concept_id"] for r in lines(store2.dataset_path)]
    assert len(ids) == len(set(ids)) == 5


def test_events_report_samples_retries_and_stats(tmp_path):
    run, store, events = make_run(tmp_path, Scripted(NO_REVIEW, GOOD, BROKEN, BROKEN, BROKEN), n=2, concurrency=1)
    finish(run, store, events)
    evs = read_events(tmp_path / "out" / "teacher.events.jsonl")
    types = [e["type"] for e in evs]
    assert "teacher_retry" in types and "teacher_stats" in types and "progress" in types
    samples = [e["data"] for e in evs if e["type"] == "teacher_sample"]
    assert [s["outcome"] for s in samples] == ["accepted", "rejected"]
    assert samples[0]["status"] == "aligned" and samples[0]["score"] == 1.0
    last = [e["data"] for e in evs if e["type"] == "teacher_stats"][-1]
    assert last["accepted"] == 1 and last["rejected"] == 1 and last["acceptance_rate"] == 0.5


def test_unpriced_models_cost_zero_and_are_counted(tmp_path):
    run, store, events = make_run(tmp_path, Scripted(model="my-local-model"), n=1, model="my-local-model")
    summary = finish(run, store, events)
    assert summary["cost_usd"] == 0 and summary["unpriced_requests"] == 1


def test_price_table_prefix_lookup():
    table = PriceTable()
    assert table.lookup("gemini-2.5-flash-001") == table.lookup("gemini-2.5-flash")
    assert table.lookup("gemini-2.5-flash-lite-preview").rates() == (0.10, 0.40)
    assert table.lookup("models/gemini-2.5-pro").rates() == (1.25, 10.0)
    assert table.cost("unknown", 1, 1) is None


def test_batch_prices_are_half_unless_a_price_file_says_otherwise(tmp_path):
    table = PriceTable()
    assert table.cost("gemini-2.5-flash", 1_000_000, 1_000_000, batch=True) == pytest.approx((0.30 + 2.50) / 2)
    assert table.cost("gemini-2.5-pro", 1_000_000, 0, batch=True) == pytest.approx(0.625)
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "as_of: 2026-01-01\nmodels:\n  m-a: {input: 1, output: 4}\n"
        "  m-b: {input: 1, output: 4, batch_input: 0.8, batch_output: 3}\n"
    )
    loaded = load_prices(prices)
    assert loaded.as_of == "2026-01-01"
    assert loaded.cost("m-a", 1_000_000, 1_000_000, batch=True) == pytest.approx(2.5)
    assert loaded.cost("m-b", 1_000_000, 1_000_000, batch=True) == pytest.approx(3.8)
    assert loaded.to_dict()["usd_per_million_tokens"]["m-b"]["batch_output"] == 3
    prices.write_text("models:\n  m: {input: 1, output: -4}\n")
    with pytest.raises(InputError, match="models.m"):
        load_prices(prices)


def test_rate_limiter_spaces_requests_by_rpm():
    now = [0.0]
    slept: list[float] = []

    async def sleep(s):
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(rpm=2, clock=lambda: now[0], sleep=sleep)

    async def go():
        for _ in range(3):
            await limiter.acquire()

    asyncio.run(go())
    assert slept == [60.0]


def test_rate_limiter_tpm_and_pause():
    now = [0.0]

    async def sleep(s):
        now[0] += s

    limiter = RateLimiter(tpm=1000, clock=lambda: now[0], sleep=sleep)

    async def go():
        await limiter.acquire(600)
        await limiter.acquire(600)  # waits for the first to leave the window
        assert now[0] == 60.0
        limiter.pause(5)
        await limiter.acquire(0)
        assert now[0] == 65.0

    asyncio.run(go())
