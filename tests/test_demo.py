"""`po-tui demo` is the engine running its embedded config: each stage a subprocess job with its event log."""

from __future__ import annotations

import json

from engine.cli import main
from engine.runlog.state import RunState


def test_demo_runs_stages_as_jobs_with_event_logs(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["demo", "--headless", "--out", str(run_dir), "--count", "6", "--seed", "1", "--train-steps", "4", "--latency", "0.01"]) == 0
    state = RunState.from_run_dir(run_dir)
    jobs = ["concepts", "teacher", "prep", "tiny-model", "train", "export", "eval-teacher", "eval-baseline", "eval-student", "gate", "report"]
    assert state.order == jobs
    assert all(j.state == "succeeded" for j in state.jobs.values())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["format"] == "po-tui-run/1" and manifest["state"] == "succeeded"
    assert [j["name"] for j in manifest["jobs"]] == jobs and all(j["state"] == "succeeded" and j["fingerprint"] for j in manifest["jobs"])
    assert manifest["gate"]["verdict"] == state.jobs["gate"].summary["verdict"]
    assert (run_dir / "config.yaml").exists() and not (run_dir / "engine.pid").exists()
    assert state.jobs["teacher"].summary["accepted"] == 4  # 2/3 of the concepts
    prep = state.jobs["prep"].summary
    assert prep["train"] + prep["val"] + prep["below_min_score"] + prep["invalid"] + prep["duplicate"] == prep["records"] == 4
    train = state.jobs["train"]
    assert (train.progress_done, train.progress_total) == (4, 4) and train.summary["steps"] == 4
    assert (run_dir / "student" / "adapter_model.safetensors").exists()
    assert (run_dir / "student-merged" / "model.safetensors").exists()
    for tag in ("teacher", "baseline", "student"):
        summary = state.jobs[f"eval-{tag}"].summary
        assert summary["n"] == prep["val"] and 0 <= summary["valid_rate"] <= 1
    assert state.jobs["eval-teacher"].summary["valid_rate"] == 1.0
    # The tiny student cannot pass after 4 CPU steps: the gate's verdict is recorded, exit code 1,
    # and the run goes on to the report.
    gate = state.jobs["gate"]
    assert gate.summary["verdict"] in ("pass", "fail") and gate.exit_code == (0 if gate.summary["verdict"] == "pass" else 1)
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# Product Owner distillation report") and "## 2. Training snapshot" in report
    job = state.jobs["concepts"]
    assert job.state == "succeeded" and job.exit_code == 0
    assert (job.progress_done, job.progress_total) == (6, 6)
    assert job.summary["count"] == 6
    rows = [json.loads(line) for line in (run_dir / "concepts.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert (run_dir / "concepts.stderr.log").read_text().startswith("po-tui concepts: 6 concepts")


def test_stage_failure_is_recorded_in_its_event_log(tmp_path):
    run_dir = tmp_path / "run"
    # A directory as the output is refused up front: nothing written, not even the event log.
    assert main(["concepts", "--count", "3", "-o", str(tmp_path), "--run-dir", str(run_dir)]) == 2
    assert not run_dir.exists()
    # A failure found while the job runs (a record it cannot read) is in the job's log.
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"concept_id": "C1"}\n{not json\n{"concept_id": "C2"}\n', encoding="utf-8")
    code = main(["score", str(bad), "--run-dir", str(run_dir)])
    assert code == 2
    job = RunState.from_run_dir(run_dir).jobs["score"]
    assert job.state == "failed" and job.exit_code == 2
    assert "answers.jsonl:1: unrecognised record layout" in job.errors[-1]["message"]
