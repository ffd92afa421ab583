"""The one provider call path (engine.providers.calls) and eval through it: `--rpm`/`--tpm` pace
eval's provider calls as they pace the teacher's (eval used to skip the limiter).

The limiter runs on a fake clock that only its own sleeps advance, so minutes of rate limiting
take no time and the waits it computes are exact."""

from __future__ import annotations

import asyncio
import json

import pytest

from engine.cli import main
from engine.errors import InputError
from engine.providers import calls
from engine.providers.backoff import Backoff
from engine.providers.base import AUTH, INVALID_REQUEST, RATE_LIMITED, SERVER_ERROR, TIMEOUT, Completion, Message, ProviderError
from engine.providers.calls import ProviderCaller, RetryPolicy, estimate_tokens
from engine.providers.limiter import RateLimiter
from engine.stages.concepts import generate_concepts
from engine.stages.eval import remote
from engine.stages.eval.generate import USER, Request, Turn
from engine.stages.eval.remote import ProviderGenerator
from engine.stages.eval.settings import EvalSettings
from engine.store.atomic import atomic_write_jsonl


class ClockedLimiter(RateLimiter):
    """A RateLimiter on a fake clock: its sleeps advance the clock, and every grant is recorded."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.grants: list[tuple[float, float, float]] = []  # (time, tokens asked, tokens in the window)
        super().__init__(rpm, tpm, clock=lambda: self.now, sleep=self._advance)

    async def _advance(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    async def acquire(self, tokens: float = 0.0) -> None:
        await super().acquire(tokens)
        self.grants.append((self.now, tokens, self._token_sum))


class Events:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict]] = []

    def emit(self, type_: str, /, **data) -> None:  # EventWriter.emit's signature
        self.emitted.append((type_, data))


class Scripted:
    """A provider that fails as scripted, then answers; it notes the limiter's clock at each call."""

    name = "scripted"

    def __init__(self, script: list[ProviderError | None], limiter: ClockedLimiter) -> None:
        self.script = list(script)
        self.limiter = limiter
        self.calls: list[float] = []

    async def generate(self, system, messages, *, temperature, max_output_tokens, seed):  # noqa: ANN001
        self.calls.append(self.limiter.now)
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        return Completion("answer", "STOP", 10, 5, 0.01, "m")


def _caller(script, *, rpm=None, retries=3, check=None):
    limiter = ClockedLimiter(rpm=rpm)
    provider = Scripted(script, limiter)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the backoff: noted, and passed on the fake clock
        slept.append(seconds)
        limiter.now += seconds

    events = Events()
    caller = ProviderCaller(provider, limiter, RetryPolicy(retries, Backoff(1.0, 8.0), 5.0), events, check=check, sleep=sleep)
    return caller, provider, limiter, events, slept


def _call(caller: ProviderCaller) -> Completion:
    return asyncio.run(caller.call("sys", [Message("user", "prompt")], temperature=0.0, max_output_tokens=100, seed=1,
                                   context={"concept_id": "C1"}))


def test_a_429_with_retry_after_pauses_every_request_then_succeeds():
    caller, provider, limiter, events, slept = _caller([ProviderError(RATE_LIMITED, "slow down", status=429, retry_after_s=5.0)])
    assert _call(caller).text == "answer"
    (kind, data), = events.emitted
    assert kind == "provider_error" and data["kind"] == RATE_LIMITED and data["status"] == 429
    assert data["concept_id"] == "C1" and data["attempt"] == 1 and data["retry_in_s"] >= 5.0
    assert slept == [pytest.approx(data["retry_in_s"], abs=1e-3)]
    assert limiter._paused_until == 5.0  # the shared pause: every request waits for Retry-After
    assert caller.stats.requests == 2 and dict(caller.stats.provider_errors) == {RATE_LIMITED: 1}
    assert provider.calls[1] >= 5.0


def test_transient_errors_are_retried_with_backoff_then_given_up():
    caller, provider, _, events, slept = _caller([ProviderError(SERVER_ERROR, "boom", status=503)] * 3, retries=2)
    with pytest.raises(ProviderError) as err:
        _call(caller)
    assert err.value.kind == SERVER_ERROR and len(provider.calls) == 3
    assert [d["attempt"] for _, d in events.emitted] == [1, 2, 3]
    retry_in = [d["retry_in_s"] for _, d in events.emitted]
    assert retry_in[-1] is None and 0.5 <= retry_in[0] <= 1.0 and 1.0 <= retry_in[1] <= 2.0  # equal jitter, doubling
    assert slept == pytest.approx(retry_in[:2], abs=1e-3)


@pytest.mark.parametrize("kind", [AUTH, INVALID_REQUEST])
def test_fatal_and_unretryable_errors_are_not_retried(kind):
    caller, provider, _, events, slept = _caller([ProviderError(kind, "no")])
    with pytest.raises(ProviderError):
        _call(caller)
    assert len(provider.calls) == 1 and slept == [] and events.emitted[0][1]["retry_in_s"] is None


def test_a_stopping_run_sends_nothing():
    class Stop(Exception):
        pass

    def stopping() -> None:
        raise Stop

    caller, provider, _, _, _ = _caller([], check=stopping)
    with pytest.raises(Stop):
        _call(caller)
    assert provider.calls == []


def test_a_hung_provider_is_a_timeout(monkeypatch):
    class Hung:
        name = "hung"

        async def generate(self, *args, **kwargs):  # noqa: ANN002, ANN003
            await asyncio.sleep(60)

    monkeypatch.setattr(calls, "HANG_GRACE_S", 0.0)
    events = Events()
    caller = ProviderCaller(Hung(), RateLimiter(), RetryPolicy(0, Backoff(), 0.05), events)
    with pytest.raises(ProviderError) as err:
        _call(caller)
    assert err.value.kind == TIMEOUT and events.emitted[0][1]["kind"] == TIMEOUT


def test_the_token_estimate_reserves_the_answer_limit():
    conversation = [Message("user", "x" * 400)]
    assert estimate_tokens("s" * 400, conversation, 100) == 300
    assert estimate_tokens("", conversation, None) == 100 + calls.DEFAULT_OUTPUT_ESTIMATE


# --- eval through a provider honours --rpm / --tpm ------------------------------------------------


@pytest.fixture
def limiters(monkeypatch) -> list[ClockedLimiter]:
    """Every limiter eval builds, on the fake clock."""
    made: list[ClockedLimiter] = []

    def build(rpm=None, tpm=None):  # noqa: ANN001
        made.append(ClockedLimiter(rpm, tpm))
        return made[-1]

    monkeypatch.setattr(remote, "RateLimiter", build)
    return made


def _eval(tmp_path, *flags: str) -> tuple[int, str]:
    concepts = atomic_write_jsonl(tmp_path / "concepts.jsonl", generate_concepts(5, 9))
    out = tmp_path / "out"
    code = main(["eval", "--dataset", str(concepts), "--provider", "synthetic", "--tag", "teacher", "--out", str(out),
                 "--max-samples", "0", "--retries", "0", "--concurrency", "4", "--synthetic-defect-rate", "0", *flags])
    return code, str(out)


def test_eval_through_a_provider_keeps_to_rpm(tmp_path, limiters):
    code, out = _eval(tmp_path, "--rpm", "2")
    assert code == 0
    (limiter,) = limiters
    assert limiter.rpm == 2 and limiter.tpm is None
    # Five calls at two a minute: two now, two a minute later, the last one two minutes later.
    assert [t for t, _, _ in limiter.grants] == [0.0, 0.0, 60.0, 60.0, 120.0]
    assert limiter.sleeps == [60.0, 60.0]
    doc = json.loads(next((tmp_path / "out").glob("teacher_*.json")).read_text())
    assert doc["total_samples"] == 5 and doc["valid_samples"] == 5


def test_eval_through_a_provider_keeps_to_tpm(tmp_path, limiters):
    code, _ = _eval(tmp_path, "--tpm", "5000")
    assert code == 0
    (limiter,) = limiters
    assert limiter.tpm == 5000 and limiter.rpm is None
    assert len(limiter.grants) == 5 and all(tokens > calls.DEFAULT_OUTPUT_ESTIMATE for _, tokens, _ in limiter.grants)
    # Each call waited until the tokens of the last minute left room for its estimate.
    assert limiter.sleeps and all(in_window <= 5000 for _, _, in_window in limiter.grants[1:])
    assert limiter.grants[-1][0] >= 60.0


def test_eval_without_limits_never_waits(tmp_path, limiters):
    code, _ = _eval(tmp_path)
    assert code == 0
    (limiter,) = limiters
    assert len(limiter.grants) == 5 and limiter.sleeps == []


@pytest.mark.parametrize("flag, value", [("--rpm", "0"), ("--tpm", "-5"), ("--rpm", "nan")])
def test_eval_refuses_a_limit_that_is_not_positive(tmp_path, capsys, flag, value):
    code, out = _eval(tmp_path, flag, value)
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_fatal_error_stops_the_calls_queued_behind_the_limiter():
    """An auth error ends the evaluation at once: calls waiting for the rate limit are dropped,
    neither sent nor left to sit out their minute."""
    reported = asyncio.Event()

    class Refusing:
        name = "refusing"
        calls = 0

        async def generate(self, *args, **kwargs):  # noqa: ANN002, ANN003
            self.calls += 1
            raise ProviderError(AUTH, "key refused", status=401)

        async def aclose(self) -> None:
            pass

    class Reporting(Events):
        def emit(self, type_: str, /, **data) -> None:
            super().emit(type_, **data)
            reported.set()  # the caller raises right after, and the generator notes the fatal error

    class Held(ClockedLimiter):
        async def _advance(self, seconds: float) -> None:
            await reported.wait()  # the minute passes only after the first call has failed
            await super()._advance(seconds)

    provider, limiter, done = Refusing(), Held(rpm=1), []
    s = EvalSettings(dataset="d.jsonl", out="o", tag="teacher", provider="synthetic", rpm=1, concurrency=3)
    generator = ProviderGenerator(provider, s, Reporting(), limiter=limiter)
    requests = [Request(i, (Turn(USER, "prompt"),), seed=i, concept_id=f"C{i}") for i in range(3)]
    try:
        with pytest.raises(InputError, match="key refused"):
            generator.run(requests, done.append)
    finally:
        generator.close()
    assert provider.calls == 1 and done == [] and limiter.sleeps == []


def test_a_fatal_error_keeps_the_answers_already_on_their_way():
    """Nothing already asked for is thrown away: the answer in flight is handed on."""
    in_flight, failed = asyncio.Event(), asyncio.Event()

    class Mixed:
        name = "mixed"

        def __init__(self) -> None:
            self.seeds: list[int] = []

        async def generate(self, system, messages, *, temperature, max_output_tokens, seed):  # noqa: ANN001
            self.seeds.append(seed)
            if seed == 0:
                await in_flight.wait()
                failed.set()
                raise ProviderError(AUTH, "key refused", status=401)
            in_flight.set()
            await failed.wait()
            await asyncio.sleep(0.01)  # answers after the fatal error was noted
            return Completion("late answer", "STOP", 10, 5, 0.01, "m")

        async def aclose(self) -> None:
            pass

    provider, done = Mixed(), []
    s = EvalSettings(dataset="d.jsonl", out="o", tag="teacher", provider="synthetic", concurrency=2)
    generator = ProviderGenerator(provider, s, Events())
    requests = [Request(i, (Turn(USER, "prompt"),), seed=i, concept_id=f"C{i}") for i in range(4)]
    try:
        with pytest.raises(InputError, match="key refused"):
            generator.run(requests, done.append)
    finally:
        generator.close()
    assert provider.seeds == [0, 1]  # the other two waited for the gate and were dropped
    assert [(g.key, g.text) for g in done] == [(1, "late answer")]


def test_the_pipelines_teacher_reference_keeps_to_the_teachers_limits(tmp_path):
    from engine.pipeline.config import parse_config
    from engine.pipeline.plan import build_plan

    def reference(teacher: dict) -> dict:
        """The settings the teacher-reference eval job is handed (its `--config` file)."""
        config = parse_config({"teacher": teacher, "eval": {"teacher_reference": True}})
        job = next(job for job in build_plan(config, tmp_path / "run") if job.name == "eval-teacher")
        return job.settings["eval"]

    settings = reference({"provider": "gemini", "rpm": 30, "tpm": 100000})
    assert settings["rpm"] == 30 and settings["tpm"] == 100000
    assert "rpm" not in reference({"provider": "gemini"})  # no limit configured: none passed (fingerprints unchanged)
