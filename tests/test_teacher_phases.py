"""teacher.phases: one run, model after model, each phase until its own accepted count; every row
tagged with its phase; resume continues in the right phase; a changed plan is refused; per-phase
rows in --stats, the events and the summary. Through the synthetic provider (run logic) and the
real google-genai client against the fake Gemini server (the request's model per phase)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from engine.cli import main
from engine.providers import make_provider
from engine.runlog.events import EventWriter
from engine.runlog.tail import read_events
from engine.stages.concepts import generate_concepts
from engine.stages.teacher.phasecount import count_phases
from engine.stages.teacher.phases import PhasedRun
from engine.stages.teacher.pricing import DEFAULT_PRICES
from engine.stages.teacher.settings import TeacherSettings
from engine.stages.teacher.store import TeacherStore, key_of
from engine.store.atomic import atomic_write_jsonl
from tests.fakes.llm_servers import FakeGemini, ok
from tests.fakes.po_responder import po_responder

KEY = "AIzaFAKE-phases-5d1e0b7a"
PLAN = "teacher:\n  provider: synthetic\n  concurrency: 3\n  phases:\n    - model: syn-a\n      max_records: 3\n" \
       "    - model: syn-b\n      max_records: 4\n"


@pytest.fixture
def concepts(tmp_path) -> Path:
    path = tmp_path / "concepts.jsonl"
    atomic_write_jsonl(path, generate_concepts(24, 3))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def config(tmp_path: Path, text: str = PLAN) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def per_phase_models(out: Path) -> Counter:
    return Counter((r["metadata"]["phase"], r["metadata"]["model"]) for r in lines(out / "po_teacher_dataset.jsonl"))


def test_a_two_phase_run_makes_records_of_both_models_with_per_phase_rows(tmp_path, concepts, capsys):
    out = tmp_path / "out"
    assert main(["teacher", "--config", str(config(tmp_path)), "--concepts", str(concepts), "--out", str(out)]) == 0
    assert per_phase_models(out) == {(1, "syn-a"): 3, (2, "syn-b"): 4}
    responses = lines(out / "responses.jsonl")
    assert {(r["phase"], r["model"]) for r in responses} == {(1, "syn-a"), (2, "syn-b")}
    for row in lines(out / "rejects.jsonl"):
        assert (row["metadata"]["phase"], row["metadata"]["model"]) in {(1, "syn-a"), (2, "syn-b")}
    keys = [key_of(r) for r in lines(out / "po_teacher_dataset.jsonl")]
    assert len(keys) == len(set(keys))
    # Phase 1 ran first: every phase-1 answer was written before any phase-2 answer.
    phases = [r["phase"] for r in responses]
    assert phases == sorted(phases)
    err = capsys.readouterr().err
    assert "7/7 accepted" in err and "phase 1 syn-a: 3/3 accepted" in err and "phase 2 syn-b: 4/4 accepted" in err

    manifest = json.loads((out / "teacher_run.json").read_text())
    rows = manifest["summary"]["per_phase"]
    assert [(r["phase"], r["model"], r["target"], r["accepted"]) for r in rows] == [(1, "syn-a", 3, 3), (2, "syn-b", 4, 4)]
    assert sum(r["requests"] for r in rows) == len(responses)
    assert manifest["fingerprint"]["phases"] == [{"model": "syn-a", "thinking_budget": None}, {"model": "syn-b", "thinking_budget": None}]
    stats_events = [e for e in read_events(out / "teacher.events.jsonl") if e["type"] == "teacher_stats"]
    assert stats_events[-1]["data"]["per_phase"][1]["accepted"] == 4
    assert {e["data"]["phase"] for e in stats_events} >= {1, 2}

    assert main(["teacher", "--stats", str(out / "po_teacher_dataset.jsonl"), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert [(r["phase"], r["model"], r["accepted"]) for r in st["per_phase"]] == [(1, "syn-a", 3), (2, "syn-b", 4)]
    assert sum(r["rejected"] for r in st["per_phase"]) == st["rejected"]
    assert sum(r["requests"] for r in st["per_phase"]) == len(responses)
    assert all(r["input_tokens"] > 0 and r["output_tokens"] > 0 for r in st["per_phase"])
    assert main(["teacher", "--stats", str(out / "po_teacher_dataset.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "phase 1 syn-a: 3 accepted" in text and "phase 2 syn-b: 4 accepted" in text


def test_through_the_real_gemini_client_each_phase_asks_its_own_model_and_budget(tmp_path, concepts, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeGemini(po_responder, default=ok(prompt_tokens=100, output_tokens=50, thoughts_tokens=20)) as server:
        cfg = config(tmp_path, f"teacher:\n  provider: gemini\n  base_url: {server.url}\n  concurrency: 1\n  thinking_budget: 1024\n"
                               "  phases:\n    - model: gemini-2.5-pro\n      max_records: 2\n"
                               "    - model: gemini-2.5-flash\n      max_records: 2\n      thinking_budget: 0\n")
        out = tmp_path / "out"
        assert main(["teacher", "--config", str(cfg), "--concepts", str(concepts), "--out", str(out)]) == 0
        sent = [(r.path.split("?")[0].rsplit("/", 1)[-1], (r.body["generationConfig"].get("thinkingConfig") or {}))
                for r in server.requests]
    models = [path.split(":")[0] for path, _ in sent]
    assert models == sorted(models, key=lambda m: m != "gemini-2.5-pro") and set(models) == {"gemini-2.5-pro", "gemini-2.5-flash"}
    for model, (_, thinking) in zip(models, sent, strict=True):
        budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
        assert budget == (1024 if model == "gemini-2.5-pro" else 0)  # the run's budget, or the phase's own
    assert per_phase_models(out) == {(1, "gemini-2.5-pro"): 2, (2, "gemini-2.5-flash"): 2}
    for row in lines(out / "responses.jsonl"):
        price = DEFAULT_PRICES[row["model"]]
        assert row["cost_usd"] == pytest.approx((100 * price.input_per_mtok + 70 * price.output_per_mtok) / 1e6)
    rows = json.loads((out / "teacher_run.json").read_text())["summary"]["per_phase"]
    assert rows[0]["cost_usd"] > rows[1]["cost_usd"] > 0 and rows[0]["thinking_budget"] == 1024 and rows[1]["thinking_budget"] == 0
    assert rows[0]["thinking_tokens"] == 20 * rows[0]["requests"]


class CancelAfter:
    """A provider factory: synthetic providers, and the phased run cancelled (as by SIGTERM) once
    phase 2's provider has answered `calls` times."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.run: PhasedRun | None = None
        self.made: list[str] = []

    def __call__(self, settings: TeacherSettings):
        provider = make_provider(settings)
        self.made.append(settings.resolved_model())
        if len(self.made) < 2:
            return provider
        generate, outer = provider.generate, self

        async def counted(*args, **kwargs):
            completion = await generate(*args, **kwargs)
            outer.calls -= 1
            if outer.calls == 0:
                outer.run.cancel()
            return completion

        provider.generate = counted
        return provider


def test_resume_mid_phase_two_continues_there_without_redoing_phase_one_or_duplicates(tmp_path, concepts, capsys):
    out = tmp_path / "out"
    cfg = config(tmp_path)
    assert main(["teacher", "--config", str(cfg), "--concepts", str(concepts), "--out", str(out), "--max-records", "1"]) == 2
    assert "add up to 7, not to max_records 1" in capsys.readouterr().err  # the plan's sum or nothing
    settings = TeacherSettings.model_validate({"provider": "synthetic", "concurrency": 1,
                                               "phases": [{"model": "syn-a", "max_records": 3}, {"model": "syn-b", "max_records": 4}]})
    from engine.commands.teacher import check_resume, concept_list

    class Args:
        resume, allow_change = False, False

    store = TeacherStore(out)
    manifest = check_resume(store, settings, Args())
    store.write_manifest(manifest)
    factory = CancelAfter(calls=2)
    events = EventWriter(out / "teacher.events.jsonl", "teacher")
    factory.run = PhasedRun(settings, concept_list(str(concepts)), store, factory, events)
    summary = asyncio.run(factory.run.run())
    store.close()
    events.close()
    assert summary["stop_reason"] == "cancelled" and factory.made == ["syn-a", "syn-b"]
    before = per_phase_models(out)
    assert before[(1, "syn-a")] == 3 and 0 < before[(2, "syn-b")] < 4
    phase1_answers = [r for r in lines(out / "responses.jsonl") if r["phase"] == 1]

    assert main(["teacher", "--config", str(cfg), "--concepts", str(concepts), "--out", str(out), "--resume"]) == 0
    assert per_phase_models(out) == {(1, "syn-a"): 3, (2, "syn-b"): 4}
    assert [r for r in lines(out / "responses.jsonl") if r["phase"] == 1] == phase1_answers  # phase 1 not asked again
    records = lines(out / "po_teacher_dataset.jsonl")
    assert len({key_of(r) for r in records}) == len(records) == 7
    rejected = {key_of(r) for r in lines(out / "rejects.jsonl")}
    assert not rejected & {key_of(r) for r in records}
    rows = json.loads((out / "teacher_run.json").read_text())["summary"]["per_phase"]
    assert [r["accepted"] for r in rows] == [3, 4]
    assert rows[0]["requests"] == len(phase1_answers)  # counted from the stored rows


def test_a_changed_plan_is_refused_on_resume_unless_allowed(tmp_path, concepts, capsys):
    out = tmp_path / "out"
    assert main(["teacher", "--config", str(config(tmp_path)), "--concepts", str(concepts), "--out", str(out)]) == 0
    manifest = (out / "teacher_run.json").read_bytes()
    capsys.readouterr()
    changed = config(tmp_path, PLAN.replace("syn-b", "syn-c"))
    args = ["teacher", "--config", str(changed), "--concepts", str(concepts), "--out", str(out), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "phases" in err and "syn-c" in err and "--allow-change" in err and "Traceback" not in err
    assert (out / "teacher_run.json").read_bytes() == manifest
    # A larger phase is not a new plan: the resume extends it (counts are not in the fingerprint).
    bigger = config(tmp_path, PLAN.replace("max_records: 4", "max_records: 5"))
    assert main(["teacher", "--config", str(bigger), "--concepts", str(concepts), "--out", str(out), "--resume"]) == 0
    assert per_phase_models(out) == {(1, "syn-a"): 3, (2, "syn-b"): 5}


@pytest.mark.parametrize("body, line, field, words", [
    ("  max_records: 5\n  phases:\n    - model: a\n      max_records: 3\n    - model: b\n      max_records: 4\n",
     3, "teacher.phases", "add up to 7, not to max_records 5"),
    ("  phases:\n    - model: a\n      max_records: 3\n    - mdoel: b\n      max_records: 4\n",
     5, "teacher.phases.1.mdoel", "unknown key (did you mean 'model'?)"),
    ("  phases:\n    - model: a\n      max_records: 0\n", 4, "teacher.phases.0.max_records", "greater than or equal to 1"),
    ("  phases:\n    - max_records: 3\n", 3, "teacher.phases.0.model", "required"),
    ("  phases: []\n", 2, "teacher.phases", "at least 1"),
    ("  provider: gemini\n  phases:\n    - model: gemini-2.5-flash\n      max_records: 1\n    - model: gemini-2.5-pro\n"
     "      max_records: 1\n      thinking_budget: 0\n", 8, "teacher.phases.1.thinking_budget", "cannot turn thinking off"),
    ("  provider: gemini\n  thinking_budget: 0\n  phases:\n    - model: gemini-2.5-pro\n      max_records: 1\n",
     4, "teacher.phases", "phase 1 (thinking_budget 0 of the run)"),
    ("  phases:\n    - model: a\n      max_records: 1\n      thinking_budget: 512\n", 2, "teacher.phases", "gemini and vertex only"),
    ("  phases:\n    - model: a\n      max_records: 1\n      temperature: 3\n",
     5, "teacher.phases.0.temperature", "less than or equal to 2"),
])
def test_a_bad_plan_is_one_line_naming_file_line_and_field_exit_2(tmp_path, concepts, monkeypatch, capsys, body, line, field, words):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    provider = "" if "provider:" in body else "  provider: synthetic\n"
    cfg = config(tmp_path, "teacher:\n" + provider + body)
    if provider:  # the provider line shifts the rest by one
        line += 1
    out = tmp_path / "out"
    assert main(["teacher", "--config", str(cfg), "--concepts", str(concepts), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{cfg}:{line}" in err and field in err and words in err, err
    assert not out.exists()


def test_count_phases_counts_a_sample_once_and_untagged_rows_only_when_told():
    accepted = [{"concept_id": "a", "metadata": {"variant": 0, "phase": 2, "model": "m2"}}]
    rejects = [{"concept_id": "a", "variant": 0, "metadata": {"phase": 1, "model": "m1"}},  # later accepted
               {"concept_id": "b", "variant": 0, "metadata": {"phase": 1, "model": "m1"}},
               {"concept_id": "b", "variant": 0, "metadata": {"phase": 2, "model": "m2"}},  # asked again: the last counts
               {"concept_id": "c", "variant": 0, "metadata": {"model": "old"}}]
    responses = [{"concept_id": "a", "variant": 0, "phase": 1, "cost_usd": 0.5, "input_tokens": 3, "output_tokens": 2},
                 {"concept_id": "c", "variant": 0, "cost_usd": 1.0, "input_tokens": 1, "output_tokens": 1}]
    counts = count_phases(accepted, rejects, responses)
    assert {n: (c["accepted"], c["rejected"], c["requests"]) for n, c in counts.items()} == {1: (0, 0, 1), 2: (1, 1, 0)}
    assert counts[1]["cost_usd"] == 0.5 and counts[2]["model"] == "m2"
    counts = count_phases(accepted, rejects, responses, untagged=1)
    assert (counts[1]["rejected"], counts[1]["requests"], counts[1]["cost_usd"]) == (1, 2, 1.5)


def test_the_report_shows_the_teacher_phases_of_the_run(tmp_path, concepts, capsys):
    from tests.test_report import finished_run

    run = finished_run(tmp_path)
    assert main(["teacher", "--config", str(config(tmp_path)), "--concepts", str(concepts), "--out", str(run / "teacher")]) == 0
    rows = json.loads((run / "teacher" / "teacher_run.json").read_text())["summary"]["per_phase"]
    assert main(["report", str(run), "--no-plots"]) == 0
    md = (run / "report.md").read_text(encoding="utf-8")
    context = md[md.index("## 1. Context"):md.index("## 2. ")]
    assert "Teacher phases (`teacher.phases`" in context
    for r in rows:
        assert (f"| {r['phase']} | `{r['model']}` | - | {r['accepted']} / {r['target']} | {r['rejected']} | "
                f"{r['acceptance_rate'] * 100:.1f} % | {r['requests']} | ${r['cost_usd']:.4f} | {r['input_tokens']} |") in context
    # A damaged teacher_run.json does not stop the report: it is listed as passed over.
    (run / "teacher" / "teacher_run.json").write_text("{not json", encoding="utf-8")
    capsys.readouterr()
    assert main(["report", str(run), "--no-plots"]) == 0
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "Teacher phases" not in md and "teacher_run.json" in md[md.index("## 11. Files"):]


async def test_the_teacher_tab_shows_a_small_per_phase_table(tmp_path):
    from po_tui.app import CockpitApp
    from tests.test_tui import open_tab, screen_text
    from tests.tui_run import T0, Recorder, write_manifest

    run = tmp_path / "run"
    run.mkdir()
    write_manifest(run, {"teacher": "running"}, state="running")
    log = Recorder(run / "teacher.events.jsonl", "teacher", T0)
    log.started("teacher")
    per_phase = [{"phase": 1, "model": "gemini-2.5-pro", "target": 100, "accepted": 100, "rejected": 7, "cost_usd": 2.5,
                  "thinking_tokens": 41000},
                 {"phase": 2, "model": "gemini-2.5-flash", "target": 300, "accepted": 12, "rejected": 1, "cost_usd": 0.04,
                  "thinking_tokens": 0}]
    log.emit("teacher_stats", accepted=112, rejected=8, target=400, per_phase=per_phase, phase=2,
             per_model={"gemini-2.5-pro": {"accepted": 100}, "gemini-2.5-flash": {"accepted": 12}})
    app = CockpitApp(run, poll_s=0.05, clock=lambda: T0 + 10)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await open_tab(pilot, "teacher", "112 / 400 target", "phases")
        assert re.search(r" 1 gemini-2\.5-pro +100/100 accepted +7 rejected +\$2\.5000 +thinking 41,000", text), text
        assert re.search(r"▶2 gemini-2\.5-flash +12/300 accepted +1 rejected +\$0\.0400", text), text
        assert "per model" not in screen_text(app)  # the phases already name the models


def test_a_pipeline_config_with_phases_round_trips_through_the_run_config(tmp_path):
    from engine.pipeline.config import dump_config, load_config

    cfg = config(tmp_path, "teacher:\n  provider: openai\n  base_url: http://127.0.0.1:9/v1\n  phases:\n"
                           "    - {model: big-model, max_records: 2}\n    - {model: small-model, max_records: 5, temperature: 0.7}\n")
    loaded = load_config(cfg)  # openai needs a model: each phase names one
    assert loaded.teacher.max_records == 7
    again = tmp_path / "config.yaml"
    again.write_text(dump_config(loaded), encoding="utf-8")
    reloaded = load_config(again)
    assert reloaded.teacher.phases == loaded.teacher.phases and reloaded.teacher.max_records == 7
    plan = [reloaded.teacher.phase_settings(p) for p in reloaded.teacher.phases]
    assert [(s.model, s.temperature) for s in plan] == [("big-model", 0.2), ("small-model", 0.7)]


def test_a_plan_on_top_of_an_unplanned_run_counts_its_records_toward_phase_one(tmp_path, concepts, capsys):
    out = tmp_path / "out"
    base = ["teacher", "--concepts", str(concepts), "--out", str(out)]
    assert main([*base, "--provider", "synthetic", "--model", "syn-a", "--max-records", "2"]) == 0
    assert main([*base, "--config", str(config(tmp_path)), "--resume"]) == 2  # a plan is a change of what the dataset is
    assert "--allow-change" in capsys.readouterr().err
    assert main([*base, "--config", str(config(tmp_path)), "--resume", "--allow-change"]) == 0
    records = lines(out / "po_teacher_dataset.jsonl")
    assert len(records) == 7 and len({key_of(r) for r in records}) == 7
    assert Counter((r["metadata"].get("phase", 1), r["metadata"]["model"]) for r in records) == {(1, "syn-a"): 3, (2, "syn-b"): 4}
    assert sum("phase" not in r["metadata"] for r in records) == 2  # the earlier records, kept as they were


def test_rescore_keeps_each_phase_s_attempts_together(tmp_path, concepts):
    from engine.stages.teacher.store import TeacherStore as Store

    out = tmp_path / "out"
    out.mkdir()
    rows = [{"concept_id": "c", "variant": 0, "attempt": a, "phase": p, "text": f"{p}.{a}"} for p, a in ((1, 1), (2, 1), (1, 2), (2, 2))]
    atomic_write_jsonl(out / "responses.jsonl", rows)
    state = Store(out).load()
    assert [r["text"] for r in state.responses[("c", 0)]] == ["1.1", "1.2", "2.1", "2.2"]


def test_a_phase_budget_for_a_model_without_a_known_range_is_sent_with_a_warning(tmp_path, concepts, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeGemini(po_responder, default=ok()) as server:
        cfg = config(tmp_path, f"teacher:\n  provider: gemini\n  base_url: {server.url}\n  concurrency: 1\n  phases:\n"
                               "    - {model: gemini-2.5-flash, max_records: 1}\n"
                               "    - {model: gemini-3-future, max_records: 1, thinking_budget: 99999}\n")
        assert main(["teacher", "--config", str(cfg), "--concepts", str(concepts), "--out", str(tmp_path / "out")]) == 0
        configs = [r.body["generationConfig"].get("thinkingConfig") or {} for r in server.requests]
    budgets = [c.get("thinkingBudget", c.get("thinking_budget")) for c in configs]  # the SDK's spelling varies
    err = capsys.readouterr().err
    assert "phase 2: --thinking-budget 99999: gemini-3-future has no known range here; sent unchecked" in err
    assert "phase 1:" not in err and budgets[0] is None and budgets[-1] == 99999


def test_a_batch_phase_then_an_interactive_phase_through_the_real_gemini_client(tmp_path, concepts, monkeypatch):
    """The seeds' hybrid run as a plan: pro through the Batch API at the batch price, then flash
    called interactively, in one run; each record tagged and priced by its own phase."""
    from tests.fakes.batch_server import FakeGeminiBatch

    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeGeminiBatch(po_responder, default=ok(prompt_tokens=100, output_tokens=50)) as server:
        cfg = config(tmp_path, f"teacher:\n  provider: gemini\n  base_url: {server.url}\n  batch_poll_s: 0.02\n"
                               "  phases:\n    - {model: gemini-2.5-pro, max_records: 3, mode: batch}\n"
                               "    - {model: gemini-2.5-flash, max_records: 2}\n")
        out = tmp_path / "out"
        assert main(["teacher", "--config", str(cfg), "--concepts", str(concepts), "--out", str(out)]) == 0
        jobs = list(server.jobs.values())
        interactive = [r.path.split("?")[0].rsplit("/", 1)[-1] for r in server.requests]
    assert [job.model for job in jobs] == ["gemini-2.5-pro"] and len(jobs[0].keys) >= 3
    assert interactive and all(path.startswith("gemini-2.5-flash:generateContent") for path in interactive)
    assert per_phase_models(out) == {(1, "gemini-2.5-pro"): 3, (2, "gemini-2.5-flash"): 2}
    for row in lines(out / "responses.jsonl"):
        price = DEFAULT_PRICES[row["model"]]
        rate_in, rate_out = price.rates(batch=row["phase"] == 1)
        assert row["cost_usd"] == pytest.approx((100 * rate_in + 50 * rate_out) / 1e6)
    stats = json.loads((out / "teacher_run.json").read_text())["summary"]["per_phase"]
    assert [(r["phase"], r["mode"], r["accepted"]) for r in stats] == [(1, "batch", 3), (2, "interactive", 2)]

