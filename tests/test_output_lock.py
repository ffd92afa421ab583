"""One writer per output directory (engine/store/lock.py) and per event log.

A second teacher, eval, prep, train or export on an output another process is writing is refused
with one line naming the holder's pid and host, exit 2, before it writes anything (its event log
included); the first finishes with exactly what it was asked for. A lock left by a killed process
never blocks, and the lock file does not outlive a clean run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import InputError
from engine.runlog.events import EventWriter, events_path
from engine.stages.concepts import generate_concepts
from engine.store import lock as lock_mod
from engine.store.atomic import atomic_write_jsonl
from engine.store.lock import LOCK_NAME, OutputLock

ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _one_refusal_line(err: str, pid: int) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"pid {pid} on host {HOST}" in err, err


# --- the lock itself ---------------------------------------------------------------------------


def test_second_holder_is_refused_naming_pid_and_host_and_the_file_goes_on_release(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out, stage="teacher") as held:
        assert held.path == out / LOCK_NAME
        assert (out / LOCK_NAME).read_text() == f"pid={os.getpid()} host={HOST} stage=teacher\n"
        with pytest.raises(InputError) as info:
            OutputLock(out, stage="teacher").acquire()  # another open file: flock says no
        message = str(info.value)
        assert message.startswith(f"{out}: --out: in use by po-tui teacher, pid {os.getpid()} on host {HOST}")
    assert not out.exists()  # created for the lock, left empty: removed again
    out.mkdir()
    (out / "keep.jsonl").write_text("{}\n")
    with OutputLock(out, stage="prep"):
        pass
    assert _listing(out) == ["keep.jsonl"]


def test_a_lock_file_left_by_a_killed_process_does_not_block(tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys, time\n"
        "from engine.store.lock import OutputLock\n"
        f"OutputLock({str(out)!r}, stage='teacher').acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"pid {proc.pid} on host"):
            OutputLock(out, stage="teacher").acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert (out / LOCK_NAME).exists()  # stale, but nobody holds it
    with OutputLock(out, stage="teacher"):
        assert (out / LOCK_NAME).read_text().startswith(f"pid={os.getpid()} ")
    assert not (out / LOCK_NAME).exists()


def test_a_forked_child_holding_a_copy_does_not_keep_the_lock(tmp_path):
    out = tmp_path / "out"
    held = OutputLock(out, stage="train").acquire()
    pid = os.fork()
    if pid == 0:  # a DataLoader-style worker: same descriptors, outlives the release
        time.sleep(30)
        os._exit(0)
    try:
        held.release()
        with OutputLock(out, stage="train"):
            pass
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_lock_file_removed_between_open_and_flock_is_not_trusted(tmp_path, monkeypatch):
    """The holder removes the file on release; a process that locked the removed inode must retry."""
    out = tmp_path / "out"
    first = OutputLock(out, stage="teacher").acquire()
    real = lock_mod.try_flock
    calls: list[int] = []

    def release_first_then_lock(fd: int) -> bool:
        calls.append(fd)
        if len(calls) == 1:
            first.release()  # unlinks the file this fd was opened on, and unlocks it
        return real(fd)

    monkeypatch.setattr(lock_mod, "try_flock", release_first_then_lock)
    second = OutputLock(out, stage="teacher").acquire()
    try:
        assert len(calls) == 2  # the removed file was locked, noticed, and the new one taken
        assert os.fstat(second._fd).st_ino == os.stat(out / LOCK_NAME).st_ino
        monkeypatch.setattr(lock_mod, "try_flock", real)
        with pytest.raises(InputError, match="in use by"):
            OutputLock(out, stage="teacher").acquire()
    finally:
        second.release()


def test_an_output_that_is_a_file_is_one_line(tmp_path):
    path = tmp_path / "out"
    path.write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        OutputLock(path, stage="prep").acquire()
    assert path.read_text() == "x"


def test_the_same_event_log_is_refused_with_one_line_naming_its_holder(tmp_path, capsys):
    """Two teachers on different outputs, one event log: exit 2 (was a RuntimeError traceback)."""
    concepts = atomic_write_jsonl(tmp_path / "c.jsonl", generate_concepts(3, 1))
    run_dir = tmp_path / "run"
    with EventWriter(events_path(run_dir, "teacher"), "teacher") as writer:
        writer.started("teacher")
        before = _listing(tmp_path)
        code = main(["teacher", "--provider", "synthetic", "--concepts", str(concepts), "--out", str(tmp_path / "o2"),
                     "--run-dir", str(run_dir)])
        err = capsys.readouterr().err
        assert code == 2
        _one_refusal_line(err, os.getpid())
        assert "teacher.events.jsonl" in err
        assert _listing(tmp_path) == before  # no o2/, nothing appended to the log


# --- two real processes ------------------------------------------------------------------------


def _start_holder(cmd: list[str], out: Path) -> subprocess.Popen:
    """Start `po-tui CMD`, wait until it holds OUT's lock, and pause it there (SIGSTOP): deterministic."""
    proc = subprocess.Popen([sys.executable, "-m", "engine", *cmd], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    lock = out / LOCK_NAME
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().startswith(f"pid={proc.pid} "):
            proc.send_signal(signal.SIGSTOP)
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"holder ended early: {proc.stderr.read().decode()}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("holder never took the lock")


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGCONT)
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return code, err


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *cmd], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=120)


def test_two_teachers_on_one_out_with_different_event_logs(tmp_path):
    concepts = atomic_write_jsonl(tmp_path / "c.jsonl", generate_concepts(12, 2))
    out = tmp_path / "out"
    base = ["teacher", "--provider", "synthetic", "--concepts", str(concepts), "--out", str(out), "--max-records", "8",
            "--concurrency", "2", "--synthetic-latency", "0.02"]
    first = _start_holder([*base, "--run-dir", str(tmp_path / "engine-run"), "--job", "teacher"], out)
    try:
        second = _run([*base, "--resume", "--run-dir", str(tmp_path / "manual")])
    finally:
        code, err = _finish(first)
    assert second.returncode == 2 and second.stdout == ""
    _one_refusal_line(second.stderr, first.pid)
    assert str(out) in second.stderr and "--out" in second.stderr
    assert not (tmp_path / "manual").exists()  # no event log: refused before it was opened
    assert code == 0, err
    records = _lines(out / "po_teacher_dataset.jsonl")
    keys = [(r["concept_id"], r["metadata"].get("variant", 0)) for r in records]
    assert len(records) == 8 and len(set(keys)) == 8
    answered = [(r["concept_id"], r.get("variant", 0), r.get("attempt", 0)) for r in _lines(out / "responses.jsonl")]
    assert len(answered) == len(set(answered))  # nothing paid for twice
    assert not (out / LOCK_NAME).exists()
    # the run is free again: a resume takes the lock and finds nothing left to do
    again = _run([*base, "--resume"])
    assert again.returncode == 0, again.stderr
    assert len(_lines(out / "po_teacher_dataset.jsonl")) == 8


def test_two_evals_on_one_out(tmp_path):
    concepts = atomic_write_jsonl(tmp_path / "c.jsonl", generate_concepts(6, 3))
    out = tmp_path / "ev"
    base = ["eval", "--dataset", str(concepts), "--provider", "synthetic", "--out", str(out), "--max-samples", "0",
            "--concurrency", "2", "--synthetic-latency", "0.02"]
    first = _start_holder([*base, "--tag", "teacher"], out)
    try:
        before = _listing(tmp_path)
        second = _run([*base, "--tag", "teacher", "--run-dir", str(tmp_path / "manual")])
        assert _listing(tmp_path) == before
    finally:
        code, err = _finish(first)
    assert second.returncode == 2 and second.stdout == ""
    _one_refusal_line(second.stderr, first.pid)
    assert code == 0, err
    results = list(out.glob("teacher_*.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["total_samples"] == 6
    assert not (out / LOCK_NAME).exists()


# --- every other stage, refused while this process holds the lock ------------------------------


def _prep_argv(tmp: Path, out: Path) -> list[str]:
    return ["prep", "--teacher", str(tmp / "missing-is-never-read.jsonl"), "--out", str(out), "--run-dir", str(tmp / "rd")]


def _train_argv(tmp: Path, out: Path) -> list[str]:
    return ["train", "--data", str(tmp / "data"), "--out", str(out), "--run-dir", str(tmp / "rd")]


def _merge_argv(tmp: Path, out: Path) -> list[str]:
    adapter, base = tmp / "adapter", tmp / "base"
    for folder, name in ((adapter, "adapter_config.json"), (base, "config.json")):
        folder.mkdir(exist_ok=True)
        (folder / name).write_text("{}")
    return ["export", "merge", "--adapter", str(adapter), "--base-model", str(base), "--out", str(out), "--run-dir", str(tmp / "rd")]


def _gguf_argv(tmp: Path, out: Path) -> list[str]:
    argv = _merge_argv(tmp, out)
    return ["export", "gguf", *argv[2:]]  # the same checked inputs; the lock sits beside the output file


def _ollama_argv(tmp: Path, out: Path) -> list[str]:
    return ["export", "ollama", "--adapter", str(tmp / "adapter"), "--base-model", "m", "--out", str(out)]


@pytest.mark.parametrize(
    ("make", "beside"),
    [(_prep_argv, False), (_train_argv, False), (_merge_argv, True), (_gguf_argv, True), (_ollama_argv, False)],
    ids=["prep", "train", "export-merge", "export-gguf", "export-ollama"],
)
def test_every_writing_stage_is_refused_while_its_output_is_held(tmp_path, capsys, make, beside):
    out = tmp_path / "out"
    argv = make(tmp_path, out)
    with OutputLock(out, stage="someone", beside=beside):
        before = _listing(tmp_path)
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2
        _one_refusal_line(err, os.getpid())
        assert _listing(tmp_path) == before  # no event log (rd/), nothing in or beside out


def test_an_output_under_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    """EACCES from mkdir or from opening the lock file (faked: root ignores folder modes)."""
    real_mkdir, real_open = Path.mkdir, os.open

    def denied(errno_path):
        return PermissionError(13, "Permission denied", str(errno_path))

    def mkdir(self, *args, **kwargs):
        if self.name == "b":
            raise denied(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(InputError, match="cannot create: Permission denied"):
        OutputLock(tmp_path / "a" / "b", stage="prep").acquire()
    assert _listing(tmp_path) == []  # the `a` it made on the way is removed again

    def open_(path, *args, **kwargs):
        if str(path).endswith(LOCK_NAME):
            raise denied(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(InputError, match="cannot lock the output: Permission denied"):
        OutputLock(tmp_path / "c", stage="prep").acquire()
    assert _listing(tmp_path) == []
