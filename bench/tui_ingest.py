"""Cockpit ingest: events/s the real CockpitApp folds while keys stay responsive, and the time to
open a finished run of 100,000 events.

    # what docs/BENCHMARKS.md records for this machine
    .venv/bin/python bench/tui_ingest.py --seconds 5 --log-every 20 0 --open-events 10000 100000 300000

    # a quick look (the smoke test runs about this)
    .venv/bin/python bench/tui_ingest.py --rates 1000 --seconds 1 --open-events 2000

Both parts run the real `CockpitApp` headless (`App.run_test`, its own feed worker, poll
interval and 10 Hz redraw), each case in a fresh child process so its memory is its own. The app
is a subclass that only records times: when a key's action ran, when a redraw that had something
to draw finished, and (`call_after_refresh`) when the screen after either was refreshed. It adds
one binding, F12, whose action records the time and does nothing else.

Ingest: a separate writer process appends envelope lines (docs/events.md) to the teacher and
train event logs at R events/s with plain appends (one write per file every 5 ms, paced on its
own clock): teacher_sample, progress, teacher_stats, teacher_retry, log, train_step, train_eval,
payloads shaped like the stages', and a stdout log line every --log-every events. Meanwhile a
thread sends a key every --press-ms the way the terminal driver's input thread does
(`driver.send_message`), so a key waits for whatever holds the event loop: F12 mostly, every
--tab-every-th key a tab switch (1..6 in turn). "key -> handler" is the time from sending a key
to its action running (all keys); "tab key -> painted" from sending a tab key to the screen
refresh after the switch. Ingested events/s is `CockpitModel.events` sampled every 50 ms after a
warm-up; backlog is the writer's count (shared through a small mmap'ed file) minus
`CockpitModel.events`; the max loop stall is the latest a 10 ms sleep on the event loop woke. A
rate is sustained when the app ingests at least 95 % of it, is at most 1 s behind when the
writer stops, folds every event, and the key -> handler p95 is under --latency-ms; the result is
the highest rate of an unbroken series of sustained rates from the lowest. Rate 0 (only the two
job_started events) is the baseline.

Open: a finished run directory (manifest.json as the engine writes it; jobs teacher, train,
eval, gate holding N events in all, and their stdout logs) is written first; the time runs from
constructing the app to the screen refresh after the redraw that drew all N events. Peak RSS
growth is the child's peak RSS (VmHWM) once the run is shown minus its RSS just before the app
was built; "RSS
growth, open" is the RSS (after gc) while the app shows the run minus the same baseline, which
includes memory the allocator keeps from the transient slices. A second open of each run under
tracemalloc (its times are not used) gives the Python memory at its peak and still live once
the run is shown: what the model and the widgets hold.

--profile DIR writes a cProfile of each case's event-loop thread (not the feed worker's) into
DIR; profiled times are slower, so use it to look, not to measure.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import mmap
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T0 = 1_763_900_000.0
COUNTER = struct.Struct("<qqq")  # events written, log lines written, writer state (0 starting, 1 writing, 2 done)
MODELS = ("gemini-2.5-flash", "gemini-2.5-pro")
STATUSES = ("aligned", "needs_adjustment", "misaligned")
REASONS = ("below_min_score", "invalid_review_yaml", "missing_block", "provider_error:rate_limited")


# --------------------------------------------------------------------------------------------
# Event lines, shaped like the stages' (docs/events.md)
# --------------------------------------------------------------------------------------------


class JobLines:
    """Envelope lines of one job's log: seq per file, payloads like the stage writes them."""

    def __init__(self, job: str, stage: str, seed: int) -> None:
        self.job, self.stage, self.seq = job, stage, 0
        self.rng = random.Random(seed)
        self.samples = self.steps = self.cases = 0
        self.accepted = 0
        self._sample_pool = [self._sample_payload() for _ in range(512)]

    def line(self, etype: str, data: str, ts: float) -> str:
        out = f'{{"v":1,"ts":{ts:.6f},"seq":{self.seq},"job":"{self.job}","type":"{etype}","data":{data}}}\n'
        self.seq += 1
        return out

    def _sample_payload(self) -> str:
        r = self.rng
        score = round(r.random(), 4)
        ok = score > 0.3
        return json.dumps({
            "concept_id": f"POCON-{r.randrange(10000):04d}", "variant": r.randrange(3),
            "outcome": "accepted" if ok else "rejected", "score": score, "status": r.choice(STATUSES),
            "reason": None if ok else r.choice(REASONS), "attempts": r.randint(1, 3), "model": r.choice(MODELS),
            "cost_usd": round(r.random() / 100, 5), "latency_s": round(r.uniform(2, 30), 2)}, separators=(",", ":"))

    def payload(self, etype: str) -> str:
        r = self.rng
        if etype == "teacher_sample":
            self.samples += 1
            self.accepted += 1
            return self._sample_pool[self.samples % len(self._sample_pool)]
        if etype == "progress":
            if self.stage == "teacher":
                return f'{{"done":{self.samples},"total":1000000,"unit":"records","label":"generate"}}'
            if self.stage == "train":
                return f'{{"done":{self.steps},"total":1000000,"unit":"steps"}}'
            return f'{{"done":{self.cases},"total":1000000,"unit":"cases","rate_per_s":12.5,"eta_s":3600.0}}'
        if etype == "teacher_stats":
            n = max(1, self.samples)
            return json.dumps({
                "accepted": self.accepted, "rejected": n // 7, "attempted": n, "target": 1000000, "in_flight": 32,
                "requests": n + n // 5, "replayed": 0, "retries": n // 5, "records_per_min": 3518.4,
                "acceptance_rate": 0.86, "retry_success_rate": 0.71, "eta_s": 8123.5, "elapsed_s": 310.2,
                "cost_usd": n * 0.0061, "cost_usd_run": n * 0.0061, "cost_per_accepted_usd": 0.0071,
                "unpriced_requests": 0, "input_tokens": n * 2400, "output_tokens": n * 1100, "provider_errors": 3,
                "reject_reasons": {"below_min_score": n // 10, "invalid_review_yaml": n // 40, "missing_block": 2},
                "statuses": {"aligned": n // 2, "needs_adjustment": n // 3, "misaligned": n // 6},
                "per_model": {m: {"accepted": n // 2, "rejected": n // 14} for m in MODELS}}, separators=(",", ":"))
        if etype == "teacher_retry":
            return (f'{{"concept_id":"POCON-{r.randrange(10000):04d}","variant":0,"attempt":1,'
                    f'"reason":"invalid_review_yaml","detail":"line 12: mapping values are not allowed here"}}')
        if etype == "log":
            return f'{{"level":"info","message":"checkpointed responses.jsonl at {self.samples} samples"}}'
        if etype == "train_step":
            self.steps += 1
            s = self.steps
            return (f'{{"step":{s},"max_steps":1000000,"epoch":{s / 5000:.4f},"loss":{2.0 / (1 + s / 500) + r.random() / 20:.4f},'
                    f'"learning_rate":9.6e-05,"grad_norm":{0.3 + r.random() / 5:.3f},"tokens_seen":{s * 4096},'
                    f'"tokens_per_s":5120.4,"gpu_mem_allocated_gb":6.1,"gpu_mem_reserved_gb":7.9,"gpu_mem_peak_gb":7.4}}')
        if etype == "train_eval":
            return f'{{"step":{self.steps},"epoch":{self.steps / 5000:.4f},"eval_loss":{2.1 / (1 + self.steps / 500):.4f}}}'
        if etype == "eval_case":
            self.cases += 1
            score = round(r.random(), 4)
            ok = score > 0.1
            return json.dumps({
                "index": self.cases - 1, "concept_id": f"POCON-{self.cases % 10000:04d}", "status": "ok" if ok else "format_error",
                "score": score if ok else None, "partial_score": score, "attempts": 1 if ok else 3,
                "format_error": None if ok else "invalid_review_yaml", "review_status": r.choice(STATUSES) if ok else None,
                "latency_s": round(r.uniform(5, 40), 1), "output_tokens": r.randint(600, 1400)}, separators=(",", ":"))
        raise ValueError(etype)

    def event(self, etype: str, ts: float) -> str:
        return self.line(etype, self.payload(etype), ts)

    def started(self, ts: float, pid: int | None, host: str) -> str:
        data = json.dumps({"stage": self.stage, "argv": ["po-tui", self.stage, "--run-dir", "RUN"], "pid": pid,
                           "host": host, "config_hash": "3f9a1c", "resumed": False})
        return self.line("job_started", data, ts)

    def finished(self, ts: float, summary: dict[str, Any]) -> str:
        data = json.dumps({"state": "succeeded", "exit_code": 0, "duration_s": 3600.0, "summary": summary})
        return self.line("job_finished", data, ts)

    def stdout_line(self, ts: float) -> str:
        if self.stage == "teacher":
            return (f"{time.strftime('%H:%M:%S', time.gmtime(ts))} sample {self.samples}: POCON-{self.samples % 10000:04d}/0 "
                    f"accepted score 0.91 after 1 attempt (14.2 s, $0.0061)\n")
        stamp = time.strftime('%H:%M:%S', time.gmtime(ts))
        return f"{stamp} {{'loss': 0.8123, 'grad_norm': 0.41, 'learning_rate': 9.6e-05, 'epoch': {self.steps / 5000:.2f}}}\n"


# What one live writer cycle of 20 events holds: both jobs of a run at once (the reader merges files).
LIVE_MIX = (["teacher:teacher_sample"] * 8 + ["teacher:progress"] * 3 + ["teacher:teacher_stats", "teacher:teacher_retry", "teacher:log"]
            + ["train:train_step"] * 4 + ["train:progress", "train:train_eval"])
LIVE_MIX = [LIVE_MIX[i] for i in random.Random(0).sample(range(len(LIVE_MIX)), len(LIVE_MIX))]
TEACHER_MIX = ["teacher_sample"] * 8 + ["progress"] * 3 + ["teacher_stats", "teacher_retry", "log"]
TRAIN_MIX = ["train_step"] * 4 + ["progress", "train_eval"]
EVAL_MIX = ["eval_case"] * 4 + ["progress"]


def manifest(run_id: str, state: str, jobs: dict[str, str], gate: dict | None = None) -> dict[str, Any]:
    """manifest.json as engine/pipeline/runner.py writes it (docs/runs.md)."""
    entries = []
    for name, job_state in jobs.items():
        stage = "eval" if name.startswith("eval") else name
        done = job_state in ("succeeded", "failed", "cancelled")
        entries.append({"name": name, "stage": stage, "argv": [stage, "--run-dir", "RUN"], "fingerprint": "sha256:" + "0" * 16,
                        "state": job_state, "exit_code": 0 if done else None, "pgid": None,
                        "started_at": "2026-11-23T12:05:01Z" if job_state != "pending" else None,
                        "finished_at": "2026-11-23T13:05:01Z" if done else None, "skipped_reason": None,
                        "inputs": [], "outputs": []})
    return {"format": "po-tui-run/1", "run_id": run_id, "created_at": "2026-11-23T12:05:01Z", "config": "config.yaml",
            "config_sha256": "0" * 64, "state": state, "gate": gate, "jobs": entries}


def write_finished_run(run: Path, n_events: int, *, log_lines: int = 5000) -> dict[str, int]:
    """A finished run of exactly `n_events` events: teacher 60 %, train 30 %, eval the rest, gate 2."""
    run.mkdir(parents=True, exist_ok=True)
    gate_n = 2
    eval_n = max(3, n_events // 10)
    train_n = max(3, n_events * 3 // 10)
    teacher_n = n_events - gate_n - eval_n - train_n
    if teacher_n < 3:
        raise SystemExit("--open-events: at least 11 events")
    counts = {"teacher": teacher_n, "train": train_n, "eval": eval_n, "gate": gate_n}
    ts = T0
    mixes = {"teacher": TEACHER_MIX, "train": TRAIN_MIX, "eval": EVAL_MIX}
    for k, (job, n) in enumerate(counts.items()):
        lines = JobLines(job, job, seed=k)
        summaries = {"train": {"final_loss": 0.41}, "eval": {"valid_rate": 0.9, "mean": 0.8},
                     "gate": {"verdict": "pass", "gates": "seeds", "passed": 3, "criteria": 3, "ratio": 0.99,
                              "ratio_low": 0.95, "ratio_high": 1.03}}
        with open(run / f"{job}.events.jsonl", "w", encoding="utf-8") as fh:  # streamed: the parent stays small
            fh.write(lines.started(ts, None, "recorded-host"))
            mix = mixes.get(job, [])
            for i in range(n - 2):
                ts += 0.01
                fh.write(lines.event(mix[i % len(mix)], ts))
            ts += 0.01
            counted = {"teacher": {"records": lines.accepted}, "train": {"steps": lines.steps}, "eval": {"n": lines.cases}}
            fh.write(lines.finished(ts, {**counted.get(job, {}), **summaries.get(job, {})}))
        if job != "gate":
            (run / f"{job}.stdout.log").write_text("".join(lines.stdout_line(ts) for _ in range(log_lines)), encoding="utf-8")
    doc = manifest("20261123-120501-b3nc", "succeeded", {j: "succeeded" for j in counts},
                   gate={"verdict": "pass", "passed": 3, "criteria": 3})
    (run / "manifest.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return counts


# --------------------------------------------------------------------------------------------
# The writer process
# --------------------------------------------------------------------------------------------


def writer_main(run: Path, rate: float, seconds: float, counter_path: Path, log_every: int, tick_s: float = 0.005) -> dict:
    """Append LIVE_MIX events at `rate`/s for `seconds`, plain appends (one write per file per tick)."""
    import socket

    with open(counter_path, "r+b") as fh:
        counter = mmap.mmap(fh.fileno(), COUNTER.size)
    jobs = {"teacher": JobLines("teacher", "teacher", 1), "train": JobLines("train", "train", 2)}
    events = {job: open(run / f"{job}.events.jsonl", "ab", buffering=0) for job in jobs}
    logs = {job: open(run / f"{job}.stdout.log", "ab", buffering=0) for job in jobs}
    mix = [tuple(m.split(":")) for m in LIVE_MIX]
    written = log_written = 0
    host, pid = socket.gethostname(), os.getpid()
    for job, lines in jobs.items():
        events[job].write(lines.started(time.time(), pid, host).encode())
        written += 1
    COUNTER.pack_into(counter, 0, written, 0, 1)
    start = time.monotonic()
    total = written + int(rate * seconds)
    while True:
        elapsed = time.monotonic() - start
        target = min(total, 2 + int(rate * elapsed))
        n = target - written
        if n > 0:
            ts = time.time()
            out: dict[str, list[str]] = {job: [] for job in jobs}
            log_out: dict[str, list[str]] = {job: [] for job in jobs}
            for i in range(written, target):
                job, etype = mix[i % len(mix)]
                out[job].append(jobs[job].event(etype, ts))
                if log_every and i % log_every == 0:
                    log_job = "teacher" if (i // log_every) % 2 == 0 else "train"
                    log_out[log_job].append(jobs[log_job].stdout_line(ts))
            for job in jobs:
                if out[job]:
                    events[job].write("".join(out[job]).encode())
                if log_out[job]:
                    logs[job].write("".join(log_out[job]).encode())
                    log_written += len(log_out[job])
            written = target
            COUNTER.pack_into(counter, 0, written, log_written, 1)
        if written >= total and elapsed >= seconds:
            break
        time.sleep(tick_s)
    took = time.monotonic() - start
    COUNTER.pack_into(counter, 0, written, log_written, 2)
    for fh in (*events.values(), *logs.values()):
        fh.close()
    return {"written": written, "log_lines": log_written, "seconds": took, "rate": (written - 2) / took if took else 0.0}


# --------------------------------------------------------------------------------------------
# The instrumented app
# --------------------------------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec. (ru_maxrss does not: a child
    started by a parent that had grown bigger reports the parent's peak.)"""
    try:
        with open("/proc/self/status") as fh:
            for row in fh:
                if row.startswith("VmHWM:"):
                    return int(row.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


PING_KEY = "f12"  # bound by the bench subclass only: its action records the time and does nothing else


def bench_app_class():
    from textual.binding import Binding

    import po_tui.app
    from po_tui.app import CockpitApp

    class BenchApp(CockpitApp):
        """The real cockpit; only records when actions ran and when redraws drew and painted."""

        # a relative CSS_PATH is read from the defining class's folder: keep the cockpit's own
        CSS_PATH = str(Path(po_tui.app.__file__).parent / CockpitApp.CSS_PATH)
        BINDINGS = [Binding(PING_KEY, "bench_ping", "ping", show=False)]

        def __init__(self, run_dir: Path, expect: int | None = None) -> None:
            super().__init__(run_dir)
            self.expect = expect
            self.marks: dict[str, tuple[list[float], list[float]]] = {"ping": ([], []), "tab": ([], [])}  # handled, painted
            self.redraws: list[tuple[float, float, int]] = []  # (start, end, model.events) of redraws that drew
            self.all_drawn: tuple[float, float] | None = None  # (redraw end, painted) once model.events >= expect
            self._all_drawn_end = 0.0
            self.slices_posted = self.slices_folded = self.max_queued = 0  # feed slices not folded yet, at most

        def post_message(self, message) -> bool:
            if type(message).__name__ == "EventsBatch":  # from the feed worker's thread
                self.slices_posted += 1
                self.max_queued = max(self.max_queued, self.slices_posted - self.slices_folded)
            return super().post_message(message)

        def on_events_batch(self, message) -> None:  # runs before CockpitApp's own handler (Textual walks the MRO)
            self.slices_folded += 1

        def _mark(self, kind: str) -> None:
            handled, painted = self.marks[kind]
            handled.append(time.perf_counter())
            self.call_after_refresh(lambda: painted.append(time.perf_counter()))

        def action_bench_ping(self) -> None:
            self._mark("ping")

        def action_show_tab(self, tab: str) -> None:
            self._mark("tab")
            super().action_show_tab(tab)

        def _redraw(self) -> None:
            dirty = self._dirty
            start = time.perf_counter()
            super()._redraw()
            if not dirty:
                return
            end = time.perf_counter()
            events = self.model.events
            self.redraws.append((start, end, events))
            if self.expect is not None and events >= self.expect and not self._all_drawn_end:
                self._all_drawn_end = end
                self.call_after_refresh(lambda: setattr(self, "all_drawn", (self._all_drawn_end, time.perf_counter())))

    return BenchApp


class StallMeter:
    """How late a 10 ms sleep on the event loop wakes up: the longest the loop was held."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.stop = False

    async def run(self) -> None:
        import asyncio

        while not self.stop:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.perf_counter() - t - 0.01)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


async def measure_open(run: Path, n_events: int, size: tuple[int, int], timeout: float, trace: bool = False) -> dict:
    """Open a finished run; with `trace`, tracemalloc runs too (its times are slower: memory only)."""
    import asyncio
    import tracemalloc

    BenchApp = bench_app_class()
    gc.collect()
    base = rss_mib()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    app = BenchApp(run, expect=n_events)
    stall = StallMeter()
    async with app.run_test(size=size) as pilot:
        stall_task = asyncio.create_task(stall.run())
        while app.all_drawn is None:
            if time.perf_counter() - t0 > timeout:
                break
            await asyncio.sleep(0.005)
        peak = peak_rss_mib() - base  # before the app shuts down
        stall.stop = True
        await stall_task
        await pilot.pause(0.3)  # other messages replace the last slice's in Textual's active_message
        folded = app.model.events
        done = app.all_drawn
        screen = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        gc.collect()
        retained = rss_mib() - base  # while the app still shows the run
        traced = tracemalloc.get_traced_memory() if trace else (float("nan"), float("nan"))
    tracemalloc.stop()
    return {
        "events": n_events,
        "folded": folded,
        "open_s": (done[1] - t0) if done else float("nan"),
        "drawn_s": (done[0] - t0) if done else float("nan"),
        "first_redraw_s": app.redraws[0][1] - t0 if app.redraws else float("nan"),
        "redraws": len(app.redraws),
        "slices": app.slices_posted,
        "max_queued_slices": app.max_queued,
        "max_stall_ms": stall.worst * 1000,
        "rss_before_mib": base,
        "peak_rss_growth_mib": peak,
        "peak_rss_growth_at_exit_mib": peak_rss_mib() - base,
        "retained_rss_growth_mib": retained,
        "traced_retained_mib": traced[0] / 2**20,
        "traced_peak_mib": traced[1] / 2**20,
        "model_sizes": {"loss": len(app.model.loss), "eval_loss": len(app.model.eval_loss),
                        "retries": len(app.model.retries), "log_lines": sum(len(r) for r in app.model.logs.values())},
        "screen_has_gate": "gate" in screen,
    }


async def measure_ingest(run: Path, rate: float, seconds: float, size: tuple[int, int], press_ms: float,
                         tab_every: int, log_every: int, workdir: Path) -> dict:
    import asyncio

    from textual import events as tevents

    BenchApp = bench_app_class()
    counter_path = workdir / f"counter-{int(rate)}"
    counter_path.write_bytes(b"\0" * COUNTER.size)
    with open(counter_path, "r+b") as fh:
        counter = mmap.mmap(fh.fileno(), COUNTER.size)
    app = BenchApp(run)
    stall = StallMeter()
    presses: dict[str, list[float]] = {"ping": [], "tab": []}
    stop_pressing = threading.Event()

    def presser() -> None:
        """A ping every press_ms; every tab_every-th press is a tab switch (1..6 in turn) instead."""
        driver = app._driver
        i = tab = 0
        next_at = time.perf_counter()
        while not stop_pressing.is_set():
            if tab_every and i % tab_every == tab_every - 1:
                key, kind, char = "123456"[tab % 6], "tab", "123456"[tab % 6]
                tab += 1
            else:
                key, kind, char = PING_KEY, "ping", None
            event = tevents.Key(key, char)
            event.set_sender(app)
            presses[kind].append(time.perf_counter())
            driver.send_message(event)  # what the terminal driver's input thread does
            i += 1
            next_at += press_ms / 1000
            time.sleep(max(0.0, next_at - time.perf_counter()))

    async with app.run_test(size=size) as pilot:
        deadline = time.perf_counter() + 30
        while not app.redraws:  # mounted and drawn once (the run dir holds only its manifest)
            if time.perf_counter() > deadline:
                raise SystemExit("the app did not start")
            await asyncio.sleep(0.01)
        await pilot.pause(0.3)
        writer = subprocess.Popen(
            [sys.executable, __file__, "--child", "writer", "--run", str(run), "--rate", str(rate), "--seconds", str(seconds),
             "--counter", str(counter_path), "--log-every", str(log_every)],
            stdout=subprocess.PIPE, text=True)
        while COUNTER.unpack_from(counter)[2] == 0:
            if writer.poll() is not None:
                raise SystemExit(f"the writer exited with {writer.returncode}")
            await asyncio.sleep(0.005)
        stall_task = asyncio.create_task(stall.run())
        t_start = time.perf_counter()
        thread = threading.Thread(target=presser, daemon=True)
        thread.start()
        samples: list[tuple[float, int, int]] = []  # (t, model.events, written)
        while True:
            written, _, state = COUNTER.unpack_from(counter)
            samples.append((time.perf_counter(), app.model.events, written))
            if state == 2:
                break
            await asyncio.sleep(0.05)
        t_writer_done = samples[-1][0]
        stop_pressing.set()
        thread.join()
        written_total, log_total, _ = COUNTER.unpack_from(counter)
        backlog_at_stop = written_total - app.model.events
        while app.model.events < written_total and time.perf_counter() - t_writer_done < 30:
            await asyncio.sleep(0.01)
        drain_s = time.perf_counter() - t_writer_done
        t_presses_done = time.perf_counter()
        while (any(len(app.marks[k][1]) < len(presses[k]) for k in presses)
               and time.perf_counter() - t_presses_done < 5):
            await asyncio.sleep(0.01)
        await pilot.pause(0.2)
        stall.stop = True
        await stall_task
        t_end = time.perf_counter()
        folded = app.model.events
        logs_panel = app.query_one("#logs-panel")
        # log lines RichLog holds back until the Logs tab has been shown once (Textual internals)
        logs_deferred = len(getattr(logs_panel, "_deferred_renders", ()))
    out = writer.communicate(timeout=30)[0]
    wrote = json.loads(out.strip().splitlines()[-1])
    lat: dict[str, list[float]] = {}
    for kind, pressed in presses.items():
        handled, painted = app.marks[kind]
        # presses are handled in order; one never handled counts as waiting until the end
        lat[f"{kind}_handler"] = [h - p for p, h in zip(pressed, handled, strict=False)] + [t_end - p for p in pressed[len(handled):]]
        lat[f"{kind}_paint"] = [h - p for p, h in zip(pressed, painted, strict=False)] + [t_end - p for p in pressed[len(painted):]]
    lat["key_handler"] = lat["ping_handler"] + lat["tab_handler"]  # every press: the pass/fail number
    warm_s = 1.0 if seconds >= 3 else seconds / 4
    warm = [s for s in samples if s[0] - t_start >= warm_s] or samples
    first, last = warm[0], warm[-1]
    ingested = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else float("nan")
    lag_s = backlog_at_stop / rate if rate else 0.0
    stats = {}
    for name, values in lat.items():
        stats[f"{name}_p50_ms"] = pct(values, 0.50) * 1000
        stats[f"{name}_p95_ms"] = pct(values, 0.95) * 1000
        stats[f"{name}_max_ms"] = max(values) * 1000 if values else float("nan")
    return {
        "rate": rate,
        "seconds": seconds,
        "written": written_total,
        "written_per_s": wrote["rate"],
        "log_lines_per_s": log_total / wrote["seconds"] if wrote["seconds"] else 0.0,
        "ingested_per_s": ingested,
        "folded": folded,
        "max_backlog": max(s[2] - s[1] for s in samples),
        "backlog_at_stop": backlog_at_stop,
        "lag_at_stop_s": lag_s,
        "drain_s": drain_s,
        "presses": {k: len(v) for k, v in presses.items()},
        "handled": {k: len(app.marks[k][0]) for k in presses},
        **stats,
        "max_stall_ms": stall.worst * 1000,
        "max_queued_slices": app.max_queued,
        "peak_rss_mib": peak_rss_mib(),
        "logs_deferred": logs_deferred,
        "kept_up": bool((not rate or ingested >= 0.95 * rate) and lag_s <= 1.0 and folded == written_total),
    }


# --------------------------------------------------------------------------------------------
# Orchestration: each case in its own process
# --------------------------------------------------------------------------------------------


def run_child(args: argparse.Namespace, name: str, *extra: str) -> dict:
    cmd = [sys.executable, __file__, *extra, "--size", args.size, "--press-ms", str(args.press_ms), "--tab-every", str(args.tab_every),
           "--timeout", str(args.timeout)]
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        cmd += ["--profile", str(Path(args.profile) / f"{name}.prof")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(extra)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(value: float, spec: str = "{:,.0f}") -> str:
    return "–" if not isinstance(value, (int, float)) or not math.isfinite(value) else spec.format(value)


def ingest_table(rows: list[dict], latency_ms: float) -> str:
    ms = "{:.0f}"
    lines = [
        "| target ev/s | written ev/s | ingested ev/s | log lines/s | max backlog | lag at stop s | drain s | keys | "
        "key -> handler p50 / p95 / max ms | tab key -> painted p50 / p95 / max ms | max loop stall ms | kept up | "
        f"p95 < {latency_ms:g} ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {fmt(r['rate'])} | {fmt(r['written_per_s'])} | {fmt(r['ingested_per_s'])} | {fmt(r['log_lines_per_s'])} | "
            f"{fmt(r['max_backlog'])} | {fmt(r['lag_at_stop_s'], '{:.2f}')} | {fmt(r['drain_s'], '{:.2f}')} | "
            f"{sum(r['presses'].values())} | "
            f"{fmt(r['key_handler_p50_ms'], ms)} / {fmt(r['key_handler_p95_ms'], ms)} / {fmt(r['key_handler_max_ms'], ms)} | "
            f"{fmt(r['tab_paint_p50_ms'], ms)} / {fmt(r['tab_paint_p95_ms'], ms)} / {fmt(r['tab_paint_max_ms'], ms)} | "
            f"{fmt(r['max_stall_ms'], ms)} | {'yes' if r['kept_up'] else 'NO'} | "
            f"{'yes' if r['key_handler_p95_ms'] < latency_ms else 'NO'} |")
    return "\n".join(lines)


def open_table(rows: list[dict]) -> str:
    lines = [
        "| events | folded | first redraw s | all drawn s | open (painted) s | redraws | slices (most queued) | max loop stall ms | "
        "RSS before MiB | peak RSS growth MiB | RSS growth, open MiB | traced peak MiB | traced live, open MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mib = "{:.1f}"
        lines.append(
            f"| {fmt(r['events'])} | {fmt(r['folded'])} | {fmt(r['first_redraw_s'], '{:.2f}')} | {fmt(r['drawn_s'], '{:.2f}')} | "
            f"{fmt(r['open_s'], '{:.2f}')} | {r['redraws']} | {r['slices']} ({r['max_queued_slices']}) | "
            f"{fmt(r['max_stall_ms'], '{:.0f}')} | {fmt(r['rss_before_mib'], '{:.0f}')} | "
            f"{fmt(r['peak_rss_growth_mib'], mib)} | {fmt(r['retained_rss_growth_mib'], mib)} | "
            f"{fmt(r.get('traced_peak_mib'), mib)} | {fmt(r.get('traced_retained_mib'), mib)} |")
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="*", default=[0, 1000, 2000, 5000, 10000, 20000, 50000],
                    help="events/s the writer appends, one app per rate; 0: keys only, the baseline (none: skip the ingest part)")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long the writer writes at each rate")
    ap.add_argument("--open-events", type=int, nargs="*", default=[10000, 100000],
                    help="sizes of the finished runs to open (none: skip the open part)")
    ap.add_argument("--size", default="120x40", help="terminal size, COLSxROWS")
    ap.add_argument("--press-ms", type=float, default=50.0, help="a key press every this many ms")
    ap.add_argument("--tab-every", type=int, default=10, help="every n-th press switches tab (1..6); the others ping")
    ap.add_argument("--latency-ms", type=float, default=100.0, help="the p95 input latency a sustained rate must stay under")
    ap.add_argument("--log-every", type=int, nargs="+", default=[20],
                    help="a stdout log line every this many events (0: none); several values: every rate for each")
    ap.add_argument("--no-trace-memory", dest="trace_memory", action="store_false",
                    help="skip the second, tracemalloc'ed open of each run (live and peak Python memory)")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up opening a run after this many seconds")
    ap.add_argument("--workdir", help="keep the run directories here (default: a temporary directory, removed)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--profile", metavar="DIR", help="write a cProfile of each case's event-loop thread into DIR")
    ap.add_argument("--child", choices=("open", "ingest", "writer"), help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--events", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--counter", help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "writer":
        print(json.dumps(writer_main(Path(args.run), args.rate, args.seconds, Path(args.counter), args.log_every[0])))
        return
    if args.child and args.profile:  # the event loop's thread only (the feed worker is another thread)
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    if args.child == "open":
        import asyncio

        import po_tui.app  # noqa: F401  (imports are not part of the open time)

        print(json.dumps(asyncio.run(measure_open(Path(args.run), args.events, parse_size(args.size), args.timeout,
                                                  trace=args.trace))))
        if args.profile:
            profiler.disable()
            profiler.dump_stats(args.profile)
        return
    if args.child == "ingest":
        import asyncio

        import po_tui.app  # noqa: F401

        run = Path(args.run)
        print(json.dumps(asyncio.run(measure_ingest(run, args.rate, args.seconds, parse_size(args.size), args.press_ms,
                                                    args.tab_every, args.log_every[0], run.parent))))
        if args.profile:
            profiler.disable()
            profiler.dump_stats(args.profile)
        return

    import shutil

    import textual

    tmp = None if args.workdir else tempfile.mkdtemp(prefix="po-bench-tui-")
    work = Path(args.workdir or tmp)
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"hardware": f"{os.cpu_count()} cores", "python": sys.version.split()[0],
                               "textual": textual.__version__, "size": args.size, "ingest": [], "open": []}
    try:
        for log_every in args.log_every:
            for rate in sorted(args.rates):
                run = work / f"live-{int(rate)}-{log_every}"
                if run.exists():
                    shutil.rmtree(run)
                run.mkdir(parents=True)
                (run / "manifest.json").write_text(json.dumps(manifest("20261123-120501-l1ve", "running",
                                                                       {"teacher": "running", "train": "running"}), indent=2))
                row = run_child(args, f"ingest-{int(rate)}-log{log_every}", "--child", "ingest", "--run", str(run),
                                "--rate", str(rate), "--seconds", str(args.seconds),
                                "--log-every", str(log_every))
                row["log_every"] = log_every
                results["ingest"].append(row)
                print(f"{rate:,.0f} ev/s, a log line every {log_every}: ingested {row['ingested_per_s']:,.0f}/s, "
                      f"key p95 {row['key_handler_p95_ms']:.1f} ms, kept up: {row['kept_up']}", file=sys.stderr)
        for n in args.open_events:
            run = work / f"finished-{n}"
            if not (run / "manifest.json").exists():
                write_finished_run(run, n)
            row = run_child(args, f"open-{n}", "--child", "open", "--run", str(run), "--events", str(n))
            if args.trace_memory:
                traced = run_child(args, f"open-{n}-traced", "--child", "open", "--run", str(run), "--events", str(n), "--trace")
                row.update({k: traced[k] for k in ("traced_retained_mib", "traced_peak_mib")})
            results["open"].append(row)
            print(f"open {n:,} events: {row['open_s']:.2f} s, peak RSS +{row['peak_rss_growth_mib']:.1f} MiB", file=sys.stderr)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    # The highest rate of an unbroken run of passes from the lowest: a noisy pass above a failure does not count.
    results["sustained"] = []
    for log_every in args.log_every:
        best = None
        for r in (r for r in results["ingest"] if r["log_every"] == log_every):
            if not (r["kept_up"] and r["key_handler_p95_ms"] < args.latency_ms):
                break
            best = r["rate"]
        results["sustained"].append({"log_every": log_every, "rate": best})
    print(f"CockpitApp headless {args.size}, {results['hardware']}, Python {results['python']}, textual {results['textual']}; "
          f"writer {args.seconds:g} s per rate, a key every {args.press_ms:g} ms (every {args.tab_every}th a tab switch)\n")
    for log_every in args.log_every if results["ingest"] else ():
        rows = [r for r in results["ingest"] if r["log_every"] == log_every]
        print(f"a stdout log line every {log_every} events:" if log_every else "no stdout log lines:")
        print(ingest_table(rows, args.latency_ms))
        best = next(s["rate"] for s in results["sustained"] if s["log_every"] == log_every)
        print(f"\nhighest rate sustained (kept up, key p95 < {args.latency_ms:g} ms): "
              + (f"{best:,.0f} events/s" if best is not None else "none") + "\n")
    if results["open"]:
        print(open_table(results["open"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
