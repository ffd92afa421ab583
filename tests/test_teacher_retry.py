"""A teacher that accepted nothing fails its stage, and a retry of it works; resumed jobs say so.

Before: every provider call failing left rejects.jsonl but no responses.jsonl, the teacher exited
0 with an empty dataset, prep failed on the missing file, and `run --resume --retry-failed`
planned the teacher again without `--resume` (it only looked for responses.jsonl), so the teacher
refused ("already holds a teacher run"). job_started.resumed was false for resumed teacher and
eval jobs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.pipeline import runner
from engine.pipeline.config import parse_config
from engine.pipeline.manifest import read_manifest
from engine.pipeline.plan import build_plan
from engine.runlog.tail import read_events
from engine.stages.concepts import generate_concepts
from engine.store.atomic import atomic_write_jsonl
from tests.fakes.llm_servers import FakeOpenAI, error, ok
from tests.fakes.po_responder import po_responder


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment would swallow requests meant for the local fakes."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _teacher(concepts: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["teacher", "--concepts", str(concepts), "--out", str(out), "--provider", "openai", "--model", "m",
            "--base-url", url + "/v1", "--concurrency", "2", "--api-retries", "0", "--backoff-base", "0.01", *extra]


def test_a_teacher_whose_every_call_failed_fails_its_stage_then_resumes(tmp_path, capsys):
    concepts = atomic_write_jsonl(tmp_path / "concepts.jsonl", generate_concepts(3, 5))
    out = tmp_path / "out"
    with FakeOpenAI(po_responder, default=error(500, message="backend down")) as server:
        code = main(_teacher(concepts, out, server.url))
        err = capsys.readouterr().err
        assert code == 1, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("po-tui teacher: failed: no record accepted (exhausted): 3 rejected (provider_error:server_error 3)")
        assert "provider errors: server_error 3" in last and "--retry-errors" in last and "Traceback" not in err
        assert not (out / "po_teacher_dataset.jsonl").exists() and len(_lines(out / "rejects.jsonl")) == 3
        events = read_events(out / "teacher.events.jsonl")
        failure = [e["data"] for e in events if e["type"] == "error"][-1]
        assert failure["code"] == "stage_failed" and failure["message"].startswith("no record accepted")
        assert events[-1]["type"] == "job_finished" and events[-1]["data"]["state"] == "failed" and events[-1]["data"]["exit_code"] == 1

        server.default = ok()  # the provider is back
        code = main(_teacher(concepts, out, server.url, "--resume", "--retry-errors"))
        err = capsys.readouterr().err
    assert code == 0, err
    assert len(_lines(out / "po_teacher_dataset.jsonl")) == 3
    assert "teacher: 3 accepted, 0 rejected" in err  # the retried rejects are not counted twice
    starts = [e["data"]["resumed"] for e in read_events(out / "teacher.events.jsonl") if e["type"] == "job_started"]
    assert starts == [False, True]


def test_a_teacher_that_accepted_nothing_for_another_reason_fails_too(tmp_path, capsys):
    concepts = atomic_write_jsonl(tmp_path / "concepts.jsonl", generate_concepts(2, 5))
    # Every answer is weak and damaged: whichever defect is drawn (some leave the answer valid),
    # nothing reaches --min-score, so the outcome does not hang on the concepts' luck.
    code = main(["teacher", "--concepts", str(concepts), "--out", str(tmp_path / "out"), "--provider", "synthetic",
                 "--synthetic-defect-rate", "1", "--synthetic-fix-rate", "0", "--synthetic-low-quality-rate", "1",
                 "--max-retries", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "po-tui teacher: failed: no record accepted (exhausted): 2 rejected (" in err
    assert "--retry-errors" not in err.strip().splitlines()[-1]  # nothing a provider retry would fix


def test_the_planned_teacher_resumes_any_earlier_outcome_and_retries_provider_errors(tmp_path):
    config = parse_config({"teacher": {"provider": "synthetic", "max_records": 4}})
    run_dir = tmp_path / "run"
    teacher = next(job for job in build_plan(config, run_dir) if job.name == "teacher")
    assert "--resume" not in teacher.argv(False, False) and "--retry-errors" not in teacher.argv(False, False)
    (run_dir / "teacher").mkdir(parents=True)
    (run_dir / "teacher" / "rejects.jsonl").write_text('{"concept_id": "c1", "variant": 0, "reason": "provider_error:auth"}\n')
    for cont, redo in ((True, False), (False, True)):
        argv = teacher.argv(cont, redo)
        assert "--resume" in argv and "--retry-errors" in argv


def test_run_resume_retry_failed_reruns_a_teacher_that_got_no_answers(tmp_path, monkeypatch, capsys):
    # The run stops after the teacher (later stages train a model: minutes, and not what this is about).
    full_plan = runner.build_plan
    monkeypatch.setattr(runner, "build_plan",
                        lambda config, run_dir: [j for j in full_plan(config, run_dir) if j.name in ("concepts", "teacher")])
    with FakeOpenAI(po_responder, default=error(503, message="overloaded")) as server:
        doc = {"concepts": {"count": 6, "seed": 2},
               "teacher": {"provider": "openai", "model": "m", "base_url": server.url + "/v1", "max_records": 4,
                           "concurrency": 2, "api_retries": 0, "backoff_base_s": 0.01}}
        (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(doc))
        run_dir = tmp_path / "run"
        code = main(["run", str(tmp_path / "pipeline.yaml"), "--headless", "--run-dir", str(run_dir)])
        out = capsys.readouterr().out
        assert code == 2, out
        jobs = {j["name"]: j for j in read_manifest(run_dir)["jobs"]}
        assert read_manifest(run_dir)["state"] == "failed"
        assert (jobs["teacher"]["state"], jobs["teacher"]["exit_code"]) == ("failed", 1)
        assert not (run_dir / "teacher" / "responses.jsonl").exists() and (run_dir / "teacher" / "rejects.jsonl").exists()
        failure = [e["data"] for e in read_events(run_dir / "teacher.events.jsonl") if e["type"] == "error"][-1]
        assert failure["code"] == "stage_failed" and "no record accepted" in failure["message"]

        server.default = ok()  # the provider works again
        code = main(["run", "--resume", str(run_dir), "--retry-failed", "--headless"])
        out = capsys.readouterr().out
    assert "teacher (continue: was failed" in out
    manifest = read_manifest(run_dir)
    assert manifest["state"] == "succeeded", out
    teacher = next(j for j in manifest["jobs"] if j["name"] == "teacher")
    assert teacher["state"] == "succeeded" and "--resume" in teacher["argv"] and "--retry-errors" in teacher["argv"]
    assert len(_lines(run_dir / "teacher" / "po_teacher_dataset.jsonl")) == 4
    starts = [e["data"]["resumed"] for e in read_events(run_dir / "teacher.events.jsonl") if e["type"] == "job_started"]
    assert starts == [False, True]


def test_a_resumed_eval_says_so_in_job_started(tmp_path, capsys):
    dataset = atomic_write_jsonl(tmp_path / "concepts.jsonl", generate_concepts(3, 7))
    out = tmp_path / "out"
    argv = ["eval", "--dataset", str(dataset), "--provider", "synthetic", "--tag", "t", "--out", str(out), "--max-samples", "0"]
    for _ in range(2):
        assert main(argv) == 0, capsys.readouterr().err
    starts = [e["data"]["resumed"] for e in read_events(out / "t.events.jsonl") if e["type"] == "job_started"]
    assert starts == [False, True]
    assert "--restart" not in argv
    assert main([*argv, "--restart"]) == 0, capsys.readouterr().err  # starting over picks up nothing
    assert [e["data"]["resumed"] for e in read_events(out / "t.events.jsonl") if e["type"] == "job_started"][-1] is False
