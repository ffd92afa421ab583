"""`po-tui status` and `po-tui runs`: live runs in another process, recorded runs, damage, hostile text."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.views.watch import RunWatcher

ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()


def _status(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["status", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _doc(capsys, run_dir: Path) -> dict:
    code, out, _ = _status(capsys, str(run_dir), "--json")
    assert code == 0
    return json.loads(out)


class Log:
    """Writes recorded events by hand (as a stage would have), without importing the stage."""

    def __init__(self, run_dir: Path, job: str, t0: float = 1_763_900_000.0) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / f"{job}.events.jsonl"
        self.job, self.seq, self.ts = job, 0, t0

    def __call__(self, etype: str, **data) -> "Log":
        self.ts += 1.0
        line = {"v": 1, "ts": self.ts, "seq": self.seq, "job": self.job, "type": etype, "data": data}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        self.seq += 1
        return self

    def start(self, stage: str, pid: int = 999_999, host: str = "elsewhere") -> "Log":
        return self("job_started", stage=stage, pid=pid, host=host)

    def finish(self, state: str = "succeeded", exit_code: int = 0, **summary) -> "Log":
        return self("job_finished", state=state, exit_code=exit_code, duration_s=3.5, summary=summary)


def recorded_run(run_dir: Path) -> None:
    """A finished demo-like run: event logs only, no manifest, the gate failed."""
    t = 1_763_900_000.0
    Log(run_dir, "concepts", t).start("concepts")("progress", done=24, total=24, unit="concepts").finish(count=24, conflicts=5)
    teacher = Log(run_dir, "teacher", t + 10).start("teacher")
    teacher("progress", done=8, total=16, unit="records")
    teacher("teacher_stats", accepted=8, rejected=1, target=16, records_per_min=40.0, acceptance_rate=0.9, cost_usd=0.0123)
    teacher("warning", message="429 from the API, retrying in 8 s", code="rate_limited")
    teacher("progress", done=16, total=16, unit="records")
    teacher.finish(accepted=16, rejected=2, target=16, acceptance_rate=0.89, cost_usd=0.0251, stop_reason="target")
    train = Log(run_dir, "train", t + 30).start("train")
    for step in (5, 10):
        train("progress", done=step, total=10, unit="steps")
        train("train_step", step=step, max_steps=10, loss=2.5 / step, tokens_per_s=512.0, tokens_seen=step * 100)
    train.finish(steps=10, first_loss=0.5, final_loss=0.25, final_eval_loss=0.31)
    ev = Log(run_dir, "eval-student", t + 50).start("eval")
    ev("eval_case", index=0, concept_id="C1", status="ok", score=0.8)
    ev("eval_case", index=1, concept_id="C2", status="format_error", score=None)
    ev("progress", done=2, total=2, unit="cases")
    ev.finish(n=2, valid=1, valid_rate=0.5, mean=0.8, tag="student")
    Log(run_dir, "gate", t + 70).start("gate").finish(
        exit_code=1, verdict="fail", passed=1, criteria=3, ratio=0.41, student_mean=0.3, baseline_mean=0.7)


# --- a run in progress in another process ----------------------------------------------------


def test_status_follows_a_stage_running_in_another_process(tmp_path, capsys):
    run_dir = tmp_path / "run"
    concepts = tmp_path / "concepts.jsonl"
    subprocess.run([sys.executable, "-m", "engine", "concepts", "--count", "30", "--seed", "3", "-o", str(concepts)],
                   cwd=ROOT, check=True, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "teacher", "--provider", "synthetic", "--concepts", str(concepts),
         "--out", str(run_dir / "teacher"), "--max-records", "20", "--concurrency", "1", "--seed", "3",
         "--synthetic-latency", "0.2", "--run-dir", str(run_dir), "--job", "teacher"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        seen = None
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if (run_dir / "teacher.events.jsonl").exists():
                doc = _doc(capsys, run_dir)
                job = doc["jobs"][0]
                if job["state"] == "running" and job["progress"] and 0 < job["progress"]["done"] < 20:
                    seen = doc
                    break
            time.sleep(0.1)
        assert seen is not None, "never saw the teacher running with partial progress"
        job = seen["jobs"][0]
        assert seen["state"] == "running" and seen["current_stage"] == "teacher"
        assert job["alive"] is True and job["pid"] == proc.pid
        assert job["progress"]["total"] == 20 and job["progress"]["unit"] == "records"
        assert 0 < job["progress"]["percent"] < 100
        assert job["headline"]["numbers"]["target"] == 20
        code, out, _ = _status(capsys, str(run_dir))
        assert code == 0 and "running" in out and "records" in out and "alive" in out
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    doc = _doc(capsys, run_dir)
    job = doc["jobs"][0]
    assert doc["state"] == "succeeded" and job["state"] == "succeeded" and job["alive"] is None
    assert job["progress"]["done"] == 20 and job["progress"]["percent"] == 100.0
    assert job["headline"]["numbers"]["accepted"] == 20
    assert job["eta_s"] is None and job["exit_code"] == 0


def test_follow_without_a_terminal_prints_lines_until_the_run_ends(tmp_path):
    run_dir = tmp_path / "run"
    log = Log(run_dir, "concepts", time.time() - 10).start("concepts", pid=os.getpid(), host=HOST)
    log("progress", done=1, total=4, unit="concepts")

    proc = subprocess.Popen([sys.executable, "-m", "engine", "status", str(run_dir), "--follow", "--interval", "0.1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    log("progress", done=4, total=4, unit="concepts")
    log.finish(count=4)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [line for line in out.splitlines() if " | " in line]
    assert "1/4 concepts" in lines[0] and "running" in lines[0]
    assert "succeeded" in lines[-1]
    assert "count 4" in out  # the final screen


# --- recorded runs ---------------------------------------------------------------------------


def test_status_of_a_finished_demo_like_run(tmp_path, capsys):
    run_dir = tmp_path / "run-20251123-120000"
    recorded_run(run_dir)
    code, out, err = _status(capsys, str(run_dir))
    assert code == 0 and err == ""
    assert "succeeded" in out and "gate FAIL" in out
    assert "accepted 16/16, rejected 2, acceptance 89%, $0.0251" in out
    assert "step 10/10, loss 0.2500, eval_loss 0.3100" in out
    assert "n 2, valid 50%, mean 0.4000 (errors as 0)" in out  # as the Evaluation tab counts it
    assert "FAIL (1/3 criteria), ratio 0.410" in out
    assert "teacher warning [rate_limited]: 429 from the API" in out

    doc = _doc(capsys, run_dir)
    assert doc["state"] == "succeeded" and doc["state_source"] == "events" and not doc["manifest"]
    assert [j["name"] for j in doc["jobs"]] == ["concepts", "teacher", "train", "eval-student", "gate"]
    assert doc["current_stage"] == "gate"
    assert doc["gate"] == {"verdict": "fail", "passed": 1, "criteria": 3, "ratio": 0.41}
    assert doc["jobs"][4]["exit_code"] == 1 and doc["jobs"][4]["state"] == "succeeded"


def test_live_headlines_come_from_stage_events(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train = Log(run_dir, "train", time.time() - 5).start("train", pid=os.getpid(), host=HOST)
    train("progress", done=40, total=240, unit="steps")
    train("train_step", step=40, max_steps=240, loss=0.8123, tokens_per_s=5120.4, gpu_mem_peak_gb=7.4)
    train("train_eval", step=40, eval_loss=0.9)
    ev = Log(run_dir, "eval-baseline", time.time() - 5).start("eval", pid=os.getpid(), host=HOST)
    for i, (status, score) in enumerate((("ok", 0.9), ("ok", 0.7), ("format_error", None), ("ok", 0.8))):
        ev("eval_case", index=i, concept_id=f"C{i}", status=status, score=score)
    doc = _doc(capsys, run_dir)
    by = {j["name"]: j for j in doc["jobs"]}
    assert doc["state"] == "running"
    assert by["train"]["headline"]["text"] == "step 40/240, loss 0.8123, eval_loss 0.9000, 5120 tok/s, peak 7.4 GB"
    assert by["train"]["alive"] is True and by["train"]["progress"]["percent"] == pytest.approx(16.7)
    assert by["eval-baseline"]["headline"]["numbers"] == {
        "n": 4, "valid": 3, "valid_rate": 0.75, "mean": pytest.approx(0.8), "mean_with_errors_as_zero": pytest.approx(0.6)}
    assert by["eval-baseline"]["headline"]["text"] == "n 4, valid 75%, mean 0.6000 (errors as 0)"


def test_torn_and_damaged_lines_are_tolerated_and_reported(tmp_path, capsys):
    run_dir = tmp_path / "run"
    recorded_run(run_dir)
    teacher = run_dir / "teacher.events.jsonl"
    lines = teacher.read_text().splitlines(keepends=True)
    lines.insert(2, "{not json\n")
    teacher.write_text("".join(lines))
    with open(run_dir / "gate.events.jsonl", "a") as fh:
        fh.write('{"v":1,"ts":1763900099.0,"seq":2,"job":"ga')  # a writer killed mid-append
    code, out, err = _status(capsys, str(run_dir))
    assert code == 0 and err == ""
    assert "teacher: 1 damaged event lines skipped" in out
    assert "torn last line" in out
    doc = _doc(capsys, run_dir)
    assert doc["state"] == "succeeded" and doc["gate"]["verdict"] == "fail"
    assert doc["damaged_logs"]["teacher"]["corrupt_lines"] == 1
    assert doc["jobs"][1]["headline"]["numbers"]["accepted"] == 16


def test_hostile_error_text_is_shown_literally(tmp_path, capsys):
    run_dir = tmp_path / "run"
    hostile = "[bold red]pwned[/bold red] \x1b[31mred\x1b[0m \x1b]0;retitled\x07 done\x07"
    log = Log(run_dir, "eval-student").start("eval")
    log("error", message=hostile, code="[link=x]Boom", stderr_tail="\x1b[2J")
    log.finish(state="failed", exit_code=1)
    code, out, _ = _status(capsys, str(run_dir))
    assert code == 0
    assert "[bold red]pwned[/bold red] red done" in out
    assert "[[link=x]Boom]" in out
    assert "\x1b" not in out and "\x07" not in out
    doc = _doc(capsys, run_dir)
    assert doc["state"] == "failed"
    assert doc["jobs"][0]["errors"][0]["message"] == "[bold red]pwned[/bold red] red done"


def test_json_document_schema(tmp_path, capsys):
    run_dir = tmp_path / "run"
    recorded_run(run_dir)
    doc = _doc(capsys, run_dir)
    assert doc["format"] == "po-tui-status/1"
    assert set(doc) == {"format", "run_dir", "run_id", "created_at", "state", "state_source", "manifest",
                        "current_stage", "gate", "engine", "last_event_at", "now", "jobs", "gpu", "damaged_logs", "ignored_lines"}
    job_keys = {"name", "stage", "state", "alive", "pid", "host", "attempts", "started_at", "started_ts", "finished_at",
                "elapsed_s", "last_event_age_s", "progress", "rate_per_s", "eta_s", "exit_code", "headline", "counters",
                "metrics", "error_count", "warning_count", "errors", "warnings", "stale_reason", "skipped_reason"}
    for job in doc["jobs"]:
        assert set(job) == job_keys
        assert set(job["headline"]) == {"numbers", "text", "short"}
    assert set(doc["jobs"][0]["progress"]) == {"done", "total", "unit", "label", "percent"}
    assert doc["created_at"] == "2025-11-23T12:13:21Z"


# --- manifest and engine.pid -----------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def manifest(run_dir: Path, run_id: str, created: str, state: str, jobs: list[dict], gate: dict | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = {"format": "po-tui-run/1", "run_id": run_id, "created_at": created, "state": state, "gate": gate, "jobs": jobs}
    (run_dir / "manifest.json").write_text(json.dumps(doc))


def test_manifest_jobs_not_started_are_listed_and_a_dead_engine_makes_the_run_stale(tmp_path, capsys):
    run_dir = tmp_path / "r"
    manifest(run_dir, "20261123-120501-a3f0", "2026-11-23T12:05:01Z", "running", [
        {"name": "concepts", "stage": "concepts", "state": "succeeded"},
        {"name": "teacher", "stage": "teacher", "state": "skipped", "skipped_reason": "unchanged"},
        {"name": "train", "stage": "train", "state": "pending"},
    ])
    Log(run_dir, "concepts").start("concepts").finish(count=3)
    (run_dir / "engine.pid").write_text(json.dumps({"pid": _dead_pid(), "pgid": 1, "host": HOST, "mode": "detached"}))
    doc = _doc(capsys, run_dir)
    assert doc["run_id"] == "20261123-120501-a3f0" and doc["manifest"] is True
    assert [(j["name"], j["state"]) for j in doc["jobs"]] == [("concepts", "succeeded"), ("teacher", "skipped"), ("train", "pending")]
    assert doc["jobs"][1]["skipped_reason"] == "unchanged"
    assert doc["engine"]["alive"] is False
    assert doc["state"] == "stale"
    (run_dir / "engine.pid").write_text(json.dumps({"pid": os.getpid(), "host": HOST}))
    assert _doc(capsys, run_dir)["state"] == "running"
    code, out, _ = _status(capsys, str(run_dir))
    assert f"engine pid {os.getpid()} alive" in out


def test_a_torn_manifest_is_reported_as_damaged_not_read_from_the_event_logs(tmp_path, capsys):
    # manifest.json is replaced atomically: a torn one was damaged by something else, and the
    # event logs alone would show every planned job that has not started as "pending".
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text('{"format": "po-tui-run/1", "run_id": "x", "sta')
    Log(run_dir, "concepts").start("concepts").finish(state="failed", exit_code=1)
    for args in ((), ("--json",)):
        code, out, err = _status(capsys, str(run_dir), *args)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1 and f"{run_dir / 'manifest.json'}:1: damaged run manifest: malformed JSON" in err
    # A manifest alone (a run being created) is a run directory too.
    (run_dir / "concepts.events.jsonl").unlink()
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "x", "state": "pending", "jobs": [{"name": "concepts"}]}))
    doc = _doc(capsys, run_dir)
    assert doc["state"] == "pending" and doc["jobs"][0]["state"] == "pending"


def test_watcher_reads_only_what_was_appended_and_refolds_a_replaced_file(tmp_path):
    run_dir = tmp_path / "r"
    log = Log(run_dir, "teacher").start("teacher")
    watcher = RunWatcher(run_dir)
    assert watcher.refresh().jobs["teacher"].events == 1
    offset = watcher.tails["teacher"].offset
    log("progress", done=3, total=10, unit="records")
    run = watcher.refresh()
    assert run.jobs["teacher"].events == 2 and run.jobs["teacher"].progress_done == 3
    assert watcher.tails["teacher"].offset > offset
    Log(run_dir, "train").start("train")  # a job file that appears later
    assert set(watcher.refresh().jobs) == {"teacher", "train"}
    replacement = run_dir / "teacher.new"
    replacement.write_text((run_dir / "teacher.events.jsonl").read_text().splitlines()[0] + "\n")
    os.replace(replacement, run_dir / "teacher.events.jsonl")
    run = watcher.refresh()
    assert run.jobs["teacher"].events == 1 and run.jobs["teacher"].progress_done is None


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", ["missing", "empty_dir", "file"])
def test_status_on_a_path_that_is_not_a_run_directory_is_one_line_exit_2(tmp_path, capsys, make):
    path = tmp_path / "x"
    if make == "empty_dir":
        path.mkdir()
    elif make == "file":
        path.write_text("{}")
    code, out, err = _status(capsys, str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("po-tui status: error: ") and str(path) in err


# --- runs ----------------------------------------------------------------------------------------


def test_runs_lists_newest_first_with_states(tmp_path, capsys):
    root = tmp_path / "runs"
    manifest(root / "20261120-090000-aaaa", "20261120-090000-aaaa", "2026-11-20T09:00:00Z", "succeeded",
             [{"name": "gate", "stage": "gate", "state": "succeeded"}], gate={"verdict": "pass", "passed": 3, "criteria": 3})
    manifest(root / "20261121-090000-bbbb", "20261121-090000-bbbb", "2026-11-21T09:00:00Z", "failed",
             [{"name": "train", "stage": "train", "state": "failed"}])
    manifest(root / "20261122-090000-cccc", "20261122-090000-cccc", "2026-11-22T09:00:00Z", "cancelled",
             [{"name": "teacher", "stage": "teacher", "state": "cancelled"}])
    stale = root / "20261123-090000-dddd"
    manifest(stale, "20261123-090000-dddd", "2026-11-23T09:00:00Z", "running",
             [{"name": "teacher", "stage": "teacher", "state": "running"}])
    (stale / "engine.pid").write_text(json.dumps({"pid": _dead_pid(), "host": HOST}))
    recorded_run(root / "run-20251123-120000")  # the old demo layout: event logs only, Nov 2025
    (root / "not-a-run").mkdir()
    (root / "notes.txt").write_text("x")

    assert main(["runs", str(root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "po-tui-runs/1"
    rows = [(r["run_id"], r["state"], r["stage"], r["gate"]) for r in doc["runs"]]
    assert rows == [
        ("20261123-090000-dddd", "stale", "teacher", None),
        ("20261122-090000-cccc", "cancelled", "teacher", None),
        ("20261121-090000-bbbb", "failed", "train", None),
        ("20261120-090000-aaaa", "succeeded", "gate", "pass"),
        ("run-20251123-120000", "succeeded", "gate", "fail"),
    ]
    assert all(Path(r["path"]).parent == root for r in doc["runs"])

    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.index("dddd") < out.index("cccc") < out.index("run-20251123")
    assert "PASS" in out and "FAIL" in out and "stale" in out


def test_runs_on_an_empty_or_missing_directory(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0
    assert "no run directories" in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such directory" in err


def test_runs_trusts_a_live_job_process_group_when_the_engine_is_gone(tmp_path, capsys):
    root = tmp_path / "runs"
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        rd = root / "20261123-100000-eeee"
        manifest(rd, rd.name, "2026-11-23T10:00:00Z", "running",
                 [{"name": "train", "stage": "train", "state": "running", "pgid": job.pid}])
        (rd / "engine.pid").write_text(json.dumps({"pid": _dead_pid(), "host": HOST}))
        assert main(["runs", str(root), "--json"]) == 0
        row = json.loads(capsys.readouterr().out)["runs"][0]
        assert (row["state"], row["stage"]) == ("running", "train")
    finally:
        job.kill()
        job.wait()
    assert main(["runs", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["state"] == "stale"


def test_a_job_killed_without_job_finished_becomes_stale(tmp_path, capsys):
    run_dir = tmp_path / "run"
    log = Log(run_dir, "train", time.time() - 600).start("train", pid=_dead_pid(), host=HOST)
    log("progress", done=3, total=10, unit="steps")
    doc = _doc(capsys, run_dir)
    job = doc["jobs"][0]
    assert doc["state"] == "stale" and job["state"] == "stale" and job["alive"] is False
    assert "is gone" in job["stale_reason"] and job["eta_s"] is None
    code, out, _ = _status(capsys, str(run_dir))
    assert "train stale: process" in out and "gone" in out


def test_a_cancelled_job_makes_a_cancelled_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    Log(run_dir, "concepts").start("concepts").finish(count=3)
    Log(run_dir, "teacher", 1_763_900_100.0).start("teacher").finish(state="cancelled", exit_code=130)
    doc = _doc(capsys, run_dir)
    assert doc["state"] == "cancelled" and doc["current_stage"] == "teacher"


def test_status_loads_no_ml_stack():
    # Over SSH on a busy GPU box `po-tui status` must answer at once: no torch, no transformers.
    code = ("import sys, engine.commands.status, engine.commands.runs; "
            "print(sorted(m for m in ('torch', 'transformers', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_follow_on_a_terminal_draws_a_live_screen_and_ends_with_the_run(tmp_path):
    import pty

    run_dir = tmp_path / "run"
    manifest(run_dir, "r", "2026-11-23T10:00:00Z", "succeeded", [{"name": "concepts", "stage": "concepts", "state": "succeeded"}])
    Log(run_dir, "concepts").start("concepts").finish(count=3)
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "engine", "status", str(run_dir), "--follow", "--interval", "0.1"])
    out = b""
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    text = out.decode(errors="replace")
    assert "concepts" in text and "succeeded" in text and "\x1b[" in text  # styled: a real terminal
