"""`--thinking-budget`: validated per model, sent as ThinkingConfig through the real google-genai
client (asserted on the fake Gemini server's request JSON), recorded in the records and the resume
fingerprint, and its thinking tokens billed as output in the cost, `--stats` and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.stages.concepts import generate_concepts
from engine.stages.teacher.pricing import DEFAULT_PRICES
from engine.stages.teacher.settings import TeacherSettings, thinking_budget_problem
from engine.store.atomic import atomic_write_jsonl
from tests.fakes.llm_servers import FakeGemini, ok
from tests.fakes.po_responder import po_responder

KEY = "AIzaFAKE-thinking-7f3a9c2b"
PROMPT, ANSWER, THOUGHTS = 120, 80, 300


@pytest.fixture
def concepts(tmp_path) -> Path:
    path = tmp_path / "concepts.jsonl"
    atomic_write_jsonl(path, generate_concepts(4, 3))
    return path


@pytest.fixture
def server():
    with FakeGemini(po_responder, default=ok(prompt_tokens=PROMPT, output_tokens=ANSWER, thoughts_tokens=THOUGHTS)) as fake:
        yield fake


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def teacher(concepts: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["teacher", "--concepts", str(concepts), "--out", str(out), "--provider", "gemini", "--base-url", url,
            "--max-records", "2", "--concurrency", "1", "--backoff-base", "0.01", *extra]


def thinking_configs(server: FakeGemini) -> list[object]:
    """Each request's generationConfig.thinkingConfig as {"thinkingBudget": N} (None: absent).

    The API parses proto JSON, which takes a field's camelCase or its original snake_case name;
    the SDK's spelling differs between releases, so both count, nothing else does."""
    out: list[object] = []
    for r in server.requests:
        config = (r.body.get("generationConfig") or {}).get("thinkingConfig")
        if isinstance(config, dict):
            config = {("thinkingBudget" if k == "thinking_budget" else k): v for k, v in config.items()}
        out.append(config)
    return out


def test_the_budget_reaches_every_request_the_records_and_the_bill(tmp_path, concepts, server, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "out"
    assert main(teacher(concepts, out, server.url, "--thinking-budget", "512")) == 0
    assert server.requests and thinking_configs(server) == [{"thinkingBudget": 512}] * len(server.requests)
    flash = DEFAULT_PRICES["gemini-2.5-flash"]
    per_call = (PROMPT * flash.input_per_mtok + (ANSWER + THOUGHTS) * flash.output_per_mtok) / 1e6
    responses = lines(out / "responses.jsonl")
    for row in responses:
        assert row["thinking_budget"] == 512 and row["thinking_tokens"] == THOUGHTS
        assert row["output_tokens"] == ANSWER + THOUGHTS  # thoughts billed as output
        assert row["cost_usd"] == pytest.approx(per_call)
    records = lines(out / "po_teacher_dataset.jsonl")
    assert len(records) == 2
    for rec in records:
        meta = rec["metadata"]
        assert meta["thinking_budget"] == 512
        assert meta["thinking_tokens"] == THOUGHTS * meta["attempts"]
    manifest = json.loads((out / "teacher_run.json").read_text())
    assert manifest["fingerprint"]["thinking_budget"] == 512
    assert manifest["summary"]["thinking_tokens"] == THOUGHTS * len(responses)
    err = capsys.readouterr().err
    assert f"{THOUGHTS * len(responses)} of them thinking (billed as output)" in err

    assert main(["teacher", "--stats", str(out / "po_teacher_dataset.jsonl"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["thinking_tokens"] == THOUGHTS * len(responses)
    assert stats["cost_usd"] == pytest.approx(per_call * len(responses), abs=1e-6)
    assert stats["per_model"]["gemini-2.5-flash"]["thinking_tokens"] == THOUGHTS * len(responses)
    assert main(["teacher", "--stats", str(out / "po_teacher_dataset.jsonl")]) == 0
    assert f"{THOUGHTS * len(responses)} thinking tokens (billed as output)" in capsys.readouterr().out


def test_no_budget_sends_no_thinking_config_and_keeps_the_old_fingerprint(tmp_path, concepts, server, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "out"
    assert main(teacher(concepts, out, server.url)) == 0
    assert server.requests and thinking_configs(server) == [None] * len(server.requests)
    manifest = json.loads((out / "teacher_run.json").read_text())
    assert "thinking_budget" not in manifest["fingerprint"]  # runs from before the setting resume unchanged
    assert all(rec["metadata"]["thinking_budget"] is None for rec in lines(out / "po_teacher_dataset.jsonl"))


def test_a_resume_with_another_budget_is_refused_unless_allowed(tmp_path, concepts, server, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "out"
    assert main(teacher(concepts, out, server.url, "--thinking-budget", "512")) == 0
    manifest_before = (out / "teacher_run.json").read_bytes()
    for other in (["--thinking-budget", "1024"], []):
        capsys.readouterr()
        assert main(teacher(concepts, out, server.url, "--resume", *other)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert "thinking_budget 512 -> " in err and "--allow-change" in err
        assert (out / "teacher_run.json").read_bytes() == manifest_before  # nothing written
    assert main(teacher(concepts, out, server.url, "--resume", "--thinking-budget", "512")) == 0
    sent = len(server.requests)
    args = teacher(concepts, out, server.url, "--resume", "--thinking-budget", "1024", "--allow-change")
    args[args.index("--max-records") + 1] = "3"
    assert main(args) == 0
    assert thinking_configs(server)[sent:] == [{"thinkingBudget": 1024}] * (len(server.requests) - sent)
    manifest = json.loads((out / "teacher_run.json").read_text())
    assert [s.get("thinking_budget") for s in manifest["segments"]] == [512, 512, 1024]


@pytest.mark.parametrize("model, budget, words", [
    ("gemini-2.5-pro", "0", "cannot turn thinking off"),
    ("gemini-2.5-pro", "127", "gemini-2.5-pro 128-32768"),
    ("gemini-2.5-pro", "32769", "gemini-2.5-pro 128-32768"),
    ("gemini-2.5-flash", "24577", "gemini-2.5-flash 0-24576 (0: off)"),
    ("gemini-2.5-flash-lite", "100", "gemini-2.5-flash-lite 0 (off) or 512-24576"),
    ("models/gemini-2.5-pro-preview-06-05", "0", "cannot turn thinking off"),
    ("gemini-2.5-flash", "-2", "--thinking-budget"),
])
def test_a_budget_the_model_cannot_take_is_one_line_exit_2(tmp_path, concepts, monkeypatch, capsys, model, budget, words):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "out"
    code = main(["teacher", "--concepts", str(concepts), "--out", str(out), "--model", model, "--thinking-budget", budget])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "--thinking-budget" in err and words in err
    assert not out.exists()


@pytest.mark.parametrize("provider", ["synthetic", "openai"])
def test_providers_without_thinking_refuse_a_budget(tmp_path, concepts, capsys, provider):
    out = tmp_path / "out"
    code = main(["teacher", "--concepts", str(concepts), "--out", str(out), "--provider", provider,
                 "--model", "m", "--base-url", "http://127.0.0.1:9", "--thinking-budget", "512"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--thinking-budget" in err and "gemini and vertex only" in err
    assert not out.exists()


def test_a_bad_budget_in_the_config_names_the_file_and_line(tmp_path, concepts, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    config = tmp_path / "pipeline.yaml"
    config.write_text("teacher:\n  model: gemini-2.5-pro\n  thinking_budget: 0\n", encoding="utf-8")
    code = main(["teacher", "--concepts", str(concepts), "--out", str(tmp_path / "out"), "--config", str(config)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(config) in err and ":3" in err and "thinking_budget" in err and "cannot turn thinking off" in err


def test_an_unknown_model_gets_the_budget_unchecked_with_a_warning(tmp_path, concepts, server, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "out"
    assert main(teacher(concepts, out, server.url, "--model", "gemini-9-ultra", "--thinking-budget", "99999")) == 0
    assert "gemini-9-ultra has no known range here; sent unchecked" in capsys.readouterr().err
    assert thinking_configs(server)[0] == {"thinkingBudget": 99999}


@pytest.mark.parametrize("model, budget", [
    ("gemini-2.5-flash", 0), ("gemini-2.5-flash", 24576), ("gemini-2.5-flash", -1), ("gemini-2.5-pro", 128),
    ("gemini-2.5-pro", 32768), ("gemini-2.5-pro", -1), ("gemini-2.5-flash-lite", 0), ("gemini-2.5-flash-lite", 512),
    ("gemini-2.5-flash-preview-05-20", 0),
])
def test_budgets_each_model_accepts(model, budget):
    assert thinking_budget_problem(model, budget) is None
    settings = TeacherSettings(provider="vertex", model=model, thinking_budget=budget)
    assert settings.fingerprint()["thinking_budget"] == budget
    assert settings.thinking_budget_warning() is None
