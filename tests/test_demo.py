"""`po-tui demo` is the engine running its embedded config: each stage a subprocess job with its event log."""

from __future__ import annotations

import json

from engine.cli import main
from engine.runlog.state import RunState


def test_demo_runs_stages_as_jobs_with_event_logs(tmp_path):
    run_dir = tmp_path / "run"
    code = main(["demo", "--headless", "--out", str(run_dir), "--count", "6", "--seed", "1", "--train-steps", "4", "--latency", "0.01"])
    state = RunState.from_run_dir(run_dir)
    # The demo is a proof: its exit code is the demo gate's verdict (0 pass, 1 fail), as a headless run's.
    assert code == (0 if state.jobs["gate"].summary["verdict"] == "pass" else 1)
    jobs = ["concepts", "teacher", "prep", "tiny-model", "train", "export", "eval-teacher", "eval-baseline", "eval-student",
            "gate", "report"]
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
    # The demo gate judges the student against the teacher reference and the constant answer.
    assert gate.summary["gates"] == "demo" and gate.summary["criteria"] == 3
    assert gate.summary["teacher_mean"] is not None and gate.summary["constant_grounding"] is not None
    gate_argv = next(j["argv"] for j in manifest["jobs"] if j["name"] == "gate")
    assert "--teacher" in gate_argv and "--preset" in gate_argv and gate_argv[gate_argv.index("--preset") + 1] == "demo"
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# Product Owner distillation report") and "## 2. Training snapshot" in report
    assert "Criteria: `demo`" in report and "What it proves:" in report
    assert "| constant answer |" in report and "| **student** |" in report and "| teacher |" in report
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


def test_demo_exit_code_follows_the_demo_gate(tmp_path, monkeypatch):
    """The demo is a proof: 0 only when the run succeeded and the demo gate passed (not 0 on a FAIL)."""
    import engine.commands.run as run_cmd
    import engine.pipeline.runner as runner
    from engine.commands.demo import demo_config

    config = demo_config()
    assert config.gate.preset == "demo" and config.eval.teacher_reference is True

    outcome: dict = {}

    class FakeEngine:  # the stages are tested above; here only what the demo does with their outcome
        def __init__(self, run_dir, config, mode):
            self.manifest = {"gate": outcome["gate"]}

    monkeypatch.setattr(runner, "Engine", FakeEngine)
    monkeypatch.setattr(run_cmd, "drive", lambda engine, tty: outcome["final"])
    for n, (final, gate, code) in enumerate([
        ("succeeded", {"verdict": "pass"}, 0), ("succeeded", {"verdict": "fail"}, 1), ("succeeded", None, 1),
        ("failed", None, 2), ("cancelled", None, 130),
    ]):
        outcome.update(final=final, gate=gate)
        assert main(["demo", "--headless", "--out", str(tmp_path / f"run{n}")]) == code, (final, gate)
