"""`po-tui teacher` end to end: the real google-genai client against the fake Gemini server,
SIGKILL and resume, the offline synthetic provider, rescore and stats, and the key never leaking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.runlog.tail import read_events
from engine.stages.concepts import generate_concepts
from engine.store.atomic import atomic_write_jsonl
from tests.fakes.llm_servers import (
    FakeGemini,
    drop_connection,
    empty_candidates,
    error,
    malformed_json,
    max_tokens,
    safety,
    slow,
)
from tests.fakes.po_responder import po_responder

KEY = "AIzaFAKE-do-not-leak-7f3a9c2b"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def concepts_file(tmp_path):
    def make(n: int, seed: int = 3) -> Path:
        path = tmp_path / f"concepts-{n}.jsonl"
        atomic_write_jsonl(path, generate_concepts(n, seed))
        return path

    return make


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_no_key_anywhere(directory: Path, *texts: str) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    for text in texts:
        assert KEY not in text


def test_every_fault_path_through_the_real_sdk(tmp_path, concepts_file, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    script = [
        error(429, retry_after="1"),
        error(429),
        error(500),
        error(503),
        slow(3.0),
        malformed_json(),
        drop_connection(),
        empty_candidates(block_reason="OTHER"),
        safety(),
        max_tokens("```yaml VISION\nproduct_name: Cut\n```\n```yaml REVIEW\nstatus: ali"),
    ]
    out = tmp_path / "out"
    with FakeGemini(po_responder, script=script) as server:
        started = time.monotonic()
        code = main([
            "teacher", "--concepts", str(concepts_file(3)), "--out", str(out), "--provider", "gemini",
            "--base-url", server.url, "--concurrency", "1", "--timeout", "0.5", "--api-retries", "10",
            "--backoff-base", "0.01", "--max-retries", "2",
        ])
        elapsed = time.monotonic() - started
        requests = list(server.requests)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert elapsed >= 1.0  # the Retry-After: 1 was honoured
    dataset, rejects = lines(out / "po_teacher_dataset.jsonl"), lines(out / "rejects.jsonl")
    assert len(dataset) == 2 and len(rejects) == 1
    reject = rejects[0]
    assert reject["reason"] == "missing_review_block" and "MAX_TOKENS" in reject["detail"]
    assert reject["metadata"]["retry_reasons"] == ["missing_vision_block", "missing_vision_block", "missing_review_block"]
    kinds = [e["data"]["kind"] for e in read_events(out / "teacher.events.jsonl") if e["type"] == "provider_error"]
    assert kinds == ["rate_limited", "rate_limited", "server_error", "server_error", "timeout", "bad_response", "connection"]
    # The retry after the empty answer told the model what was missing, in a multi-turn conversation.
    retry_body = requests[8].body
    assert [c["role"] for c in retry_body["contents"]] == ["user", "model", "user"]
    assert "VISION block was missing" in retry_body["contents"][2]["parts"][0]["text"]
    assert requests[0].headers["x-goog-api-key"] == KEY
    # Every paid answer (three for the rejected sample, one each for the others) is in responses.jsonl.
    assert len(lines(out / "responses.jsonl")) == 5
    for record in dataset:
        assert record["metadata"]["provider"] == "gemini" and record["metric"] == "po-v2"
        assert record["metadata"]["cost_usd"] > 0
    assert_no_key_anywhere(out, captured.out, captured.err)


def test_missing_key_and_auth_failure_are_one_line_errors(tmp_path, concepts_file, monkeypatch, capsys):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    assert main(["teacher", "--concepts", str(concepts_file(2)), "--out", str(tmp_path / "a")]) == 2
    assert "no API key: set GEMINI_API_KEY or GOOGLE_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeGemini(po_responder, default=error(403, message="API key not valid", echo_key=True)) as server:
        code = main(["teacher", "--concepts", str(concepts_file(2)), "--out", str(tmp_path / "b"), "--base-url", server.url,
                     "--backoff-base", "0.01", "--concurrency", "1"])
        count = server.request_count
    err = capsys.readouterr().err
    assert code == 2 and count == 1  # fatal: the run stopped at the first refusal
    assert "auth 403" in err.splitlines()[-1]
    assert_no_key_anywhere(tmp_path / "b", err)


def test_a_5xx_or_429_saying_the_key_is_bad_is_retried_not_fatal(tmp_path, concepts_file, monkeypatch, capsys):
    # The status decides: an overloaded backend (or a proxy) may say anything in a 503's body.
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    bad_key = "API key not valid. Please pass a valid API key."
    script = [error(503, message=bad_key, reason="API_KEY_INVALID"), error(500, message=bad_key),
              error(429, message=bad_key, reason="API_KEY_INVALID")]
    out = tmp_path / "out"
    with FakeGemini(po_responder, script=script) as server:
        code = main(["teacher", "--concepts", str(concepts_file(2)), "--out", str(out), "--base-url", server.url,
                     "--concurrency", "1", "--backoff-base", "0.01", "--api-retries", "3"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(lines(out / "po_teacher_dataset.jsonl")) == 2 and "auth" not in err
    kinds = [e["data"]["kind"] for e in read_events(out / "teacher.events.jsonl") if e["type"] == "provider_error"]
    assert kinds == ["server_error", "server_error", "rate_limited"]


def _teacher_cmd(concepts: Path, out: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "engine", "teacher", "--concepts", str(concepts), "--out", str(out),
        "--provider", "gemini", "--base-url", url, "--concurrency", "4", "--max-records", "40",
        "--backoff-base", "0.01", *extra,
    ]


def test_sigkill_mid_run_then_resume_gives_exactly_the_target(tmp_path, concepts_file):
    concepts = concepts_file(60, seed=11)
    out = tmp_path / "out"
    env = {**os.environ, "GEMINI_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
    with FakeGemini(po_responder, latency_s=0.05) as server:
        proc = subprocess.Popen(_teacher_cmd(concepts, out, server.url), env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(lines(out / "po_teacher_dataset.jsonl")) < 8:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before_dataset = len(lines(out / "po_teacher_dataset.jsonl"))
        before_requests = server.request_count
        stored = len(lines(out / "responses.jsonl"))
        assert 8 <= before_dataset < 40

        again = subprocess.run(_teacher_cmd(concepts, out, server.url), env=env, cwd=ROOT, capture_output=True, text=True)
        assert again.returncode == 2 and "pass --resume" in again.stderr  # never silently appends

        resumed = subprocess.run(_teacher_cmd(concepts, out, server.url, "--resume"), env=env, cwd=ROOT, capture_output=True, text=True)
        after_requests = server.request_count
    assert resumed.returncode == 0, resumed.stderr
    dataset = lines(out / "po_teacher_dataset.jsonl")
    keys = [(r["concept_id"], r["metadata"]["variant"]) for r in dataset]
    assert len(dataset) == 40 and len(set(keys)) == 40
    finished = {(r["concept_id"], r["variant"]) for r in lines(out / "rejects.jsonl")} | set(keys)
    responses = lines(out / "responses.jsonl")
    # Nothing paid for before the kill was asked again: each stored answer was replayed.
    assert len(responses) == stored + (after_requests - before_requests)
    attempts = {}
    for r in responses:
        attempts.setdefault((r["concept_id"], r["variant"]), []).append(r["attempt"])
    assert all(a == list(range(1, len(a) + 1)) for a in attempts.values())
    assert set(attempts) >= finished
    job = [e for e in read_events(out / "teacher.events.jsonl") if e["type"] == "job_started"]
    assert len(job) == 2  # the killed run and the resumed one share one event log
    assert_no_key_anywhere(out, resumed.stdout, resumed.stderr)


def test_resume_refuses_changed_settings_unless_allowed(tmp_path, concepts_file, capsys):
    concepts = concepts_file(6)
    out = tmp_path / "out"
    base = ["teacher", "--concepts", str(concepts), "--out", str(out), "--provider", "synthetic", "--max-records", "3"]
    assert main(base) == 0
    assert main(base + ["--resume", "--max-records", "5", "--min-score", "0.9"]) == 2
    err = capsys.readouterr().err
    assert "min_score 0.8 -> 0.9" in err and "--allow-change" in err
    assert main(base + ["--resume", "--max-records", "5", "--min-score", "0.9", "--allow-change"]) == 0
    manifest = json.loads((out / "teacher_run.json").read_text())
    assert [s["min_score"] for s in manifest["segments"]] == [0.8, 0.9]
    assert len(lines(out / "po_teacher_dataset.jsonl")) == 5


def test_synthetic_provider_makes_200_records_offline(tmp_path, concepts_file, capsys):
    out = tmp_path / "out"
    code = main(["teacher", "--concepts", str(concepts_file(260, seed=5)), "--out", str(out), "--provider", "synthetic",
                 "--max-records", "200", "--concurrency", "16", "--seed", "5"])
    assert code == 0
    dataset = lines(out / "po_teacher_dataset.jsonl")
    assert len(dataset) == 200
    assert all(r["metadata"]["synthetic"] is True and r["metadata"]["provider"] == "synthetic" for r in dataset)
    assert all(r["score"] >= 0.80 for r in dataset)
    statuses = {r["teacher_product_owner_review"].split("\n", 1)[0] for r in dataset}
    assert statuses == {"status: aligned", "status: needs_adjustment", "status: misaligned"}
    rejects = lines(out / "rejects.jsonl")
    assert rejects and all(r["reason"] for r in rejects)
    err = capsys.readouterr().err
    assert "teacher: 200/200 accepted" in err

    # rescore from responses.jsonl alone: a stricter threshold keeps fewer, no API call needed.
    assert main(["teacher", "--rescore", "--out", str(out), "--min-score", "0.95"]) == 0
    rescored = lines(out / "po_teacher_dataset.jsonl")
    assert 0 < len(rescored) < 200 and all(r["score"] >= 0.95 for r in rescored)
    assert list(out.glob("po_teacher_dataset.jsonl.before-rescore-*"))

    assert main(["teacher", "--stats", str(out / "po_teacher_dataset.jsonl"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["accepted"] == len(rescored)
    assert set(stats["per_model"]) == {"synthetic-po-1"}


def test_settings_from_a_pipeline_config_with_cli_overrides(tmp_path, concepts_file, capsys):
    config = tmp_path / "pipeline.yaml"
    config.write_text("teacher:\n  provider: synthetic\n  max_records: 4\n  min_scor: 0.9\n")
    base = ["teacher", "--concepts", str(concepts_file(8)), "--out", str(tmp_path / "out"), "--config", str(config)]
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{config}:4: teacher.min_scor: unknown key (did you mean 'min_score'?)")
    config.write_text("teacher:\n  provider: synthetic\n  max_records: 4\n  concurrency: many\n")
    assert main(base) == 2
    assert f"{config}:4: teacher.concurrency:" in capsys.readouterr().err
    config.write_text("teacher:\n  provider: synthetic\n  max_records: 4\n  synthetic:\n    defect_rate: 0\n")
    assert main(base + ["--max-records", "3"]) == 0  # the flag wins over the file
    manifest = json.loads((tmp_path / "out" / "teacher_run.json").read_text())
    assert manifest["settings"]["max_records"] == 3 and manifest["settings"]["synthetic"]["defect_rate"] == 0
    assert len(lines(tmp_path / "out" / "po_teacher_dataset.jsonl")) == 3


def test_openai_compatible_endpoint_through_the_stage(tmp_path, concepts_file, monkeypatch, capsys):
    from tests.fakes.llm_servers import FakeOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "out"
    with FakeOpenAI(po_responder, script=[error(429, retry_after="0"), error(502)]) as server:
        code = main(["teacher", "--concepts", str(concepts_file(4)), "--out", str(out), "--provider", "openai",
                     "--model", "qwen2.5:7b", "--base-url", server.url + "/v1", "--backoff-base", "0.01", "--concurrency", "2"])
        auth = {r.headers.get("authorization") for r in server.requests}
    captured = capsys.readouterr()
    assert code == 0, captured.err
    dataset = lines(out / "po_teacher_dataset.jsonl")
    assert len(dataset) == 4 and {r["metadata"]["model"] for r in dataset} == {"qwen2.5:7b"}
    assert auth == {f"Bearer {KEY}"}
    assert "requests to a model without a price: counted as $0" in captured.err
    assert_no_key_anywhere(out, captured.out, captured.err)
