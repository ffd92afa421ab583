"""The run event log: writer, redaction, followers, batch reader, state folding and its docs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.errors import InputError
from engine.runlog import (
    EVENT_TYPES,
    REDACTED,
    EventTail,
    EventWriter,
    JobState,
    RunState,
    events_path,
    follow,
    is_secret_key,
    list_event_files,
    read_events,
    redact,
    register_event_type,
)
from engine.runlog import events as events_mod
from engine.runlog import state as state_mod

REPO = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()


class Clock:
    """A fake clock: every call is one second later, so no test depends on real time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def line(seq: int, type_: str = "log", job: str = "j", ts: float | None = None, **data: object) -> bytes:
    event = {"v": 1, "ts": float(ts if ts is not None else 100 + seq), "seq": seq, "job": job, "type": type_, "data": data}
    return (json.dumps(event) + "\n").encode()


def ev(seq: int, type_: str, ts: float, job: str = "j", **data: object) -> dict:
    return {"v": 1, "ts": ts, "seq": seq, "job": job, "type": type_, "data": data}


@pytest.fixture
def restore_registry():
    saved, saved_req = dict(EVENT_TYPES), dict(events_mod._REQUIRED)
    yield
    EVENT_TYPES.clear()
    EVENT_TYPES.update(saved)
    events_mod._REQUIRED.clear()
    events_mod._REQUIRED.update(saved_req)


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------


def test_envelope_and_seq_continue_across_reopen(tmp_path: Path) -> None:
    path = events_path(tmp_path, "teacher")
    assert path == tmp_path / "teacher.events.jsonl"
    clock = Clock()
    with EventWriter(path, "teacher", clock=clock) as w:
        first = w.started("teacher", argv=["po-tui", "teach"], config_hash="abc")
        w.progress(1, 10, unit="records")
        w.log("hello")
    assert first["seq"] == 0 and first["data"]["pid"] == os.getpid() and first["data"]["host"] == HOST
    with EventWriter(path, "teacher", clock=clock) as w:
        assert w.started("teacher", resumed=True)["seq"] == 3
        w.finished("succeeded", summary={"records": 10})

    events = read_events(path)
    assert [e["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert [e["type"] for e in events] == ["job_started", "progress", "log", "job_started", "job_finished"]
    for e in events:
        assert list(e) == ["v", "ts", "seq", "job", "type", "data"]
        assert e["v"] == 1 and e["job"] == "teacher" and isinstance(e["ts"], float)
    assert [e["ts"] for e in events] == [1001.0, 1002.0, 1003.0, 1004.0, 1005.0]  # one clock read each
    assert events[3]["data"]["resumed"] is True
    done = events[4]["data"]
    assert done == {"state": "succeeded", "exit_code": 0, "duration_s": 1.0, "summary": {"records": 10}}
    assert path.read_bytes().count(b"\n") == 5


def test_reopen_after_torn_tail_continues_seq(tmp_path: Path) -> None:
    path = events_path(tmp_path, "j")
    path.write_bytes(line(0) + line(1) + b'{"v":1,"ts":1')
    warnings: list[str] = []
    with EventWriter(path, "j", warn=warnings.append) as w:
        assert w.emit("heartbeat")["seq"] == 2
    assert [e["seq"] for e in read_events(path)] == [0, 1, 2]
    assert warnings and "torn" in warnings[0]


def test_second_writer_on_same_file_is_refused(tmp_path: Path) -> None:
    path = events_path(tmp_path, "j")
    with EventWriter(path, "j"):
        with pytest.raises(InputError, match="in use by"):
            EventWriter(path, "j")
    EventWriter(path, "j").close()  # free again once closed


def test_writer_is_thread_safe(tmp_path: Path) -> None:
    path = events_path(tmp_path, "j")
    with EventWriter(path, "j", fsync=False) as w:
        def work(n: int) -> None:
            for i in range(50):
                w.metric(f"m{n}", i, step=i)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    events = read_events(path)
    assert sorted(e["seq"] for e in events) == list(range(200))
    assert [e["seq"] for e in events] == list(range(200))  # file order is seq order


def test_redact_nested_dicts_and_lists() -> None:
    payload = {
        "api_key": "AIzaSyD-very-secret",
        "nested": {"Authorization": "Bearer abc", "list": [{"password": "hunter2"}, {"ok": 1}], "accessToken": "t"},
        "argv": ["po-tui", "--api-key", "s3cr3t", "--token=t0k", "--max-tokens", "512"],
        "tokens_in": 12,
        "max_tokens": 512,
        "message": "HTTP 401 with api_key=s3cr3t; header Authorization: Bearer abc.def",
        "nothing": None,
        "CLIENT_SECRET": ["x"],
    }
    out = redact(payload)
    assert out["api_key"] == REDACTED and out["CLIENT_SECRET"] == REDACTED
    assert out["nested"]["Authorization"] == REDACTED and out["nested"]["accessToken"] == REDACTED
    assert out["nested"]["list"] == [{"password": REDACTED}, {"ok": 1}]
    assert out["argv"] == ["po-tui", "--api-key", REDACTED, "--token=" + REDACTED, "--max-tokens", "512"]
    assert out["tokens_in"] == 12 and out["max_tokens"] == 512 and out["nothing"] is None
    assert "s3cr3t" not in out["message"] and "abc" not in out["message"]
    assert payload["api_key"] == "AIzaSyD-very-secret"  # a copy, the input is untouched
    assert is_secret_key("OPENAI_API_KEY") and is_secret_key("apikey") and is_secret_key("credentials")
    assert not is_secret_key("tokenizer") and not is_secret_key("prompt_tokens")


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    path = events_path(tmp_path, "j")
    secret = "sk-live-0123456789abcdefXYZ"
    with EventWriter(path, "j") as w:
        w.started("teacher", argv=["teach", "--api-key", secret], env={"GEMINI_API_KEY": secret})
        w.error("boom", stderr_tail=f"request failed: Authorization: Bearer {secret}")
        w.emit("log", level="info", message="cfg", cfg=[{"provider": {"Token": secret}}])
        w.counter(tokens_in=5)
    text = path.read_text()
    assert secret not in text and "0123456789abcdef" not in text
    assert text.count(REDACTED) >= 4
    assert read_events(path)[-1]["data"]["counters"] == {"tokens_in": 5}


def test_bad_payload_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = events_path(tmp_path, "j")
    with EventWriter(path, "j") as w:
        w.log("one")
        before = path.read_bytes()
        with pytest.raises(ValueError, match=r"data\.extra\.obj: a object is not JSON-serialisable"):
            w.emit("log", level="info", message="x", extra={"obj": object()})
        with pytest.raises(ValueError, match="set"):
            w.emit("heartbeat", items={1, 2})
        with pytest.raises(ValueError, match="keys must be strings"):
            w.emit("heartbeat", m={1: "a"})
        cyclic: list = []
        cyclic.append(cyclic)
        with pytest.raises(ValueError):
            w.emit("heartbeat", c=cyclic)
        with pytest.raises(ValueError, match="unknown event type"):
            w.emit("no_such_type")
        with pytest.raises(ValueError, match="missing payload field"):
            w.emit("progress", total=3)
        with pytest.raises(ValueError, match="job state"):
            w.finished("exploded")
        with pytest.raises(ValueError, match="bytes"):
            w.log("x" * (events_mod.MAX_EVENT_BYTES + 1))
        assert path.read_bytes() == before
        assert w.emit("heartbeat")["seq"] == 1  # no seq was used up
        w.metric("loss", float("nan"))
    assert read_events(path)[-1]["data"]["value"] == "NaN"
    json.loads(path.read_text().splitlines()[-1], parse_constant=lambda c: pytest.fail(c))


def test_running_context_reports_failure_and_cancel(tmp_path: Path) -> None:
    path = events_path(tmp_path, "j")
    with EventWriter(path, "j", clock=Clock()) as w:
        with pytest.raises(ZeroDivisionError):
            with w.running("train"):
                _ = 1 / 0
        with pytest.raises(KeyboardInterrupt):
            with w.running("train"):
                raise KeyboardInterrupt
        with w.running("train"):
            pass
    events = read_events(path)
    kinds = [(e["type"], e["data"].get("state")) for e in events]
    assert kinds == [
        ("job_started", None), ("error", None), ("job_finished", "failed"),
        ("job_started", None), ("job_finished", "cancelled"),
        ("job_started", None), ("job_finished", "succeeded"),
    ]
    assert "ZeroDivisionError" in events[1]["data"]["traceback"]
    assert events[4]["data"]["exit_code"] == 130


def test_registry_accepts_stage_types(tmp_path: Path, restore_registry: None) -> None:
    register_event_type("teacher_record", "One teacher answer: id, tokens.", required=("id",))
    register_event_type("teacher_record", "One teacher answer: id, tokens.", required=("id",))  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        register_event_type("teacher_record", "Something else.")
    with pytest.raises(ValueError, match="snake_case"):
        register_event_type("Bad-Name", "x")
    path = events_path(tmp_path, "teacher")
    with EventWriter(path, "teacher") as w:
        with pytest.raises(ValueError, match="missing"):
            w.emit("teacher_record")
        w.emit("teacher_record", id="r1")
    assert read_events(path)[0]["type"] == "teacher_record"


def test_paths_and_listing(tmp_path: Path) -> None:
    assert list_event_files(tmp_path / "missing") == []
    for job in ("train", "teacher"):
        EventWriter(events_path(tmp_path, job), job).close()
    (tmp_path / "teacher.events.jsonl.torn-1").write_bytes(b"{")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_event_files(tmp_path)] == ["teacher.events.jsonl", "train.events.jsonl"]
    for bad in ("", "../x", "a/b", ".hidden", "x."):
        with pytest.raises(ValueError):
            events_path(tmp_path, bad)


# ---------------------------------------------------------------------------------------------
# Follower and batch reader
# ---------------------------------------------------------------------------------------------


def test_tail_missing_file_then_partial_line_buffered(tmp_path: Path) -> None:
    path = tmp_path / "j.events.jsonl"
    tail = EventTail(path)
    assert tail.poll() == []
    full = line(1)
    path.write_bytes(line(0) + full[:20])
    assert [e["seq"] for e in tail.poll()] == [0]
    assert tail.pending_bytes == 20
    assert tail.poll() == []  # still incomplete: held back, not an error
    with open(path, "ab") as fh:
        fh.write(full[20:-1])
    assert tail.poll() == []  # whole object but no newline yet
    with open(path, "ab") as fh:
        fh.write(b"\n" + line(2))
    assert [e["seq"] for e in tail.poll()] == [1, 2]
    assert tail.poll() == [] and tail.corrupt_count == 0 and tail.torn is None


def test_tail_final_poll_reports_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "j.events.jsonl"
    path.write_bytes(line(0) + line(1) + b'{"v":1,"ts":10')
    tail = EventTail(path)
    assert len(tail.poll()) == 2 and tail.torn is None
    assert tail.finish() == []
    assert tail.torn is not None and tail.torn.line == 3 and tail.torn.size == 14
    # A last line that is complete JSON but lacks only its newline is accepted at the end.
    other = tmp_path / "k.events.jsonl"
    other.write_bytes(line(0) + line(1)[:-1])
    assert [e["seq"] for e in EventTail(other).poll(final=True)] == [0, 1]


def test_tail_resets_on_truncation_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "j.events.jsonl"
    path.write_bytes(line(0) + line(1) + line(2))
    tail = EventTail(path)
    assert len(tail.poll()) == 3 and not tail.reset
    path.write_bytes(line(0, "heartbeat"))  # truncated in place, shorter than the offset
    got = tail.poll()
    assert tail.reset and tail.resets == 1 and [e["type"] for e in got] == ["heartbeat"]
    assert tail.poll() == [] and not tail.reset
    replacement = tmp_path / "new"
    replacement.write_bytes(line(0, "warning", message="a") + line(1) + line(2) + line(3))
    os.replace(replacement, path)  # a new inode, longer than before
    got = tail.poll()
    assert tail.reset and tail.resets == 2 and [e["seq"] for e in got] == [0, 1, 2, 3]


def test_tail_skips_corrupt_middle_line_but_read_events_raises(tmp_path: Path) -> None:
    path = tmp_path / "j.events.jsonl"
    path.write_bytes(line(0) + b"{not json\n" + line(2) + b'["an", "array"]\n' + line(4))
    tail = EventTail(path)
    assert [e["seq"] for e in tail.poll()] == [0, 2, 4]
    assert list(tail.corrupt_lines) == [2, 4] and tail.corrupt_count == 2
    with pytest.raises(InputError) as info:
        read_events(path)
    assert f"{path}:2:" in str(info.value) and info.value.line == 2


def _reference_parse(block: bytes) -> tuple[list[dict], list[int]]:
    """What EventTail made of a block line by line, with json.loads, before its scanner path."""
    events, corrupt = [], []
    for n, raw in enumerate(block.split(b"\n")[:-1], 1):
        if not raw.strip():
            continue
        try:
            events.append(events_mod.check_event(json.loads(raw.decode("utf-8"))))
        except (UnicodeDecodeError, ValueError):
            corrupt.append(n)
    return events, corrupt


@pytest.mark.parametrize("bad_utf8", [False, True])
def test_tail_scanner_path_reads_odd_lines_as_json_loads_does(tmp_path: Path, bad_utf8: bool) -> None:
    odd = [
        line(1, message="ünïcode ✓ \u2028 and an escaped \\n"),
        b" " + line(2),  # leading blank: json.loads takes it
        line(3).rstrip(b"\n") + b"\r\n",  # CRLF
        b"\n", b"  \t \n", b"\xc2\xa0\n",  # empty, blank, a no-break space (not blank to bytes.strip)
        b"\xef\xbb\xbf" + line(7),  # a BOM
        line(8).rstrip(b"\n") + b" trailing\n",
        b'{"v":1,"ts":NaN,"seq":9,"job":"j","type":"log","data":{"x":Infinity}}\n',  # json.loads takes NaN
        b'{"v":1,"ts":1.0,"seq":true,"job":"j","type":"log","data":{}}\n',  # bool is no seq
        b'{"v":1,"ts":1.0,"seq":11,"job":"j","type":"log"}\n',  # data may be absent
        b'{"v":1,"ts":1.0,"seq":12,"job":"j","type":"log","data":[]}\n',
        b'{"v":1,"ts":1.0,"seq":13,"job":"j","type":"log","data":{},"seq":14}\n',  # the last key wins
        b"[1, 2]\n", b"42\n", b'"text"\n',
    ]
    if bad_utf8:
        odd.append(b'{"v":1,"ts":1.0,"seq":15,"job":"j","type":"log","data":{"m":"\xff"}}\n')
    block = line(0) + b"".join(odd) + line(16)
    path = tmp_path / "j.events.jsonl"
    path.write_bytes(block)
    tail = EventTail(path)
    got = tail.poll()
    expected, corrupt = _reference_parse(block)
    assert got == expected and list(tail.corrupt_lines) == corrupt and tail.corrupt_count == len(corrupt)
    assert tail.line == block.count(b"\n") and tail.offset == len(block)
    assert [e["seq"] for e in got][:3] == [0, 1, 2] and got[-1]["seq"] == 16


def test_tail_subclass_deciding_what_a_line_is_still_gets_bytes(tmp_path: Path) -> None:
    class Rows(EventTail):
        @staticmethod
        def _decode(raw: bytes) -> dict | None:
            assert isinstance(raw, bytes)
            row = json.loads(raw)
            return row if isinstance(row, dict) else None

    path = tmp_path / "cases.jsonl"
    path.write_bytes(b'{"index": 0}\n[1]\n{"index": 1}\n')
    tail = Rows(path)
    assert tail.poll() == [{"index": 0}, {"index": 1}] and tail.corrupt_count == 1


def test_read_events_envelope_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "j.events.jsonl"
    path.write_bytes(line(0) + b'{"v":1,"ts":1.0,"job":"j","type":"log","data":{}}\n')
    with pytest.raises(InputError) as info:
        read_events(path)
    assert info.value.line == 2 and info.value.field == "seq" and f"{path}:2: seq:" in str(info.value)


def test_read_events_ignores_torn_last_line_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "j.events.jsonl"
    path.write_bytes(line(0) + line(1, "future_type", x=1) + b'{"v":1,"ts')
    warnings: list[str] = []
    events = read_events(path, warn=warnings.append)
    assert [e["type"] for e in events] == ["log", "future_type"]  # unknown types are read
    assert len(warnings) == 1 and ":3: torn last line" in warnings[0]


CHILD = r"""
import os, sys
from engine.runlog import EventWriter
path = sys.argv[1]
def wait(tag):
    print(tag, flush=True)
    assert sys.stdin.readline() == "go\n"
w = EventWriter(path, "child")
w.started("child")
w.close()
wait("started")
line = b'{"v":1,"ts":5.0,"seq":1,"job":"child","type":"progress","data":{"done":1,"total":2,"unit":"x"}}\n'
with open(path, "ab") as fh:
    fh.write(line[:40]); fh.flush(); os.fsync(fh.fileno())
    wait("half")
    fh.write(line[40:]); fh.flush(); os.fsync(fh.fileno())
wait("whole")
with EventWriter(path, "child") as w:
    w.progress(2, 2, unit="x")
    w.finished("succeeded")
print("done", flush=True)
"""


def test_real_second_process_appending_while_we_tail(tmp_path: Path) -> None:
    path = events_path(tmp_path, "child")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )
    tail = EventTail(path)
    seen: list[dict] = []

    def step(expect: str) -> None:
        got = proc.stdout.readline().strip()
        assert got == expect, proc.stderr.read() if proc.poll() is not None else got

    try:
        step("started")
        seen += tail.poll()
        assert [e["type"] for e in seen] == ["job_started"]
        proc.stdin.write("go\n")
        proc.stdin.flush()
        step("half")
        assert tail.poll() == [] and tail.pending_bytes == 40  # mid-append: held back
        proc.stdin.write("go\n")
        proc.stdin.flush()
        step("whole")
        got = tail.poll()
        assert [(e["type"], e["seq"]) for e in got] == [("progress", 1)]
        seen += got
        proc.stdin.write("go\n")
        proc.stdin.flush()
        step("done")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    seen += tail.finish()
    assert [e["seq"] for e in seen] == [0, 1, 2, 3] and tail.torn is None and tail.corrupt_count == 0
    run = RunState()
    run.apply_all(seen)
    assert run.jobs["child"].state == "succeeded" and run.jobs["child"].progress_done == 2


async def test_async_follow_yields_events_as_they_appear(tmp_path: Path) -> None:
    path = events_path(tmp_path, "j")
    got: list[dict] = []

    async def produce() -> None:
        with EventWriter(path, "j", fsync=False) as w:
            w.started("s")
            for i in range(3):
                await asyncio.sleep(0.005)
                w.progress(i + 1, 3)
            w.finished("succeeded")

    async def consume() -> None:
        async for event in follow(path, interval=0.005, stop_on_finish=True):
            got.append(event)

    await asyncio.wait_for(asyncio.gather(consume(), produce()), timeout=10)
    assert [e["type"] for e in got] == ["job_started", "progress", "progress", "progress", "job_finished"]


async def test_async_follow_stops_on_event_after_final_poll(tmp_path: Path) -> None:
    path = tmp_path / "j.events.jsonl"
    stop = asyncio.Event()
    tail = EventTail(path)
    got: list[dict] = []

    async def consume() -> None:
        async for event in follow(path, interval=0.005, stop=stop, tail=tail):
            got.append(event)
            if len(got) == 1:
                with open(path, "ab") as fh:  # more lands, then we are told to stop
                    fh.write(line(1) + b'{"torn')
                stop.set()

    path.write_bytes(line(0))
    await asyncio.wait_for(consume(), timeout=10)
    assert [e["seq"] for e in got] == [0, 1]
    assert tail.torn is not None and tail.torn.line == 3


# ---------------------------------------------------------------------------------------------
# State folding
# ---------------------------------------------------------------------------------------------


def test_progress_rate_eta_and_counters() -> None:
    run = RunState()
    run.apply(ev(0, "job_started", 0.0, stage="teacher", pid=1, host="h", resumed=False))
    for i, t in enumerate((0.0, 10.0, 20.0)):
        run.apply(ev(i + 1, "progress", t, done=i * 10, total=100, unit="records"))
    job = run.jobs["j"]
    assert job.state == "running" and job.stage == "teacher"
    assert job.rate == pytest.approx(1.0) and job.eta_s == pytest.approx(80.0)
    assert (job.progress_done, job.progress_total, job.fraction) == (20, 100, 0.2)
    assert job.eta_at(30.0) == pytest.approx(70.0) and job.elapsed == 20.0
    run.apply(ev(4, "progress", 21.0, done=30, total=100, unit="records", rate_per_s=5.0, eta_s=14.0))
    assert (job.rate, job.eta_s) == (5.0, 14.0)  # the stage's own numbers win
    run.apply(ev(5, "progress", 22.0, done=0, total=10, unit="steps", label="epoch 2"))
    assert job.rate is None and job.eta_s is None  # a new phase: no speed known yet
    run.apply(ev(6, "counter", 23.0, counters={"kept": 3, "dropped": 1}))
    run.apply(ev(7, "counter", 24.0, counters={"kept": 2}, mode="add"))
    run.apply(ev(8, "counter", 25.0, counters={"dropped": 7}, mode="set"))
    assert job.counters == {"kept": 5, "dropped": 7}
    run.apply(ev(9, "metric", 26.0, name="loss", value=1.5, step=10))
    run.apply(ev(10, "metric", 27.0, name="loss", value="NaN", step=11))
    value, step = job.metrics["loss"]
    assert value != value and step == 11


def test_finished_states_errors_and_unknown_types() -> None:
    run = RunState()
    run.apply(ev(0, "job_started", 1.0, job="a", stage="s", pid=1, host="h", resumed=False))
    run.apply(ev(0, "job_started", 2.0, job="b", stage="s", pid=1, host="h", resumed=False))
    run.apply(ev(0, "heartbeat", 3.0, job="c"))
    for i in range(100):
        run.apply(ev(i + 1, "error", 4.0 + i, job="a", message=f"e{i}", code="x"))
    run.apply(ev(101, "whatever_new", 500.0, job="a", foo=1))
    run.apply(ev(102, "job_finished", 600.0, job="a", state="failed", exit_code=3, duration_s=599.0))
    run.apply(ev(1, "job_finished", 7.0, job="b", state="cancelled", exit_code=130))
    run.apply(ev(1, "job_finished", 8.0, job="c", state="exploded"))
    a, b, c = (run.jobs[k] for k in "abc")
    assert run.order == ["a", "b", "c"]
    assert (a.state, a.exit_code, a.error_count, len(a.errors)) == ("failed", 3, 100, state_mod.KEEP_RECENT)
    assert a.errors[-1]["message"] == "e99" and a.last_event_ts == 600.0 and a.elapsed == 599.0
    assert (b.state, b.exit_code) == ("cancelled", 130)
    assert c.state == "failed"  # an unknown end state is not mistaken for success
    assert run.counts()["failed"] == 2
    assert run.apply(ev(50, "log", 9.0, job="a", level="info", message="re-read")) is a and a.duplicates == 1
    assert run.apply({"not": "an event"}) is None and run.ignored == 1
    run.apply(ev(103, "progress", 601.0, job="a", done="lots"))
    assert a.bad_events == 1  # never raises
    json.dumps(a.to_dict())


def test_state_memory_is_bounded() -> None:
    job = JobState("j")
    run = RunState()
    run.jobs["j"] = job
    for i in range(3000):
        run.apply(ev(2 * i, "counter", float(i), counters={f"c{i}": 1}))
        run.apply(ev(2 * i + 1, "progress", float(i), done=i, total=10_000))
    assert len(job.counters) == state_mod.MAX_NAMES and job.dropped_names == 3000 - state_mod.MAX_NAMES
    assert len(job._window) <= state_mod.RATE_SAMPLES and job.duplicates == 0


def test_stale_when_process_gone_and_silent() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: the pid no longer exists
    run = RunState()
    run.apply(ev(0, "job_started", 1000.0, job="gone", stage="s", pid=dead.pid, host=HOST, resumed=False))
    run.apply(ev(0, "job_started", 1000.0, job="alive", stage="s", pid=os.getpid(), host=HOST, resumed=False))
    run.apply(ev(0, "job_started", 1000.0, job="remote", stage="s", pid=dead.pid, host="elsewhere", resumed=False))
    run.apply(ev(0, "job_started", 1000.0, job="done", stage="s", pid=dead.pid, host=HOST, resumed=False))
    run.apply(ev(1, "job_finished", 1001.0, job="done", state="succeeded"))
    assert run.check_liveness(now=1010.0, stale_after=60) == []  # silent, but not for long
    stale = run.check_liveness(now=1100.0, stale_after=60)
    assert [j.job for j in stale] == ["gone"]
    assert run.jobs["gone"].state == "stale" and "gone" in run.jobs["gone"].stale_reason
    assert {k: j.state for k, j in run.jobs.items() if k != "gone"} == {
        "alive": "running", "remote": "running", "done": "succeeded"
    }
    run.apply(ev(1, "heartbeat", 1200.0, job="gone"))  # it spoke again after all
    assert run.jobs["gone"].state == "running"
    assert run.check_liveness(now=1300.0, stale_after=60, alive=lambda pid: True) == []


def test_from_run_dir_interleaves_jobs_by_time(tmp_path: Path) -> None:
    (tmp_path / "train.events.jsonl").write_bytes(
        line(0, "job_started", "train", ts=20, stage="train", pid=1, host="h", resumed=False)
        + line(1, "job_finished", "train", ts=40, state="succeeded")
    )
    (tmp_path / "teacher.events.jsonl").write_bytes(
        line(0, "job_started", "teacher", ts=10, stage="teacher", pid=1, host="h", resumed=False)
        + line(1, "job_finished", "teacher", ts=15, state="succeeded")
        + b"{broken\n"
        + line(2, "heartbeat", "teacher", ts=16)
    )
    (tmp_path / "eval.events.jsonl").write_bytes(b"")
    with pytest.raises(InputError, match=r"teacher\.events\.jsonl:3"):
        RunState.from_run_dir(tmp_path)
    run = RunState.from_run_dir(tmp_path, strict=False)
    assert run.order == ["teacher", "train", "eval"]
    assert [run.jobs[k].state for k in run.order] == ["succeeded", "succeeded", "pending"]
    assert run.jobs["teacher"].last_event_ts == 16.0


# ---------------------------------------------------------------------------------------------
# Docs
# ---------------------------------------------------------------------------------------------


def test_every_event_type_is_documented() -> None:
    """docs/events.md must name every registered type (core ones and those stages register)."""
    doc = (REPO / "docs" / "events.md").read_text()
    documented = set(re.findall(r"`([a-z][a-z0-9_]*)`", doc))
    documented |= {w for h in re.findall(r"^#+ (.*)$", doc, re.M) for w in re.findall(r"[a-z][a-z0-9_]*", h)}
    registered = set(EVENT_TYPES)
    for source in (REPO / "engine").rglob("*.py"):  # stage types, even when not imported here
        registered |= set(re.findall(r"register_event_type\(\s*[\"']([a-z][a-z0-9_]*)[\"']", source.read_text()))
    missing = sorted(registered - documented)
    assert not missing, f"event types missing from docs/events.md: {missing}"
