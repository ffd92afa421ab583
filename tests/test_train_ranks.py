"""A torchrun rank that dies: rank 0's event log names it and ends the job.

torchrun stops the other ranks with SIGTERM when one fails. Rank 0 (the only writer) must turn
that, or the broken collective that often comes first, into a `rank_failed` event with the
failed rank's error (from torchrun's per-rank error file) and a failed job; with no failed rank
recorded, a stop is a cancel. When rank 0's main thread is stuck in a C++ wait that does not
run Python signal handlers, a watcher thread ends the job instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from engine.errors import StageFailed  # noqa: E402
from engine.runlog.events import EventWriter  # noqa: E402
from engine.runlog.tail import read_events  # noqa: E402
from engine.stages.train.ranks import RankGuard, failed_ranks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def torchrun_layout(tmp_path: Path, monkeypatch, *, rank1_fails: bool) -> dict[str, str]:
    """torchrun's per-rank error files (<run>/attempt_0/<rank>/error.json), this process as
    rank 0; rank 1's written by torch's own error handler, as `@record` does."""
    from torch.distributed.elastic.multiprocessing.errors import get_error_handler

    attempt = tmp_path / "torchelastic" / "run_x" / "attempt_0"
    for rank in (0, 1):
        (attempt / str(rank)).mkdir(parents=True)
    if rank1_fails:
        monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(attempt / "1" / "error.json"))
        try:
            raise ValueError("boom on rank 1")
        except ValueError as exc:
            get_error_handler().record_exception(exc)
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(attempt / "0" / "error.json"))
    return {"TORCHELASTIC_ERROR_FILE": str(attempt / "0" / "error.json")}


def test_a_broken_collective_is_reported_as_the_rank_that_failed(tmp_path, monkeypatch):
    torchrun_layout(tmp_path, monkeypatch, rank1_fails=True)
    [failure] = failed_ranks()
    assert (failure.rank, failure.message) == (1, "ValueError: boom on rank 1") and "boom" in failure.traceback
    log = tmp_path / "train.events.jsonl"
    with EventWriter(log, "train") as writer, pytest.raises(StageFailed, match="rank 1 failed: ValueError: boom on rank 1"):
        with writer.running("train"), RankGuard(writer):
            raise RuntimeError("[gloo] Connection closed by peer")  # rank 0's own view: only the echo
    events = read_events(log)
    assert [e["type"] for e in events] == ["job_started", "rank_failed", "error", "job_finished"]
    assert events[1]["data"]["rank"] == 1 and 'raise ValueError("boom on rank 1")' in events[1]["data"]["traceback"]
    assert events[2]["data"]["message"].startswith("rank 1 failed: ValueError: boom on rank 1")
    assert events[3]["data"]["state"] == "failed" and events[3]["data"]["exit_code"] == 1


def test_rank_zeros_own_error_stays_its_own_when_no_other_rank_failed(tmp_path, monkeypatch):
    torchrun_layout(tmp_path, monkeypatch, rank1_fails=False)
    log = tmp_path / "train.events.jsonl"
    with EventWriter(log, "train") as writer, pytest.raises(RuntimeError, match="out of memory"):
        with writer.running("train"), RankGuard(writer):
            raise RuntimeError("CUDA out of memory")
    assert [e["type"] for e in read_events(log)] == ["job_started", "error", "job_finished"]


def test_rank_zeros_explained_failure_is_kept_even_when_another_rank_failed_too(tmp_path, monkeypatch):
    torchrun_layout(tmp_path, monkeypatch, rank1_fails=True)  # e.g. every rank saw the same NaN loss
    log = tmp_path / "train.events.jsonl"
    with EventWriter(log, "train") as writer, pytest.raises(StageFailed, match="the training loss is nan"):
        with writer.running("train"), RankGuard(writer):
            raise StageFailed("the training loss is nan at step 3 in float16: ...")
    assert "rank_failed" not in [e["type"] for e in read_events(log)]


CHILD = textwrap.dedent("""
    import datetime, sys, time
    from engine.errors import StageFailed
    from engine.runlog.events import EventWriter
    from engine.stages.train.ranks import RankGuard

    mode, log = sys.argv[1], sys.argv[2]
    try:
        with EventWriter(log, "train") as writer, writer.running("train"), RankGuard(writer, handler_grace_s=0.5):
            if mode == "blocked":  # a C++ wait that runs no Python signal handler until it returns
                import torch.distributed as dist
                store = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=datetime.timedelta(seconds=60))
                print("ready", flush=True)
                store.get("never-set")
            else:
                print("ready", flush=True)
                while True:
                    time.sleep(0.05)
    except StageFailed as exc:
        print(f"main: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("main: interrupted", file=sys.stderr)
        sys.exit(130)
""")


@pytest.mark.parametrize("mode,rank1_fails,rc,state,ender", [
    ("blocked", True, 1, "failed", "po-tui train: failed: rank 1 failed"),  # the watcher thread ends it
    ("blocked", False, 130, "cancelled", "po-tui train: interrupted (SIGTERM)"),
    ("python", True, 1, "failed", "main: rank 1 failed"),  # the main thread's handler ends it
])
def test_sigterm_from_torchrun_ends_rank_zeros_job(tmp_path, monkeypatch, mode, rank1_fails, rc, state, ender):
    env = {**os.environ, **torchrun_layout(tmp_path, monkeypatch, rank1_fails=rank1_fails), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "train.events.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(log)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(1.0)  # into the wait
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == rc, proc.stderr.read()
        assert time.monotonic() - started < 15  # not the store's 60 s, nor torchrun's 30 s SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ender in proc.stderr.read()
    events = read_events(log)
    assert events[-1]["type"] == "job_finished" and events[-1]["data"]["state"] == state
    assert [e["type"] for e in events].count("job_finished") == 1
    if rank1_fails:
        failed = next(e["data"] for e in events if e["type"] == "rank_failed")
        assert failed["rank"] == 1 and failed["message"] == "ValueError: boom on rank 1"
        assert next(e["data"] for e in events if e["type"] == "error")["message"].startswith("rank 1 failed")


@pytest.mark.slow
def test_two_gloo_ranks_where_rank_one_dies(tmp_path, monkeypatch, capfd):
    """The real thing: torchrun, 2 CPU ranks on the tiny model, rank 1 raising as training begins
    (PO_TUI_TRAIN_FAIL_RANK, a hook for tests only)."""
    from engine.stages.tiny_model import make_tiny_model
    from tests.test_train import QUICK, records, run_cli, write_jsonl

    tiny = make_tiny_model(tmp_path / "tiny", seed=0)
    data = write_jsonl(tmp_path / "data" / "train.jsonl", records(4))
    out = tmp_path / "out"
    monkeypatch.setenv("PO_TUI_TRAIN_FAIL_RANK", "1")
    rc, _, err = run_cli(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(out), *QUICK,
                          "--max-steps", "2", "--cpu-processes", "2"])
    ranks = capfd.readouterr().err
    assert rc == 1, err + ranks[-3000:]
    assert err.strip().splitlines()[-1].startswith(
        "po-tui train: failed: rank 1 failed: RuntimeError: PO_TUI_TRAIN_FAIL_RANK=1: rank 1 fails on purpose")
    events = read_events(out / "train.events.jsonl")
    types = [e["type"] for e in events]
    assert types[0] == "job_started" and types[-1] == "job_finished", types
    failed = next(e["data"] for e in events if e["type"] == "rank_failed")
    assert failed["rank"] == 1 and "on_train_begin" in failed["traceback"]
    assert next(e["data"] for e in events if e["type"] == "error")["message"].startswith("rank 1 failed: RuntimeError")
    assert events[-1]["data"]["state"] == "failed" and events[-1]["data"]["exit_code"] == 1
    assert not (out / "adapter_model.safetensors").exists()


LAUNCHER = textwrap.dedent("""
    import os, signal, sys
    from engine.stages.train.launch import Launch, run_child

    def stop(signum, frame):  # as engine.cli does: SIGTERM ends a stage like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    child = ("import signal, sys, time\\n"
             "def term(s, f):\\n"
             "    print('child got SIGTERM', flush=True); time.sleep(1); sys.exit(143)\\n"
             "signal.signal(signal.SIGTERM, term)\\n"
             "print('child up', flush=True)\\n"
             "time.sleep(60)\\n")
    rc = run_child(Launch([sys.executable, "-c", child], dict(os.environ), "test"), forward_after_s=float(sys.argv[1]))
    print("launcher: child exited", rc, flush=True)
""")


@pytest.mark.parametrize("target", ["launcher", "group"])
def test_the_launcher_passes_a_stop_on_once_and_waits_for_the_child(target):
    """A stop sent to the launcher alone reaches the child as SIGTERM; one sent to the process
    group (Ctrl-C, po-tui cancel, the engine) reaches the child directly and is not doubled.
    Either way the launcher waits for the child instead of killing it (subprocess.run would)."""
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, "0.5" if target == "launcher" else "5"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "child up", proc.stderr.read()
        if target == "launcher":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert out.splitlines() == ["child got SIGTERM", "launcher: child exited 143"], out + err
