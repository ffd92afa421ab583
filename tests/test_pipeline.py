"""The pipeline engine: config validation, `po-tui init`, runs that survive a lost machine, cancel, exit codes.

The reliability test kills the engine AND its running job with SIGKILL (what a lost SSH session
or a dead machine does) once in the teacher stage and once in training, then resumes: finished
stages are not redone, no teacher record is lost or duplicated, training continues from its
checkpoint and the run completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from engine.cli import main
from engine.pipeline.config import PipelineConfig, load_config
from engine.pipeline.manifest import pid_alive, read_manifest

PASS_GATES = "preset: none\nstudent:\n  n: '>= 1'\n"


def tiny_config(tmp_path: Path, **changes) -> Path:
    """A whole pipeline small enough for a test: 12 concepts, 6 CPU steps, short answers."""
    (tmp_path / "pass.yaml").write_text(PASS_GATES)
    doc = {
        "concepts": {"count": 12, "seed": 3},
        "teacher": {"provider": "synthetic", "max_records": 8, "concurrency": 2, "seed": 3, "synthetic": {"latency_s": 0.4}},
        "prep": {"val_fraction": 0.25, "seed": 3},
        "tiny_model": {"build": True, "seed": 3},
        "train": {"lora_r": 4, "lora_alpha": 8, "lr": 1e-2, "batch_size": 2, "max_steps": 6, "logging_steps": 1, "save_steps": 2,
                  "seed": 3},
        "eval": {"max_new_tokens": 16, "retries": 0, "batch_size": 4},
        "gate": {"gates": "pass.yaml"},
        "report": {"plots": False},
    }
    for key, value in changes.items():
        doc[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def events(run_dir: Path, job: str) -> list[dict]:
    path = run_dir / f"{job}.events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def count(run_dir: Path, job: str, kind: str) -> int:
    return sum(e["type"] == kind for e in events(run_dir, job))


def wait_for(predicate, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_engine(args: list[str], cwd: Path, log: str) -> subprocess.Popen:
    out = open(cwd / log, "wb")
    return subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill_machine(engine: subprocess.Popen, run_dir: Path) -> None:
    """SIGKILL the engine's process group and the running job's: nothing gets to clean up."""
    job = next(j for j in read_manifest(run_dir)["jobs"] if j["state"] == "running")
    os.killpg(engine.pid, signal.SIGKILL)
    os.killpg(job["pgid"], signal.SIGKILL)
    engine.wait(timeout=30)

    def gone() -> bool:
        try:
            os.killpg(job["pgid"], 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, 30, "the killed job to go")


def test_init_writes_a_config_that_validates_and_round_trips(tmp_path, capsys):
    path = tmp_path / "po-tui.yaml"
    assert main(["init", str(path)]) == 0
    text = path.read_text()
    config = load_config(path)
    expected = PipelineConfig()
    expected.teacher.model = "gemini-2.5-flash"
    assert config == expected
    assert "# " in text and "Qwen/Qwen2.5-7B-Instruct" in text and "lora_r: 32" in text and "lora_alpha: 64" in text
    assert "min_score: 0.8" in text and "preset: seeds" in text
    assert main(["init", str(path)]) == 2  # never overwrites without --force
    assert "already exists" in capsys.readouterr().err


def test_bad_config_is_one_located_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("teacher:\n  provider: synthetic\n  min_scor: 0.8\n")
    assert main(["run", str(path), "--headless", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"po-tui run: error: {path}:3: teacher.min_scor: unknown key (did you mean 'min_score'?)"]
    assert not (tmp_path / "runs").exists()  # nothing created for a config that does not validate
    path.write_text("train:\n  out: /somewhere\n")
    assert main(["run", str(path), "--headless", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "train.out: set by the engine" in capsys.readouterr().err


def test_a_failed_stage_stops_the_run_and_needs_retry_failed(tmp_path, capsys):
    bad = tmp_path / "concepts.jsonl"
    bad.write_text("not json\n")
    config = tiny_config(tmp_path, concepts={"file": str(bad)})
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--headless", "--run-dir", str(run_dir)]) == 2
    manifest = read_manifest(run_dir)
    states = {j["name"]: j["state"] for j in manifest["jobs"]}
    assert manifest["state"] == "failed" and states["teacher"] == "failed" and states["prep"] == "pending"
    assert "concepts" not in states  # a concepts file: nothing to generate
    teacher = events(run_dir, "teacher")
    assert teacher[-1]["type"] == "job_finished" and teacher[-1]["data"]["state"] == "failed"
    assert "teacher: error:" in capsys.readouterr().out
    assert main(["run", "--resume", str(run_dir), "--headless"]) == 2
    assert "pass --retry-failed" in capsys.readouterr().err
    # --retry-failed runs just that stage again (here it fails again: the file is still bad).
    assert main(["run", "--resume", str(run_dir), "--headless", "--retry-failed"]) == 2
    assert "teacher (continue: was failed" in capsys.readouterr().out
    assert count(run_dir, "teacher", "job_started") == 2 and count(run_dir, "prep", "job_started") == 0


def test_killed_twice_then_resumed_loses_nothing_and_redoes_nothing(tmp_path):
    config = tiny_config(tmp_path)
    run_dir = tmp_path / "run"
    # 1. The machine dies in the middle of the teacher stage.
    engine = start_engine(["run", str(config), "--headless", "--run-dir", str(run_dir)], tmp_path, "engine1.log")
    wait_for(lambda: count(run_dir, "teacher", "teacher_sample") >= 2, what="teacher samples")
    kill_machine(engine, run_dir)
    dataset = run_dir / "teacher" / "po_teacher_dataset.jsonl"
    assert len(dataset.read_text().splitlines()) < 8

    # 2. Resumed; the machine dies again once training has written a checkpoint.
    engine = start_engine(["run", "--resume", str(run_dir), "--headless"], tmp_path, "engine2.log")
    wait_for(lambda: count(run_dir, "train", "checkpoint") >= 1, 180, "a training checkpoint")
    kill_machine(engine, run_dir)
    log2 = (tmp_path / "engine2.log").read_text()
    assert "skip concepts" in log2 and "teacher (continue" in log2
    assert "concepts: skipped" in log2

    # 3. Resumed to the end.
    done = subprocess.run([sys.executable, "-m", "engine", "run", "--resume", str(run_dir), "--headless"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr  # the pass gates file: verdict pass
    assert "skip concepts, teacher, prep, tiny-model" in done.stdout and "train (continue" in done.stdout
    manifest = read_manifest(run_dir)
    assert manifest["state"] == "succeeded" and manifest["gate"]["verdict"] == "pass"
    states = {j["name"]: j["state"] for j in manifest["jobs"]}
    assert all(states[j] == "skipped" for j in ("concepts", "teacher", "prep", "tiny-model"))
    assert all(states[j] == "succeeded" for j in ("train", "eval-baseline", "eval-student", "gate", "report"))
    # Finished stages were never started again.
    assert [count(run_dir, j, "job_started") for j in ("concepts", "prep", "tiny-model")] == [1, 1, 1]
    assert count(run_dir, "teacher", "job_started") == 2
    # Every teacher record once: none lost to the kill, none paid for twice.
    ids = [json.loads(line)["concept_id"] for line in dataset.read_text().splitlines()]
    assert len(ids) == 8 and len(set(ids)) == 8
    # Training continued from its checkpoint instead of starting over.
    train = events(run_dir, "train")
    starts = [e for e in train if e["type"] == "job_started"]
    assert len(starts) == 2 and starts[1]["data"]["resumed"] is True
    resumed_at = next(i for i, e in enumerate(train) if e is starts[1])
    steps = [e["data"]["step"] for e in train[resumed_at:] if e["type"] == "train_step"]
    assert steps and min(steps) > 1 and train[-1]["data"]["summary"]["steps"] == 6
    assert (run_dir / "report.md").exists() and not (run_dir / "engine.pid").exists()

    # 4. A stricter gate in the run's config: only the gate and the report run again; exit 1.
    path = run_dir / "config.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["gate"]["gates"] = None
    path.write_text(yaml.safe_dump(doc))
    again = subprocess.run([sys.executable, "-m", "engine", "run", "--resume", str(run_dir), "--headless"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stdout + again.stderr  # the seeds gate fails a 6-step tiny student
    states = {j["name"]: j["state"] for j in read_manifest(run_dir)["jobs"]}
    assert [name for name, state in states.items() if state != "skipped"] == ["gate", "report"]


def test_detached_run_is_cancelled_and_its_stage_log_says_so(tmp_path, capsys):
    config = tiny_config(tmp_path)
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--headless", "--detach", "--run-dir", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir)
    pid = json.loads((run_dir / "engine.pid").read_text())["pid"]
    wait_for(lambda: count(run_dir, "teacher", "teacher_sample") >= 1, what="the detached engine's teacher")
    assert main(["cancel", str(run_dir)]) == 0
    assert "run cancelled" in capsys.readouterr().out
    manifest = read_manifest(run_dir)
    teacher = next(j for j in manifest["jobs"] if j["name"] == "teacher")
    assert manifest["state"] == "cancelled" and teacher["state"] == "cancelled"
    last = events(run_dir, "teacher")[-1]
    assert last["type"] == "job_finished" and last["data"]["state"] == "cancelled"
    assert not (run_dir / "engine.pid").exists()
    assert not pid_alive(pid)


def test_subscribers_get_job_events_and_engine_decisions(tmp_path):
    """The API the TUI will use: an async iterator over the run, plus plain callbacks."""
    import asyncio

    from engine.pipeline.runner import Engine, create_run

    bad = tmp_path / "concepts.jsonl"
    bad.write_text("{}\n")
    config = load_config(tiny_config(tmp_path, concepts={"file": str(bad)}))
    run_dir = create_run(tmp_path / "run", config)
    engine = Engine(run_dir, config)
    seen = []
    engine.add_listener(seen.append)

    async def drive():
        stream = engine.subscribe()
        task = asyncio.create_task(engine.run())
        received = [ev async for ev in stream]
        return await task, received

    final, received = asyncio.run(drive())
    assert final == "failed" and [e.kind for e in received] == [e.kind for e in seen]
    assert received[0].kind == "run" and received[0].data["state"] == "running"
    assert received[-1].kind == "run" and received[-1].data["state"] == "failed"
    teacher = [e.data["type"] for e in received if e.kind == "event" and e.job == "teacher"]
    assert teacher[0] == "job_started" and "error" in teacher and teacher[-1] == "job_finished"
    states = [e.data["state"] for e in received if e.kind == "job" and e.job == "teacher"]
    assert states[0] == "running" and states[-1] == "failed"


def test_cancel_without_an_engine_stops_the_running_job(tmp_path, capsys):
    """The engine died (SIGKILL) but its job runs on: cancel stops the job's process group."""
    config = tiny_config(tmp_path)
    run_dir = tmp_path / "run"
    engine = start_engine(["run", str(config), "--headless", "--run-dir", str(run_dir)], tmp_path, "engine.log")
    wait_for(lambda: count(run_dir, "teacher", "teacher_sample") >= 1, what="teacher samples")
    os.killpg(engine.pid, signal.SIGKILL)
    engine.wait(timeout=30)
    # A resume now would start a second teacher beside the orphan: refused.
    assert main(["run", "--resume", str(run_dir), "--headless"]) == 2
    assert "job teacher (process group" in capsys.readouterr().err
    assert main(["cancel", str(run_dir), "--grace", "20"]) == 0
    assert "no live engine; 1 running job(s) cancelled" in capsys.readouterr().out
    manifest = read_manifest(run_dir)
    assert manifest["state"] == "cancelled"
    assert next(j for j in manifest["jobs"] if j["name"] == "teacher")["state"] == "cancelled"
    finished = [e for e in events(run_dir, "teacher") if e["type"] == "job_finished"]
    assert len(finished) == 1 and finished[0]["data"]["state"] == "cancelled"  # written once, by the stage


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    """cancel: SIGTERM to the job's process group, SIGKILL after the grace; the engine closes its log."""
    import asyncio

    from engine.pipeline.runner import Engine, create_run

    stubborn = tmp_path / "stubborn.sh"
    stubborn.write_text("#!/bin/sh\ntrap '' TERM\nsleep 60\n")
    stubborn.chmod(0o755)
    config = load_config(tiny_config(tmp_path))
    run_dir = create_run(tmp_path / "run", config)
    engine = Engine(run_dir, config, grace_s=0.5, python=str(stubborn))  # every job: a process deaf to SIGTERM

    async def drive():
        task = asyncio.create_task(engine.run())
        while (read_manifest(run_dir)["jobs"][0]["pgid"]) is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        started = time.time()
        engine.cancel()
        return await task, time.time() - started

    final, took = asyncio.run(drive())
    assert final == "cancelled" and 0.4 < took < 10
    manifest = read_manifest(run_dir)
    assert manifest["state"] == "cancelled" and manifest["jobs"][0]["state"] == "cancelled"
    assert manifest["jobs"][0]["exit_code"] == 128 + signal.SIGKILL and manifest["jobs"][1]["state"] == "pending"
    log = events(run_dir, "concepts")
    assert [e["type"] for e in log] == ["job_started", "job_finished"] and log[-1]["data"]["state"] == "cancelled"
    assert not (run_dir / "engine.pid").exists()
