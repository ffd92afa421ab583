"""GPU health: the NVML sampler (with a fake NVML: no GPU anywhere), its `gpu` events, their
fold, `po-tui status`'s GPU lines at 80 columns and the cockpit's GPU strip."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.cli import main
from engine.errors import InputError
from engine.pipeline.config import parse_config
from engine.runlog import RunState, read_events
from engine.runlog.events import EventWriter, events_path
from engine.runlog.gpu import HISTORY, latest_gpu
from engine.runlog.gpu_sampler import GPU_ENV, WARNING_CODE, GpuSampler, gpu_sampling, interval_from_env, jobs_environment
from engine.runlog.job import job_events
from po_tui.app import CockpitApp
from tests.test_status import Log
from tests.test_tui import screen_text, until

GIB = 1 << 30


class FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeNvml:
    """What the sampler uses of pynvml, over made-up devices; `fail_on_sample` makes the Nth
    utilisation read raise (a GPU fallen off the bus), `no_power` answers NOT_SUPPORTED."""

    NVML_TEMPERATURE_GPU = 0
    NVML_ERROR_NOT_SUPPORTED = 3

    def __init__(self, devices: int = 2, *, init_error: bool = False, fail_on_sample: int | None = None,
                 no_power: bool = False) -> None:
        self.devices, self.init_error, self.fail_on_sample, self.no_power = devices, init_error, fail_on_sample, no_power
        self.calls: list[str] = []
        self.reads = 0

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error:
            raise FakeNvmlError(12)  # NVML_ERROR_LIBRARY_NOT_FOUND

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return self.devices

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"Fake H100 80GB" if h == 0 else "Fake L4"

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        if h == 0:
            self.reads += 1
            if self.fail_on_sample is not None and self.reads >= self.fail_on_sample:
                raise FakeNvmlError(15)  # NVML_ERROR_GPU_IS_LOST
        return SimpleNamespace(gpu=87 if h == 0 else 5, memory=40)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(used=int(31.2 * GIB), total=80 * GIB, free=int(48.8 * GIB))

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 64

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        if self.no_power:
            raise FakeNvmlError(self.NVML_ERROR_NOT_SUPPORTED)
        return 250_300  # milliwatts

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        if self.no_power:
            raise FakeNvmlError(self.NVML_ERROR_NOT_SUPPORTED)
        return 350_000


class FakeWait:
    """The sampler's sleep: records each wait and says "stop" after `samples` samples."""

    def __init__(self, samples: int) -> None:
        self.samples, self.waits = samples, []

    def __call__(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return len(self.waits) >= self.samples


class Clock:
    def __init__(self, t: float = 1_763_900_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def _types(path: Path) -> list[str]:
    return [e["type"] for e in read_events(path)]


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "po-tui-gpu-sampler"]


def test_sampler_writes_one_gpu_event_per_interval_with_every_device(tmp_path):
    nvml, wait = FakeNvml(), FakeWait(samples=3)
    path = events_path(tmp_path, "train")
    with EventWriter(path, "train", clock=Clock(), fsync=False) as writer:
        sampler = GpuSampler(writer, 5, nvml=nvml, wait=wait)
        assert sampler.start()
        sampler.stop()
        assert not sampler.running
    events = read_events(path)
    assert [e["type"] for e in events] == ["gpu"] * 3
    assert wait.waits == [5.0, 5.0, 5.0]  # slept the interval between samples
    assert [e["seq"] for e in events] == [0, 1, 2]
    first = events[0]["data"]
    assert first["interval_s"] == 5.0
    assert first["devices"] == [
        {"index": 0, "name": "Fake H100 80GB", "util_pct": 87, "mem_used_bytes": int(31.2 * GIB), "mem_total_bytes": 80 * GIB,
         "temp_c": 64, "power_w": 250.3, "power_limit_w": 350.0},
        {"index": 1, "name": "Fake L4", "util_pct": 5, "mem_used_bytes": int(31.2 * GIB), "mem_total_bytes": 80 * GIB,
         "temp_c": 64, "power_w": 250.3, "power_limit_w": 350.0},
    ]
    assert nvml.calls == ["init", "shutdown"]


def test_stop_interrupts_the_wait_and_the_first_sample_is_taken_at_once(tmp_path):
    path = events_path(tmp_path, "eval")
    with EventWriter(path, "eval", fsync=False) as writer:
        sampler = GpuSampler(writer, 3600, nvml=FakeNvml(devices=1))
        assert sampler.start()
        began = time.monotonic()
        sampler.stop()
        assert time.monotonic() - began < 4.0 and not sampler.running
    assert _types(path) == ["gpu"]


class CountFails(FakeNvml):
    def nvmlDeviceGetCount(self) -> int:
        raise FakeNvmlError(999)  # NVML_ERROR_UNKNOWN


@pytest.mark.parametrize("nvml", [None, FakeNvml(init_error=True), FakeNvml(devices=0), CountFails(), FakeNvml(fail_on_sample=1)],
                         ids=["no-pynvml", "no-driver", "no-device", "count-fails", "first-read-fails"])
def test_without_nvml_or_gpus_no_thread_no_event_no_exception(tmp_path, monkeypatch, nvml):
    import engine.runlog.gpu_sampler as gs

    monkeypatch.setattr(gs, "load_nvml", lambda: nvml)
    path = events_path(tmp_path, "teacher")
    before = threading.active_count()
    with EventWriter(path, "teacher", fsync=False) as writer:
        sampler = GpuSampler(writer, 0.1, nvml=None)
        assert sampler.start() is False
        assert not sampler.running and _sampler_threads() == []
        with gpu_sampling(writer, 0.1) as running:
            assert running is None
            assert threading.active_count() == before
        writer.log("done")
    assert _types(path) == ["log"]
    if isinstance(nvml, FakeNvml) and not nvml.init_error:
        assert nvml.calls == ["init", "shutdown"] * 2  # opened for the check, closed again (twice: two checks)


def test_an_nvml_error_mid_run_stops_sampling_with_one_warning(tmp_path):
    nvml = FakeNvml(fail_on_sample=3)
    path = events_path(tmp_path, "train")
    with EventWriter(path, "train", clock=Clock(), fsync=False) as writer:
        sampler = GpuSampler(writer, 5, nvml=nvml, wait=FakeWait(samples=100))
        assert sampler.start()
        sampler.stop()  # its wait never says stop: it ended on its own when the third read raised
        assert not sampler.running
        writer.log("the job goes on")
    events = read_events(path)
    assert [e["type"] for e in events] == ["gpu", "gpu", "warning", "log"]
    warning = events[2]["data"]
    assert warning["code"] == WARNING_CODE and "FakeNvmlError" in warning["message"]
    assert sampler.stopped_by is not None and nvml.calls == ["init", "shutdown"]


def test_a_field_the_board_does_not_support_is_null_and_sampling_goes_on(tmp_path):
    path = events_path(tmp_path, "train")
    with EventWriter(path, "train", clock=Clock(), fsync=False) as writer:
        sampler = GpuSampler(writer, 5, nvml=FakeNvml(devices=1, no_power=True), wait=FakeWait(samples=2))
        assert sampler.start()
        sampler.stop()
    events = read_events(path)
    assert [e["type"] for e in events] == ["gpu", "gpu"]
    assert events[0]["data"]["devices"][0]["power_w"] is None and events[0]["data"]["devices"][0]["util_pct"] == 87


def test_job_events_samples_under_the_engine_only_and_stops_before_job_finished(tmp_path, monkeypatch):
    import engine.runlog.gpu_sampler as gs

    monkeypatch.setattr(gs, "load_nvml", lambda: FakeNvml(devices=1))
    args = argparse.Namespace(run_dir=str(tmp_path), job="eval-student")
    monkeypatch.setenv(GPU_ENV, "0")  # what a stage run by hand, or the test suite, gets
    with job_events(args, "eval"):
        assert _sampler_threads() == []
    monkeypatch.setenv(GPU_ENV, "60")  # what the engine gives its jobs
    with job_events(args, "eval") as writer:
        assert len(_sampler_threads()) == 1
        writer.log("working")
    assert _sampler_threads() == []
    types = _types(events_path(tmp_path, "eval-student"))
    assert types[:2] == ["job_started", "job_finished"]
    second = types[2:]
    assert second[0] == "job_started" and second[-1] == "job_finished"
    assert second.count("gpu") == 1 and "log" in second  # sampled at once; nothing after job_finished


def test_the_engine_gives_its_jobs_the_configured_interval_and_refuses_a_bad_one(tmp_path):
    assert jobs_environment(5.0, {})[GPU_ENV] == "5"
    assert jobs_environment(2.5, {GPU_ENV: "0"})[GPU_ENV] == "0"  # the engine's environment wins
    with pytest.raises(InputError) as err:
        jobs_environment(5.0, {GPU_ENV: "fast"})
    assert err.value.field == GPU_ENV and "'fast'" in str(err.value)
    with pytest.raises(InputError):
        jobs_environment(5.0, {GPU_ENV: "-1"})
    assert interval_from_env({GPU_ENV: "5"}) == 5.0
    assert interval_from_env({}) is None and interval_from_env({GPU_ENV: "0"}) is None and interval_from_env({GPU_ENV: "x"}) is None
    assert parse_config({"monitor": {"gpu_sample_s": 2}}).monitor.gpu_sample_s == 2
    assert parse_config({}).monitor.gpu_sample_s == 5.0
    with pytest.raises(InputError) as err:
        parse_config({"monitor": {"gpu_sample_s": -1}}, path="po-tui.yaml", lines={("monitor", "gpu_sample_s"): 3})
    assert "monitor.gpu_sample_s" in str(err.value)


# -- fold, status, cockpit -----------------------------------------------------------------------

def _device(index: int, util: int, **over) -> dict:
    return {"index": index, "name": f"Fake H100 80GB HBM3 number {index}", "util_pct": util, "mem_used_bytes": int(31.2 * GIB),
            "mem_total_bytes": 80 * GIB, "temp_c": 64, "power_w": 250.0, "power_limit_w": 350.0, **over}


def _gpu_run(run: Path, t0: float, utils: list[int]) -> Log:
    log = Log(run, "train", t0).start("train")
    for util in utils:
        log("gpu", interval_s=5.0, devices=[_device(0, util), _device(1, 3, power_w=None, temp_c=None)])
    return log


def test_the_fold_keeps_the_latest_sample_and_a_short_history():
    run = RunState()
    t = 1_763_900_000.0
    for seq in range(HISTORY + 10):
        run.apply({"v": 1, "ts": t + seq, "seq": seq, "job": "train", "type": "gpu",
                   "data": {"interval_s": 5, "devices": [_device(0, seq % 100), {"index": "bad"}, _device(1, 1, util_pct="NaN")]}})
    gpu = latest_gpu(run, now=t + HISTORY + 10)
    assert gpu["job"] == "train" and not gpu["stale"] and gpu["age_s"] == 1.0
    first, second = gpu["devices"]
    assert first["util_pct"] == (HISTORY + 9) % 100 and len(first["util_history"]) == HISTORY
    assert second["util_pct"] is None and second["util_history"] == []  # a damaged field is unknown, not a number
    assert latest_gpu(run, now=t + HISTORY + 9 + 15.1)["stale"]  # three intervals without a sample
    run.apply({"v": 1, "ts": t, "seq": 10_000, "job": "train", "type": "gpu", "data": {"devices": "x"}})
    assert run.jobs["train"].bad_events == 1


def _status(capsys, monkeypatch, run: Path, columns: int = 80) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["status", str(run)]) == 0
    return capsys.readouterr().out


def test_status_shows_one_line_per_gpu_within_80_columns(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    _gpu_run(run, time.time() - 4, [10, 50, 87])
    out = _status(capsys, monkeypatch, run)
    lines = out.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), out
    gpu0 = next(line for line in lines if line.startswith("GPU0"))
    gpu1 = next(line for line in lines if line.startswith("GPU1"))
    assert "87%  31.2/80.0 GiB  64C  250/350W" in gpu0, out
    assert "▁▅▇" in gpu0  # the utilisation history (10, 50, 87 %)
    assert "3%  31.2/80.0 GiB  Fake H100" in gpu1  # temperature and power unknown on this one: left out
    assert main(["status", str(run), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gpu"]["stale"] is False and [d["util_pct"] for d in doc["gpu"]["devices"]] == [87, 3]


def test_status_shows_an_old_sample_as_stale_not_as_live_numbers(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    _gpu_run(run, time.time() - 600, [87]).finish()
    out = _status(capsys, monkeypatch, run)
    gpu0 = next(line for line in out.splitlines() if line.startswith("GPU0"))
    assert "stale" in gpu0 and "87%" not in gpu0 and "GiB" not in gpu0, out


def test_status_shows_the_newest_sample_of_any_job_and_a_device_name_literally(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    t = time.time()
    Log(run, "train", t - 300).start("train")("gpu", interval_s=5.0, devices=[_device(0, 99)]).finish()
    hostile = "[bold red]GPU\x1b[31m\x07 name"
    Log(run, "eval-student", t - 3).start("eval")("gpu", interval_s=5.0, devices=[_device(0, 12, name=hostile)])
    out = _status(capsys, monkeypatch, run, columns=120)
    gpu0 = [line for line in out.splitlines() if line.startswith("GPU0")]
    assert len(gpu0) == 1 and "12%" in gpu0[0] and "99%" not in out, out
    assert "[bold red]GPU" in gpu0[0] and "\x1b" not in out and "\x07" not in out


def test_status_without_gpu_events_has_no_gpu_line(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    Log(run, "train", time.time() - 5).start("train")("progress", done=1, total=4, unit="steps")
    assert "GPU" not in _status(capsys, monkeypatch, run)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_the_cockpit_shows_the_gpu_strip_from_events_and_turns_it_stale(tmp_path, size):
    run = tmp_path / "run"
    t0 = 1_763_900_000.0
    _gpu_run(run, t0, [20, 87])
    now = [t0 + 4]
    app = CockpitApp(run, poll_s=0.05, clock=lambda: now[0])
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: "GPU0" in screen_text(app))
        text = screen_text(app)
        assert "87%  31.2/80.0 GiB  64C  250/350W" in text and "GPU1" in text, text
        now[0] = t0 + 60  # no sample since: the tick redraws it as stale
        await until(pilot, lambda: "stale" in screen_text(app))
        assert "87%" not in screen_text(app)


async def test_the_cockpit_without_gpu_events_shows_no_strip(tmp_path):
    run = tmp_path / "run"
    Log(run, "train", 1_763_900_000.0).start("train")("progress", done=1, total=4, unit="steps")
    app = CockpitApp(run, poll_s=0.05, clock=lambda: 1_763_900_010.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "1/4" in screen_text(app))
        await pilot.pause(0.2)
        assert "GPU0" not in screen_text(app) and not app.gpu.display


# -- in real processes: the engine hands its jobs the interval, a job samples a (fake) pynvml -------

FAKE_PYNVML = '''
"""A stand-in pynvml for a test subprocess: one device, fixed readings."""
from types import SimpleNamespace
NVML_TEMPERATURE_GPU = 0
NVML_ERROR_NOT_SUPPORTED = 3
def nvmlInit(): pass
def nvmlShutdown(): pass
def nvmlDeviceGetCount(): return 1
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetName(h): return "Fake GPU"
def nvmlDeviceGetUtilizationRates(h): return SimpleNamespace(gpu=42, memory=1)
def nvmlDeviceGetMemoryInfo(h): return SimpleNamespace(used=1 << 30, total=16 << 30, free=15 << 30)
def nvmlDeviceGetTemperature(h, sensor): return 50
def nvmlDeviceGetPowerUsage(h): return 70000
def nvmlDeviceGetEnforcedPowerLimit(h): return 72000
'''


def test_a_stage_process_under_the_engine_variable_writes_gpu_events(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "pynvml.py").write_text(FAKE_PYNVML)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), *filter(None, [os.environ.get("PYTHONPATH")])]), GPU_ENV: "0.2"}
    done = subprocess.run([sys.executable, "-m", "engine", "concepts", "--count", "3", "-o", str(run / "c.jsonl"), "--run-dir",
                           str(run), "--job", "concepts"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    events = read_events(run / "concepts.events.jsonl")
    types = [e["type"] for e in events]
    assert types[0] == "job_started" and types[-1] == "job_finished" and "gpu" in types
    gpu = next(e for e in events if e["type"] == "gpu")["data"]
    assert gpu["interval_s"] == 0.2 and gpu["devices"][0]["name"] == "Fake GPU" and gpu["devices"][0]["power_w"] == 70.0


def test_the_engine_starts_its_jobs_with_the_configured_interval_and_refuses_a_bad_variable(tmp_path, monkeypatch):
    import asyncio

    from engine.pipeline.runner import Engine, create_run

    seen = tmp_path / "seen.txt"
    recorder = tmp_path / "python.sh"  # stands in for the job's python: records what it was given, fails
    recorder.write_text(f'#!/bin/sh\necho "$PO_TUI_GPU_SAMPLE_S" >> "{seen}"\nexit 3\n')
    recorder.chmod(0o755)
    config = parse_config({"monitor": {"gpu_sample_s": 2.5}})
    run_dir = create_run(tmp_path / "run", config)
    monkeypatch.delenv(GPU_ENV, raising=False)
    assert asyncio.run(Engine(run_dir, config, python=str(recorder)).run()) == "failed"
    assert seen.read_text().split() == ["2.5"]
    monkeypatch.setenv(GPU_ENV, "soon")
    with pytest.raises(InputError) as err:
        Engine(run_dir, config, resume=True, retry_failed=True)
    assert err.value.field == GPU_ENV


@pytest.mark.parametrize("value", ["fast", "-5", "nan"])
def test_po_tui_run_with_a_bad_variable_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch, value):
    config = tmp_path / "po-tui.yaml"
    config.write_text("monitor:\n  gpu_sample_s: 5\n")
    monkeypatch.setenv(GPU_ENV, value)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["run", str(config), "--headless", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and GPU_ENV in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run directory


def test_starting_a_run_from_the_cockpit_refuses_a_bad_variable_before_creating_it(tmp_path, monkeypatch):
    from engine.pipeline.launch import start_run

    config = tmp_path / "po-tui.yaml"
    config.write_text("monitor:\n  gpu_sample_s: 0\n")
    monkeypatch.setenv(GPU_ENV, "often")
    with pytest.raises(InputError):
        start_run(config, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_no_thread_to_be_had_costs_the_job_nothing(tmp_path, monkeypatch):
    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    nvml = FakeNvml(devices=1)
    path = events_path(tmp_path, "train")
    with EventWriter(path, "train", fsync=False) as writer:
        with gpu_sampling(writer, 5, nvml=nvml) as sampler:
            assert sampler is None
    assert _types(path) == [] and nvml.calls == ["init", "shutdown"]
