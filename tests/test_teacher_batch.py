"""`po-tui teacher --mode batch`: the Gemini Batch API through the REAL google-genai client against
a fake batch server on 127.0.0.1 (tests/fakes/batch_server.py): success at the batch price,
partial success with per-request errors, an expired job, SIGKILL between create and completion
then --resume (never a second create), cancel (SIGTERM, --cancel-batches, po-tui cancel), the
providers batch mode refuses, and the worst-case budget gate."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.cli import main
from engine.providers.base import Message
from engine.providers.gemini import GeminiProvider
from engine.providers.gemini_batch import GeminiBatch
from engine.runlog.tail import read_events
from engine.stages.concepts import generate_concepts
from engine.stages.teacher.batch import BatchJobLog, request_key
from engine.stages.teacher.pricing import DEFAULT_PRICES
from engine.store.atomic import atomic_write_json, atomic_write_jsonl
from po_tui.app import CockpitApp
from tests.fakes.batch_server import BatchPlan, FakeGeminiBatch
from tests.fakes.llm_servers import error, ok
from tests.fakes.po_responder import po_responder
from tests.test_tui import open_tab

KEY = "AIzaFAKE-batch-do-not-leak-5d2e"
ROOT = Path(__file__).resolve().parents[1]
FLASH = DEFAULT_PRICES["gemini-2.5-flash"]
NEVER = 10**6  # polls a job stays RUNNING


@pytest.fixture
def concepts(tmp_path):
    def make(n: int) -> Path:
        path = tmp_path / f"concepts-{n}.jsonl"
        atomic_write_jsonl(path, generate_concepts(n, 3))
        return path

    return make


@pytest.fixture(autouse=True)
def gemini_key(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def teacher(concepts: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["teacher", "--concepts", str(concepts), "--out", str(out), "--provider", "gemini", "--base-url", url,
            "--mode", "batch", "--batch-poll", "0.02", "--concurrency", "16", "--backoff-base", "0.01", *extra]


def events(out: Path, kind: str) -> list[dict]:
    return [e["data"] for e in read_events(out / "teacher.events.jsonl") if e["type"] == kind]


def key(n: int, variant: int = 0, attempt: int = 1) -> str:
    return request_key(f"POCON-{n:04d}", variant, attempt)


def sample_keys(rows: list[dict]) -> list[tuple[str, int]]:
    return [(r["concept_id"], r.get("variant", (r.get("metadata") or {}).get("variant"))) for r in rows]


@pytest.fixture
def batch_run(tmp_path, concepts) -> tuple[Path, FakeGeminiBatch]:
    """A batch run that reaches its target of 5 in one job."""
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder, default=ok(prompt_tokens=1000, output_tokens=400, thoughts_tokens=100)) as server:
        assert main(teacher(concepts(6), out, server.url, "--max-records", "5", "--thinking-budget", "512")) == 0
    return out, server


def test_a_batch_run_reaches_its_target_at_the_batch_price(batch_run, capsys):
    out, server = batch_run
    dataset = lines(out / "po_teacher_dataset.jsonl")
    assert len(dataset) == 5 and len(set(sample_keys(dataset))) == 5
    assert server.requests == [] and list(server.jobs) == ["batches/fake1"]  # no interactive call, one job
    job = server.jobs["batches/fake1"]
    assert job.keys == [key(n) for n in range(1, 6)]
    # The API reads proto JSON: camelCase or the field's snake_case name (the SDK's spelling varies).
    assert all(set(r["generationConfig"]["thinkingConfig"].items()) & {("thinkingBudget", 512), ("thinking_budget", 512)}
               for r in job.requests)
    responses = lines(out / "responses.jsonl")
    price = FLASH.cost(1000, 500, batch=True)
    assert price == pytest.approx(FLASH.cost(1000, 500) / 2)
    assert len(responses) == 5 and all(r["extra"]["batch_job"] == "batches/fake1" for r in responses)
    assert all(r["cost_usd"] == pytest.approx(price) and r["thinking_tokens"] == 100 for r in responses)
    summary = json.loads((out / "teacher_run.json").read_text())["summary"]
    assert summary["cost_usd"] == pytest.approx(5 * price) and summary["requests"] == 5
    states = [e["state"] for e in events(out, "teacher_batch")]
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    done = events(out, "teacher_batch")[-1]
    assert (done["requests"], done["done"], done["succeeded"], done["failed"]) == (5, 5, 5, 0)
    rows = lines(out / "batch_jobs.jsonl")
    assert [r["event"] for r in rows] == ["submitting", "created", "state", "state", "state", "collected"]
    assert rows[1]["job"] == "batches/fake1" and len(rows[1]["requests"]) == 5 and rows[1]["worst_usd"] > 0
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    assert "batch jobs: succeeded 1" in " ".join(capsys.readouterr().out.split())


async def test_the_teacher_tab_shows_the_batch_jobs_states(batch_run):
    out, _ = batch_run
    app = CockpitApp(out, poll_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        text = await open_tab(pilot, "teacher", "5 / 5 target")
        assert re.search(r"batch\s+succeeded 1", text), text


def test_per_request_errors_are_retried_in_the_next_job_or_rejected(tmp_path, concepts):
    out = tmp_path / "out"
    plan = BatchPlan(errors={0: (8, f"Resource has been exhausted (key {KEY})"), 1: (3, "Request contains an invalid argument")})
    with FakeGeminiBatch(po_responder, plans=[plan]) as server:
        code = main(teacher(concepts(3), out, server.url, "--api-retries", "2"))
    assert code == 0
    created = Counter(server.created_keys())
    assert created == {key(1): 2, key(2): 1, key(3): 1}  # the 429 asked again in a second job, the 400 not
    assert sorted(sample_keys(lines(out / "po_teacher_dataset.jsonl"))) == [("POCON-0001", 0), ("POCON-0003", 0)]
    rejects = lines(out / "rejects.jsonl")
    assert [(r["concept_id"], r["reason"]) for r in rejects] == [("POCON-0002", "provider_error:invalid_request")]
    kinds = sorted((e["concept_id"], e["kind"]) for e in events(out, "provider_error"))
    assert kinds == [("POCON-0001", "rate_limited"), ("POCON-0002", "invalid_request")]
    collected = [r for r in lines(out / "batch_jobs.jsonl") if r["event"] == "collected"]
    assert collected[0]["errors"] == [{"concept_id": "POCON-0001", "variant": 0, "attempt": 1},
                                      {"concept_id": "POCON-0002", "variant": 0, "attempt": 1}]
    assert all(KEY not in path.read_text() for path in out.iterdir())  # the error echoed the key: scrubbed


def test_a_create_that_failed_with_503_is_sent_again_after_checking_no_job_was_made(tmp_path, concepts):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder) as server:
        server.create_errors.append(error(503))
        code = main(teacher(concepts(3), out, server.url))
    assert code == 0 and list(server.jobs) == ["batches/fake1"] and len(lines(out / "po_teacher_dataset.jsonl")) == 3
    assert any(path.split("?")[0].endswith("/batches") for path in server.gets)  # looked for it by display name first
    assert [e["kind"] for e in events(out, "provider_error")] == ["server_error"]


def test_batch_mode_fills_a_job_when_concurrency_is_not_set(tmp_path, concepts):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder) as server:
        assert main(["teacher", "--concepts", str(concepts(12)), "--out", str(out), "--base-url", server.url,
                     "--mode", "batch", "--batch-poll", "0.02"]) == 0
    assert [len(job.keys) for job in server.jobs.values()] == [12]  # not 8 (the interactive default), then 4


def test_jobs_are_cut_at_batch_max_requests(tmp_path, concepts):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder) as server:
        assert main(teacher(concepts(5), out, server.url, "--batch-max-requests", "2")) == 0
    assert [len(job.keys) for job in server.jobs.values()] == [2, 2, 1]
    assert Counter(server.created_keys()) == {key(n): 1 for n in range(1, 6)}


def test_jobs_are_cut_under_the_inline_size_limit(tmp_path, concepts, monkeypatch):
    from engine.stages.teacher import batch

    monkeypatch.setattr(batch, "INLINE_BUDGET_BYTES", 9_000)  # a prompt is 2-4 kB: two or three a job, not five
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder) as server:
        assert main(teacher(concepts(5), out, server.url)) == 0
    sizes = [sum(len(json.dumps(r)) for r in job.requests) for job in server.jobs.values()]
    assert len(sizes) >= 2 and max(sizes) <= 9_000, sizes
    assert Counter(server.created_keys()) == {key(n): 1 for n in range(1, 6)}


def test_a_failed_poll_is_tried_again_and_a_job_the_provider_lost_is_submitted_again(tmp_path, concepts):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder) as server:
        server.get_errors.extend([error(503), error(404, message="batch not found")])
        code = main(teacher(concepts(3), out, server.url))
    assert code == 0 and len(lines(out / "po_teacher_dataset.jsonl")) == 3
    assert len(server.jobs) == 2 and Counter(server.created_keys()) == {key(n): 2 for n in range(1, 4)}
    kinds = [(e["kind"], e.get("batch_job")) for e in events(out, "provider_error") if "batch_job" in e]
    assert kinds == [("server_error", "batches/fake1"), ("not_found", "batches/fake1")]


def test_an_auth_error_on_create_stops_the_run_in_one_line(tmp_path, concepts, capsys):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder) as server:
        server.create_errors.append(error(403, message="Permission denied"))
        code = main(teacher(concepts(3), out, server.url))
    err = capsys.readouterr().err
    assert code == 2 and server.jobs == {}
    assert "po-tui teacher: error: provider: gemini: auth 403: PERMISSION_DENIED" in err and "Traceback" not in err
    assert [r["event"] for r in lines(out / "batch_jobs.jsonl")] == ["submitting", "not_created"]


def test_an_expired_job_is_submitted_again_once_and_the_run_reaches_its_target(tmp_path, concepts):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder, plans=[BatchPlan(final="EXPIRED")]) as server:
        code = main(teacher(concepts(4), out, server.url, "--max-records", "4"))
    assert code == 0
    assert len(server.jobs) == 2 and Counter(server.created_keys()) == {key(n): 2 for n in range(1, 5)}
    assert len(lines(out / "po_teacher_dataset.jsonl")) == 4
    summary = json.loads((out / "teacher_run.json").read_text())["summary"]
    assert summary["provider_errors"] == {"timeout": 4} and summary["requests"] == 8
    assert [e["state"] for e in events(out, "teacher_batch")][:3] == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_EXPIRED"]
    logs = [e["message"] for e in events(out, "log")]
    assert any("batches/fake1 ended JOB_STATE_EXPIRED" in m and "submitted again" in m for m in logs)


def test_an_expired_job_without_retries_left_rejects_its_samples_as_provider_errors(tmp_path, concepts):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder, default_plan=BatchPlan(final="EXPIRED")) as server:
        code = main(teacher(concepts(2), out, server.url, "--api-retries", "0"))
    assert code == 1 and len(server.jobs) == 1
    assert {r["reason"] for r in lines(out / "rejects.jsonl")} == {"provider_error:timeout"}


def test_a_lost_create_reply_is_found_by_its_display_name_not_created_twice(tmp_path, concepts):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder) as server:
        server.drop_create_replies = 1
        code = main(teacher(concepts(3), out, server.url))
    assert code == 0 and len(server.jobs) == 1 and len(lines(out / "po_teacher_dataset.jsonl")) == 3
    assert [e["kind"] for e in events(out, "provider_error")] == ["connection"]


def _popen(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "GEMINI_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "engine", *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_created_row(out: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while not any(r["event"] == "created" for r in lines(out / "batch_jobs.jsonl")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("killed", ["after the create", "before the job name was recorded"])
def test_sigkill_between_create_and_completion_then_resume_never_creates_twice(tmp_path, concepts, killed):
    out = tmp_path / "out"
    concept_file = concepts(8)
    with FakeGeminiBatch(po_responder, plans=[BatchPlan(polls=NEVER)]) as server:
        proc = _popen(teacher(concept_file, out, server.url, "--max-records", "6"))
        assert server.job_created.wait(30), proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)  # the server saw the create; the job is still running
        proc.wait()
        rows = lines(out / "batch_jobs.jsonl")
        assert rows[0]["event"] == "submitting"  # durable before the create was sent
        if killed == "before the job name was recorded":
            atomic_write_jsonl(out / "batch_jobs.jsonl", rows[:1])
        server.jobs["batches/fake1"].plan = BatchPlan(polls=0)  # it completes while the teacher is down
        code = main(teacher(concept_file, out, server.url, "--max-records", "6", "--resume"))
    assert code == 0
    assert list(server.jobs) == ["batches/fake1"] and Counter(server.created_keys()) == {key(n): 1 for n in range(1, 7)}
    dataset = lines(out / "po_teacher_dataset.jsonl")
    assert len(dataset) == 6 and len(set(sample_keys(dataset))) == 6
    assert all(r["extra"]["batch_job"] == "batches/fake1" for r in lines(out / "responses.jsonl"))


def test_sigterm_cancels_the_open_remote_job(tmp_path, concepts):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder, plans=[BatchPlan(polls=NEVER)]) as server:
        proc = _popen(teacher(concepts(4), out, server.url))
        _wait_for_created_row(out, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert server.cancels == ["batches/fake1"], err.decode()
    states = [r.get("state") for r in lines(out / "batch_jobs.jsonl") if r["event"] == "state"]
    assert states[-1] == "JOB_STATE_CANCELLED"
    assert KEY not in err.decode() and KEY not in (out / "batch_jobs.jsonl").read_text()


def _job_left_by_a_killed_teacher(server: FakeGeminiBatch, out: Path) -> str:
    """An open job recorded in out/batch_jobs.jsonl, as a teacher killed mid-wait leaves it."""
    async def create() -> str:
        provider = GeminiProvider("gemini-2.5-flash", api_key=KEY, base_url=server.url)
        try:
            batch = GeminiBatch(provider)
            request = batch.request(key(1), "system", [Message("user", "prompt")], temperature=0.2, max_output_tokens=None, seed=1)
            status = await batch.create([request], "po-tui-teacher-left")
            log = BatchJobLog(out)
            log.created(status.name, "po-tui-teacher-left", "gemini-2.5-flash", [request], 0.1)
            log.close()
            return status.name
        finally:
            await provider.aclose()

    return asyncio.run(create())


def test_cancel_batches_cancels_the_jobs_a_dead_teacher_left_open(tmp_path, capsys):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder, plans=[BatchPlan(polls=NEVER)]) as server:
        name = _job_left_by_a_killed_teacher(server, out)
        base = ["teacher", "--out", str(out), "--provider", "gemini", "--base-url", server.url, "--cancel-batches"]
        assert main(base) == 0
        assert main(base) == 0  # nothing open any more: nothing sent
        assert server.cancels == [name]
    err = capsys.readouterr().err
    assert "1 of 1 open batch job(s) cancelled" in err and "0 of 0" in err and KEY not in err
    assert main(["teacher", "--out", str(tmp_path / "none"), "--cancel-batches"]) == 2


def test_po_tui_cancel_of_a_run_without_engine_cancels_its_teachers_batch_jobs(tmp_path, capsys):
    run = tmp_path / "run"
    with FakeGeminiBatch(po_responder, plans=[BatchPlan(polls=NEVER)]) as server:
        name = _job_left_by_a_killed_teacher(server, run / "teacher")
        (run / "config.yaml").write_text(f"teacher:\n  provider: gemini\n  mode: batch\n  base_url: {server.url}\n")
        atomic_write_json(run / "manifest.json", {"format": "po-tui-run/1", "state": "running", "jobs": []})
        assert main(["cancel", str(run)]) == 0
        assert server.cancels == [name]
    assert KEY not in capsys.readouterr().err


@pytest.mark.parametrize("provider, why", [
    ("vertex", "Vertex AI batch jobs read only GCS or BigQuery sources"),
    ("openai", "not the openai provider"),
    ("synthetic", "not the synthetic provider"),
])
def test_batch_mode_is_refused_for_other_providers_in_one_line(tmp_path, concepts, capsys, provider, why):
    out = tmp_path / "out"
    code = main(["teacher", "--concepts", str(concepts(2)), "--out", str(out), "--provider", provider, "--model", "m",
                 "--mode", "batch", "--base-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--mode" in err and why in err
    assert not out.exists()


def test_the_budget_admits_only_jobs_whose_worst_case_fits(tmp_path, concepts):
    # Worst case per request: 100,000 answer tokens at $1.25/M = $0.125 plus its bytes as input
    # tokens: two fit in $0.30, a third would not.
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder, default=ok(prompt_tokens=1000, output_tokens=400)) as server:
        code = main(teacher(concepts(6), out, server.url, "--max-records", "6", "--max-output-tokens", "100000", "--budget-usd", "0.3"))
    assert code == 0
    assert [len(job.keys) for job in server.jobs.values()] == [2, 2, 2]
    created = [r for r in lines(out / "batch_jobs.jsonl") if r["event"] == "created"]
    assert all(0.25 < r["worst_usd"] <= 0.3 for r in created)
    assert len(lines(out / "po_teacher_dataset.jsonl")) == 6
    pending = [e["eta_s"] for e in events(out, "teacher_batch") if e["state"] == "JOB_STATE_PENDING"]
    assert pending[0] is None and all(eta is not None and eta >= 0 for eta in pending[1:])  # judged by job 1's time


def test_when_no_job_fits_the_budget_the_run_stops_without_submitting(tmp_path, concepts, capsys):
    out = tmp_path / "out"
    with FakeGeminiBatch(po_responder) as server:
        code = main(teacher(concepts(3), out, server.url, "--max-output-tokens", "100000", "--budget-usd", "0.1"))
    assert code == 1 and server.jobs == {}
    assert json.loads((out / "teacher_run.json").read_text())["summary"]["stop_reason"] == "budget"
    assert "budget" in capsys.readouterr().err
