"""The Pipeline tab as the overview: ETA values that fit at 80 columns, headline numbers, the loss
sparkline, the gate as it forms, the cause of a failure above the fold, two columns when wide."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from engine.core.timefmt import duration
from engine.runlog.events import events_path
from po_tui.app import CockpitApp
from po_tui.widgets.overview import LossLine, StagesView
from tests.eval_files import scored_cases, write_results
from tests.test_tui import screen_text, until
from tests.tui_run import T0, Recorder, eval_and_gate, teacher_events, train_events, write_manifest

# The whole plan of a real run, so the failure's cause has to share 80x24 with ten stages.
PLAN = ("concepts", "teacher", "prep", "tiny-model", "train", "eval-teacher", "eval-baseline", "eval-student", "gate", "report")
TRAIN_NOW = T0 + 150.0  # the clock of the live run: just after its last progress events


def _manifest(run: Path, states: dict[str, str], jobs: tuple[str, ...], state: str) -> None:
    plan = [{"name": j, "stage": "eval" if j.startswith("eval") else j, "state": states.get(j, "pending"),
             "argv": ["gate", "b.json", "s.json", "--preset", "seeds"] if j == "gate" else [j]} for j in jobs]
    doc = {"format": "po-tui-run/1", "run_id": "20251123-090000-live", "state": state, "gate": None, "jobs": plan}
    (run / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")


def live_run(run: Path, t0: float = T0) -> Path:
    """The teacher done; train and a long eval running, each with an ETA in hours (the widest value).

    `t0`: when the run started (the real cockpit's clock is the wall clock: a run of now)."""
    run.mkdir(parents=True)
    teacher_events(run)
    ev = Recorder(events_path(run, "train"), "train", t0 + 100)
    ev.started("train")
    for step in range(1, 7):
        ev.emit("train_step", step=step, max_steps=80, loss=2.0 - step * 0.1, tokens_per_s=5120.0)
    ev.emit("train_eval", step=6, eval_loss=1.7)
    ev.emit("progress", done=70, total=80, unit="records", rate_per_s=0.004, eta_s=3725.0)
    ev = Recorder(events_path(run, "eval-baseline"), "eval-baseline", t0 + 120)
    ev.started("eval")
    ev.emit("eval_case", concept_id="POCON-0001", status="ok", score=0.8)
    ev.emit("progress", done=12345, total=20000, unit="cases", rate_per_s=0.21, eta_s=36447.0)
    _manifest(run, {"teacher": "succeeded", "train": "running", "eval-baseline": "running"},
              ("teacher", "train", "eval-baseline", "eval-student", "gate"), "running")
    return run


def app_at(run: Path, now: float) -> CockpitApp:
    return CockpitApp(run, poll_s=0.05, clock=lambda: now)


def _line_of(text: str, job: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(job + " "))


async def test_every_running_stage_shows_its_whole_eta_and_the_numbers_at_80x24(tmp_path):
    run = live_run(tmp_path / "run")
    app = app_at(run, TRAIN_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "valid 100% mean 0.800" in screen_text(app) and "accepted 3/8" in screen_text(app))
        await pilot.pause(0.1)
        text = screen_text(app)
        running = [j for j in app.model.run.jobs.values() if j.state == "running"]
        assert {j.job for j in running} == {"train", "eval-baseline"}
        for job in running:
            eta = duration(job.eta_at(TRAIN_NOW))
            assert eta not in ("-", "0.0s")
            assert re.search(rf"\s{re.escape(eta)}\s*$", _line_of(text, job.job)), (job.job, eta, text)
        assert "done" in _line_of(text, "teacher")  # a finished stage: done, not a stale ETA
        # each stage's few numbers in its own row (the one-column layout's numbers column)
        assert "3/8 75% acc $0.040" in _line_of(text, "teacher")
        assert "88%" in _line_of(text, "train") and "loss 1.400 eval 1.700" in _line_of(text, "train")
        assert "62%" in _line_of(text, "eval-baseline") and "valid 100% mean 0.800" in _line_of(text, "eval-baseline")
        # headline numbers, the same `po-tui status` shows, without scrolling
        assert "accepted 3/8" in text and "acceptance 75%" in text and "$0.0400" in text
        assert "step 6/80" in text and "loss 1.4000" in text
        assert "train loss 1.9 " in text and "eval loss 1.7 " in text


@pytest.mark.parametrize("numbers", [False, True], ids=["plain", "numbers"])
@pytest.mark.parametrize("width", range(30, 201, 7))
def test_the_stages_table_never_cuts_an_eta_value(tmp_path, width, numbers):
    """Whatever the width, each running stage's row ends with its whole ETA; the bar goes first
    (with the numbers column of the one-column layout too)."""
    rows = [{"name": "eval-teacher-reference", "state": "running", "progress": {"done": 123456, "total": 200000,
             "unit": "long-unit-name", "percent": 61.7}, "rate_per_s": 0.5, "elapsed_s": 7300.0, "eta_s": 3725.0,
             "headline": {"short": "valid 97% mean 0.8123"}},
            {"name": "teacher", "state": "succeeded", "progress": {"done": 8, "total": 8, "unit": "records", "percent": 100.0},
             "rate_per_s": None, "elapsed_s": 61.0, "eta_s": None, "headline": {"short": "8/8 89% acc $0.040"}}]
    console = Console(width=width, record=True, color_system=None)
    console.print(StagesView(rows, numbers=numbers))
    lines = console.export_text().splitlines()
    assert all(len(line) <= width for line in lines)
    assert any(line.rstrip().endswith("1h02m") for line in lines), "\n".join(lines)
    assert any(line.rstrip().endswith("done") for line in lines)
    if width < 100:
        assert "━" not in console.export_text() or width >= 90


async def test_two_columns_from_120_wide_one_below(tmp_path):
    run = live_run(tmp_path / "run")
    for size, wide in (((200, 50), True), ((120, 30), True), ((80, 24), False)):
        app = app_at(run, TRAIN_NOW)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda a=app: "accepted 3/8" in screen_text(a))
            await pilot.pause(0.1)
            stages, side = app.query_one("#pipeline-stages").region, app.query_one("#pipeline-side").region
            if wide:
                assert side.x >= stages.right and side.y == stages.y, (size, stages, side)
                if size[0] == 200:
                    assert side.x > 100 and stages.width >= 90
            else:
                assert side.x == stages.x and side.y >= stages.bottom, (size, stages, side)


def test_a_one_point_loss_series_is_one_mark_not_a_full_chart():
    console = Console(width=80, record=True, color_system=None)
    console.print(LossLine("train loss", [(1, 2.25)]))
    line = console.export_text().strip()
    assert line == "train loss 2.25 ▁ 2.25 at step 1  (1 point)"


async def test_a_one_point_loss_series_renders_on_the_overview(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    ev = Recorder(events_path(run, "train"), "train", T0)
    ev.started("train")
    ev.emit("train_step", step=1, max_steps=8, loss=2.25)
    write_manifest(run, {"train": "running"}, state="running")
    app = app_at(run, T0 + 2)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "train loss 2.25" in screen_text(app))
        spark = re.search(r"train loss 2\.25 (\S+) 2\.25 at step 1", screen_text(app))
        assert spark is not None and spark.group(1) == "▁", screen_text(app)


def flat(app: CockpitApp) -> str:
    return re.sub(r"\s+", " ", screen_text(app))


async def test_the_gate_forms_pending_then_judged_then_its_verdict(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    teacher_events(run)
    write_manifest(run, {"teacher": "succeeded", "train": "running"}, state="running")
    app = app_at(run, T0 + 500)
    async with app.run_test(size=(200, 50)) as pilot:
        # The summary line and the criteria are drawn by separate refreshes: wait for both.
        await until(pilot, lambda: "gate forming: 3 pending" in flat(app) and "pending student valid rate" in flat(app))
    # the baseline evaluated, the student not yet: the criteria on the baseline alone are judged already
    path = write_results(run / "eval", "baseline", "20251123_100000", scored_cases([0.8, 0.85, 0.9, 0.75]))
    ev = Recorder(events_path(run, "eval-baseline"), "eval-baseline", T0 + 200)
    ev.started("eval")
    ev.artifact(path, "eval_results")
    ev.finished("succeeded", exit_code=0, summary={"n": 4, "results": str(path)})
    app = app_at(run, T0 + 500)
    async with app.run_test(size=(200, 50)) as pilot:
        await until(pilot, lambda: all(part in flat(app) for part in (
            "gate forming: 1 pass, 2 pending", "pass baseline mean 0.825 >= 0.75", "pending student valid rate >= 0.90")))
    train_events(run)
    eval_and_gate(run)
    (run / "gate.events.jsonl").unlink()  # both evals done, the gate job not run yet
    write_manifest(run, {j: "succeeded" for j in ("teacher", "train", "eval-baseline", "eval-student")}, state="running")
    app = app_at(run, T0 + 500)
    async with app.run_test(size=(200, 50)) as pilot:
        await until(pilot, lambda: "gate forming: 3 pass" in flat(app) and "pass baseline mean 0.825 >= 0.75" in flat(app))
    eval_and_gate(run)
    app = app_at(run, T0 + 500)
    async with app.run_test(size=(200, 50)) as pilot:
        await until(pilot, lambda: re.search(r"gate PASS\s+pass student valid rate", screen_text(app)) is not None)


def failed_run(run: Path) -> Path:
    """Ten planned stages; train failed on a bad model name, its cause only in the stderr tail."""
    run.mkdir(parents=True)
    teacher_events(run)
    ev = Recorder(events_path(run, "train"), "train", T0 + 100)
    ev.started("train")
    ev.emit("error", message="train failed (exit code 2) without finishing its event log", code="job_died",
            stderr_tail="loading\npo-tui train: error: unknown model 'no/such-model': not a local directory\n")
    ev.finished("failed", exit_code=2, summary={})
    _manifest(run, {"concepts": "succeeded", "teacher": "succeeded", "prep": "succeeded", "tiny-model": "skipped",
                    "train": "failed"}, PLAN, "failed")
    return run


async def test_a_failed_stage_shows_its_cause_above_the_fold_at_80x24(tmp_path):
    app = app_at(failed_run(tmp_path / "run"), T0 + 500)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "unknown model 'no/such-model'" in screen_text(app) and "report" in screen_text(app))
        text = screen_text(app)
        assert "train: unknown model 'no/such-model': not a local directory" in text
        assert "report" in text and "accepted 3/8" in text  # all ten stages and the numbers still fit


async def test_a_retry_that_succeeds_clears_the_cause_from_the_overview(tmp_path):
    run = failed_run(tmp_path / "run")
    ev = Recorder(events_path(run, "train"), "train", T0 + 200)
    ev.seq = 3  # the same log goes on after the failed attempt's three events
    ev.started("train")
    ev.emit("train_step", step=1, max_steps=1, loss=1.25)
    ev.finished("succeeded", exit_code=0, summary={"steps": 1, "final_loss": 1.25})
    _manifest(run, {"concepts": "succeeded", "teacher": "succeeded", "prep": "succeeded", "tiny-model": "skipped",
                    "train": "succeeded"}, PLAN, "running")
    app = app_at(run, T0 + 500)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "loss 1.2500" in screen_text(app) and "report" in screen_text(app))
        text = screen_text(app)
        assert "unknown model" not in text and "failed" not in text
        assert _line_of(text, "train").strip().endswith("done")


def _settled(*expected: str):
    """The events, the manifest (its run id and planned jobs), the controls and the gate's criteria all in."""
    expected = (*expected, "20251123-090000-live  running", "eval-student")

    async def settle(pilot):
        await until(pilot, lambda: all(e in screen_text(pilot.app) for e in expected)
                    and "config.yaml" in pilot.app.controls.resume.why and len(pilot.app.gate.criteria_so_far()) == 3)
        await pilot.pause(0.2)

    return settle


def test_overview_snapshot_80x24(tmp_path, snap_compare):
    app = app_at(live_run(tmp_path / "run"), TRAIN_NOW)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settled("valid 100% mean 0.800", "accepted 3/8", "gate forming"))


def test_overview_snapshot_200x50(tmp_path, snap_compare):
    app = app_at(live_run(tmp_path / "run"), TRAIN_NOW)
    assert snap_compare(app, terminal_size=(200, 50), run_before=_settled("12345/20000", "accepted 3/8", "gate forming"))


# -- the real CLI in tmux at 80x24 ----------------------------------------------------------------

# A duration as engine.core.timefmt.duration writes it: 12.3s, 4m05s, 1h02m.
DURATION = re.compile(r"(?:\d+\.\ds|\d+m\d\ds|\d+h\d\dm)$")
QUICK_FAILING = """\
concepts: {count: 8, seed: 3}
teacher: {provider: synthetic, max_records: 6, concurrency: 2, seed: 3, synthetic: {latency_s: 0.1}}
prep: {val_fraction: 0.25, seed: 3}
train: {base_model: no/such-model, max_steps: 2}
report: {plots: false}
"""


class Tmux:
    """One tmux server of the test's own, a session at a fixed size running `po-tui attach RUN`."""

    def __init__(self, name: str, size: tuple[int, int]) -> None:
        self.cmd, self.session, self.size = ["tmux", "-L", f"po-tui-overview-{os.getpid()}-{name}"], name, size

    def attach(self, run: Path) -> None:
        command = f"{sys.executable} -m po_tui attach {run}; echo EXITED=$?; sleep 30"
        subprocess.run([*self.cmd, "new-session", "-d", "-s", self.session, "-x", str(self.size[0]), "-y", str(self.size[1]),
                        command], check=True, env={**os.environ, "TERM": "xterm-256color"})

    def pane(self) -> str:
        return subprocess.run([*self.cmd, "capture-pane", "-p", "-t", self.session], capture_output=True, text=True).stdout

    def wait(self, *words: str, timeout: float = 30.0) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.pane()
            if all(w in text for w in words):
                return text
            time.sleep(0.2)
        raise AssertionError(f"{words} not on screen:\n{self.pane()}")

    def close(self) -> None:
        subprocess.run([*self.cmd, "kill-server"], capture_output=True)


def _rows(text: str, jobs: tuple[str, ...]) -> dict[str, str]:
    return {job: _line_of(text, job).strip() for job in jobs}


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")
def test_tmux_80x24_overview_of_a_live_and_of_a_failed_pipeline(tmp_path):
    """What a user sees in tmux at 80x24: every stage's ETA value (or `done`) and headline numbers,
    and the cause of a failed stage, on the Pipeline tab without scrolling or pressing a key."""
    # 1. A live run (recorded, stamped now): each running stage ends its row with its whole ETA.
    live = live_run(tmp_path / "live", t0=time.time() - 150)
    tmux = Tmux("live", (80, 24))
    try:
        tmux.attach(live)
        text = tmux.wait("valid 100% mean 0.800", "accepted 3/8", "gate forming")
        rows = _rows(text, ("teacher", "train", "eval-baseline"))
        assert rows["teacher"].endswith("done")
        for job in ("train", "eval-baseline"):
            assert "running" in rows[job] and DURATION.search(rows[job]), (job, text)
        assert "step 6/80" in text and "acceptance 75%" in text and "n 1, valid 100%" in text
    finally:
        tmux.close()
    # 2. The quickest real pipeline, synthetic teacher, failing in train on a model name that does not exist.
    config = tmp_path / "quick.yaml"
    config.write_text(QUICK_FAILING)
    done = subprocess.run([sys.executable, "-m", "engine", "run", str(config), "--runs-dir", str(tmp_path / "runs")],
                          cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    tmux = Tmux("failed", (80, 24))
    try:
        tmux.attach(run)
        text = tmux.wait("unknown model 'no/such-model'", "prep ", "report")
        rows = _rows(text, ("concepts", "teacher", "prep", "train"))
        for job in ("concepts", "teacher", "prep"):
            assert "succeeded" in rows[job] and rows[job].endswith("done"), (job, text)
        assert "failed" in rows["train"]
        flat = re.sub(r"\s+", " ", text)
        assert "train: --base-model: unknown model 'no/such-model': not a local directory" in flat
        assert "accepted 6/6" in text and "acceptance 100%" in text and "train 4, val 2" in text and "count 8" in text
    finally:
        tmux.close()


def test_a_finished_teachers_headline_keeps_its_live_numbers_its_summary_does_not_repeat(tmp_path):
    """`status` and the overview: a summary of `records` only still shows accepted/target, acceptance and cost."""
    from engine.runlog.state import RunState
    from engine.views.headline import headline

    run = tmp_path / "run"
    run.mkdir()
    teacher_events(run)  # teacher_stats (accepted 3 of target 8, $0.04), then job_finished with summary {"records": 3}
    job = RunState.from_run_dir(run).jobs["teacher"]
    assert job.finished and job.summary == {"records": 3}
    said = headline("teacher", job)
    assert said["text"] == "accepted 3/8, rejected 1, acceptance 75%, $0.0400"
    job.summary = {"accepted": 5, "target": 8, "rejected": 0, "stop_reason": "target"}  # what the summary says wins
    assert headline("teacher", job)["text"] == "accepted 5/8, rejected 0, acceptance 75%, $0.0400, stop target"
