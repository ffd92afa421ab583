"""The cockpit (po-tui attach): each panel from a recorded run, inert text, live tailing, keys."""

from __future__ import annotations

import asyncio
import html
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.notifications import Notification

from engine.cli import build_parser, main
from po_tui.app import CockpitApp
from po_tui.commands import CockpitCommands
from po_tui.screens.confirm import ConfirmScreen
from po_tui.screens.help import HelpScreen
from po_tui.screens.report import ReportScreen
from tests.tui_run import HOSTILE, T0, Recorder, finished_run, write_manifest

SIZES = [(80, 24), (200, 50)]
FIXED_NOW = T0 + 1000


# Rich's SVG export (what `App.export_screenshot` returns and the snapshot tests compare) puts
# each run of text at x = column * 12.2 (20 px characters, aspect 0.61) on the line its clip
# path names; runs of blanks are left out.
_SVG_TEXT = re.compile(r'<text [^>]*?x="([\d.]+)"[^>]*?clip-path="url\(#[\w-]+-line-(\d+)\)"[^>]*>(.*?)</text>')
_CHAR_WIDTH = 20 * 0.61


def screen_text(app: App) -> str:
    """What the terminal shows, as plain text: read from Textual's public screenshot (the SVG the
    snapshot tests use), never from the compositor's private state."""
    lines: dict[int, str] = {}
    for x, line, chunk in _SVG_TEXT.findall(app.export_screenshot()):
        column, text = round(float(x) / _CHAR_WIDTH), html.unescape(chunk).replace("\xa0", " ")
        current = lines.get(int(line), "")
        lines[int(line)] = current.ljust(column) + text
    return "\n".join(lines.get(n, "") for n in range(app.size.height))


def notifications(app: App) -> list[Notification]:
    """Every notification `app` raises from now on, kept (the toasts on screen expire): its public
    `notify` is wrapped, so the notifications still show."""
    seen: list[Notification] = []
    notify = app.notify

    def recording(message: str, **options: Any) -> None:
        seen.append(Notification(message, options.get("title", ""), options.get("severity", "information")))
        notify(message, **options)

    app.notify = recording  # type: ignore[method-assign]
    return seen


async def until(pilot, predicate, timeout: float = 30.0) -> None:
    # A generous bound: it only matters when the UI never gets there; a loaded CI machine can
    # take seconds for a worker (the gate's bootstrap) that takes milliseconds here.
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the UI did not get there in time:\n" + screen_text(pilot.app))
        await pilot.pause(0.05)


async def open_tab(pilot, tab: str, *expected: str) -> str:
    pilot.app.action_show_tab(tab)
    await until(pilot, lambda: all(e in screen_text(pilot.app) for e in expected))
    await pilot.pause(0.1)  # a panel that grew is laid out again on the next refresh
    return screen_text(pilot.app)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return finished_run(tmp_path / "run")


def app_for(run: Path) -> CockpitApp:
    return CockpitApp(run, poll_s=0.05, clock=lambda: FIXED_NOW)


@pytest.mark.parametrize("size", SIZES)
async def test_pipeline_panel_lists_every_job_with_progress(run, size):
    app = app_for(run)
    async with app.run_test(size=size) as pilot:
        text = await open_tab(pilot, "pipeline", "gate", "8/8 steps")
        for job in ("teacher", "train", "eval-baseline", "eval-student", "gate"):
            assert job in text
        assert "4/8 records" in text and "succeeded" in text and "gate PASS" in text
        assert "100%" in text


@pytest.mark.parametrize("size", SIZES)
async def test_teacher_panel_shows_rates_cost_histogram_statuses_and_retries(run, size):
    app = app_for(run)
    async with app.run_test(size=size) as pilot:
        text = await open_tab(pilot, "teacher", "3 / 8 target")
        assert "75.0 %" in text and "12.5 records/min" in text and "retry success 100.0 %" in text
        assert "$0.0400 so far" in text and "$0.0133 per accepted" in text
        assert "output 4,000" in text and "of it thinking 2,500" in text
        assert "0.9-1.0" in text and "█" in text
        assert app.model.scores[9] == 2 and app.model.scores[7] == 1 and app.model.scores[3] == 1
        panel = app.query_one("#teacher-panel")
        panel.scroll_end(animate=False)
        await until(pilot, lambda: "invalid_review_yaml" in screen_text(app))
        text = screen_text(app)
        assert "needs_adjustment" in text and "POCON-0002/0 attempt 1" in text


@pytest.mark.parametrize("size", SIZES)
async def test_training_panel_shows_losses_lr_tokens_and_gpu(run, size):
    app = app_for(run)
    async with app.run_test(size=size) as pilot:
        text = await open_tab(pilot, "training", "8 / 8", "eval loss: last")
        assert "epoch 2.00" in text and "5,120" in text and "0.0001" in text
        assert "GPU memory" in text and "7.40 GB" in text
        assert "train loss: last 0.4 at step 8" in text and "(8 points)" in text
        assert "eval loss: last 1.1 at step 8" in text and "(2 points)" in text


@pytest.mark.parametrize("size", SIZES)
async def test_gate_panel_shows_each_criterion_and_the_interval(run, size):
    app = app_for(run)
    async with app.run_test(size=size) as pilot:
        text = await open_tab(pilot, "gate", "computed verdict", "interval [")
        assert "verdict PASS" in text and "3/3 criteria" in text
        assert "student valid rate" in text and ">= 0.9" in text and "pass" in text
        assert "ratio" in text and "resamples" in text


async def test_gate_panel_without_eval_results_shows_the_summary_only(run):
    for job in ("eval-baseline", "eval-student"):
        (run / f"{job}.events.jsonl").unlink()
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await open_tab(pilot, "gate", "verdict PASS")
        assert "computed verdict" not in text and "interval [0.950, 1.030]" in text


async def test_logs_panel_tails_stdout_and_stderr(run):
    (run / "train.stderr.log").write_text("step 1/8 loss 1.8\nstep 8/8 loss 0.4\n", encoding="utf-8")
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await open_tab(pilot, "logs", "teacher says hello", "step 8/8 loss 0.4")
        assert "train   ┆ step 8/8 loss 0.4" in text and "teacher │ teacher says hello" in text  # stderr's marker, stdout's


async def test_hostile_text_renders_literally_and_inert(run):
    literal = "[bold red]boom[/] [link=http://x]click[/link] red bell nul end"
    app = app_for(run)
    async with app.run_test(size=(200, 50)) as pilot:
        text = await open_tab(pilot, "logs", literal)
        assert "\x1b" not in text and "\x07" not in text and "\x00" not in text
        panel = app.query_one("#teacher-panel")
        await open_tab(pilot, "teacher", "3 / 8 target")
        panel.scroll_end(animate=False)
        await until(pilot, lambda: "[bold red]boom[/]" in screen_text(app))
        # Nothing on screen turned into a link or took a style from the hostile markup.
        for y in range(50):
            for x in range(200):
                style = app.screen.get_style_at(x, y)
                assert not style.link
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReportScreen))
        await until(pilot, lambda: literal in screen_text(app))


async def test_pipeline_shows_the_last_error_of_a_failed_job_inert(tmp_path):
    run = tmp_path / "failed"
    run.mkdir()
    write_manifest(run, {"teacher": "failed"}, state="failed")
    log = Recorder(run / "teacher.events.jsonl", "teacher", T0)
    log.started("teacher")
    log.emit("error", message="first problem")
    log.emit("error", message="auth failed " + HOSTILE, code="auth")
    log.finished("failed", exit_code=1, summary={})
    app = app_for(run)
    async with app.run_test(size=(200, 50)) as pilot:
        text = await open_tab(pilot, "pipeline", "teacher: auth failed")
        assert "[bold red]boom[/] [link=http://x]click[/link] red" in text and "(+1 more)" in text
        assert "failed" in text


async def test_replays_a_finished_run_at_once(run):
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.model.run.jobs.get("gate") is not None and app.model.run.jobs["gate"].finished, timeout=2.0)
        assert app.model.events == sum(1 for p in run.glob("*.events.jsonl") for _ in p.open())


async def test_follows_a_log_appended_by_another_writer_with_torn_and_damaged_lines(tmp_path):
    run = tmp_path / "live"
    run.mkdir()
    write_manifest(run, {"teacher": "running"}, state="running")
    log = Recorder(run / "teacher.events.jsonl", "teacher", T0)
    log.started("teacher")
    log.progress(1, 10, unit="records")
    stop = threading.Event()

    def writer() -> None:
        for done in range(2, 6):
            if stop.is_set():
                return
            log.progress(done, 10, unit="records")
            time.sleep(0.05)

    app = CockpitApp(run, poll_s=0.05, clock=lambda: T0 + 10)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "1/10 records" in screen_text(app))
        thread = threading.Thread(target=writer)
        thread.start()
        await asyncio.to_thread(thread.join)
        await until(pilot, lambda: "5/10 records" in screen_text(app))
        with open(run / "teacher.events.jsonl", "a", encoding="utf-8") as fh:
            fh.write("{this is not json}\n")  # a damaged line in the middle: skipped
            line = log.line("progress", done=7, total=10, unit="records")
            fh.write(line[:25])  # torn: the writer is mid-append
            fh.flush()
        await pilot.pause(0.3)
        assert "5/10 records" in screen_text(app) and app.model.run.jobs["teacher"].progress_done == 5
        with open(run / "teacher.events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line[25:])
        await until(pilot, lambda: "7/10 records" in screen_text(app))
        assert "running" in screen_text(app)
        stop.set()


WRITER = """
import itertools, json, sys, time
path, t0 = sys.argv[1], float(sys.argv[2])
seq = itertools.count()
def line(etype, **data):
    n = next(seq)
    return json.dumps({"v": 1, "ts": t0 + n, "seq": n, "job": "train", "type": etype, "data": data}) + "\\n"
with open(path, "a", encoding="utf-8") as fh:
    fh.write(line("job_started", stage="train", pid=None, host="recorded-host"))
    for step in range(1, 5):
        fh.write(line("train_step", step=step, max_steps=4, loss=2.0 - step / 4))
        fh.write(line("progress", done=step, total=4, unit="steps")); fh.flush(); time.sleep(0.1)
    last = line("train_step", step=5, max_steps=4, loss=0.25)
    fh.write(last[:30]); fh.flush()   # killed mid-append: a torn last line
"""


async def test_follows_another_process_that_dies_mid_line(tmp_path):
    run = tmp_path / "proc"
    run.mkdir()
    write_manifest(run, {"train": "running"}, state="running")
    app = CockpitApp(run, poll_s=0.05, clock=lambda: T0 + 10)
    async with app.run_test(size=(80, 24)) as pilot:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, str(run / "train.events.jsonl"), str(T0))
        assert await proc.wait() == 0
        await until(pilot, lambda: "4/4 steps" in screen_text(app))
        app.action_show_tab("training")
        await until(pilot, lambda: "train loss: last 1 at step 4" in screen_text(app))
        assert len(app.model.loss) == 4


async def test_keys_help_tabs_and_cancel_refused_on_a_finished_run(run):
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "gate PASS" in screen_text(app))
        footer = lambda: screen_text(app).splitlines()[-1]  # noqa: E731
        await until(pilot, lambda: all(word in footer() for word in ("Quit", "Help", "Report", "Cancel run")))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await pilot.press("5")
        assert app.query_one("TabbedContent").active == "gate"
        await pilot.press("2")
        assert app.query_one("TabbedContent").active == "teacher"
        await pilot.press("c")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen)  # nothing to cancel: a notice instead


async def test_cancel_asks_first_on_a_running_run(tmp_path):
    run = tmp_path / "live"
    run.mkdir()
    write_manifest(run, {"teacher": "running"}, state="running")
    Recorder(run / "teacher.events.jsonl", "teacher", T0).started("teacher")
    app = CockpitApp(run, poll_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.controls.cancel.ok)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))


async def test_palette_offers_report_cancel_and_every_tab(run):
    app = app_for(run)
    async with app.run_test(size=(80, 24)):
        names = [name for name, _, _ in CockpitCommands(app.screen).entries()]
    assert "Open report" in names and "Cancel run" in names
    for title in ("Pipeline", "Teacher", "Training", "Evaluation", "Gate", "Logs"):
        assert f"Go to {title}" in names


async def test_a_run_without_a_report_says_so(run):
    (run / "report.md").unlink()
    app = app_for(run)
    said = notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ReportScreen)
        assert any("no report yet" in n.message for n in said)


def test_attach_is_a_command_and_refuses_a_missing_run_dir(tmp_path, capsys):
    args = build_parser().parse_args(["attach", str(tmp_path)])
    assert args.func.__module__ == "engine.commands.attach"
    assert main(["attach", str(tmp_path / "nope")]) != 0
    assert "no such run directory" in capsys.readouterr().err


def test_pipeline_snapshot_80x24(run, snap_compare):
    async def settle(pilot):
        # the controls and the gate's criteria are computed by workers; the controls line may sit below the fold
        await until(pilot, lambda: all(s in screen_text(pilot.app) for s in ("gate PASS", "8/8 steps"))
                    and "config.yaml" in pilot.app.controls.resume.why and len(pilot.app.gate.criteria_so_far()) == 3)
        await pilot.pause(0.2)

    assert snap_compare(app_for(run), terminal_size=(80, 24), run_before=settle)


def test_teacher_snapshot_80x24(run, snap_compare):
    async def settle(pilot):
        await until(pilot, lambda: "8/8 steps" in screen_text(pilot.app))
        pilot.app.action_show_tab("teacher")
        await until(pilot, lambda: "3 / 8 target" in screen_text(pilot.app))

    assert snap_compare(app_for(run), terminal_size=(80, 24), run_before=settle)


def _tab_snapshot(tab: str, *expected: str):
    async def settle(pilot):
        await until(pilot, lambda: "8/8 steps" in screen_text(pilot.app) and "gate PASS" in screen_text(pilot.app))
        await open_tab(pilot, tab, *expected)

    return settle


def test_training_snapshot_200x50(run, snap_compare):
    assert snap_compare(app_for(run), terminal_size=(200, 50), run_before=_tab_snapshot("training", "train loss: last"))


def test_evaluation_snapshot_80x24(run, snap_compare):
    assert snap_compare(app_for(run), terminal_size=(80, 24), run_before=_tab_snapshot("evaluation", "POCON-0001", "tier means"))


def test_gate_snapshot_80x24(run, snap_compare):
    shot = _tab_snapshot("gate", "verdict PASS", "computed verdict", "no reference answers")
    assert snap_compare(app_for(run), terminal_size=(80, 24), run_before=shot)


def _logs_run(run: Path) -> Path:
    """The run with stderr progress, a traceback and a long line from other jobs, at fixed file
    times (the Logs tab orders lines by them), so both snapshots show the merged, marked view."""
    logs = {
        "teacher.stdout.log": (None, 10),
        "train.stderr.log": ("Map: 100%|##########| 8/8 [00:00<00:00, 880.10 examples/s]\nstep 8/8 loss 0.41\n"
                             'Traceback (most recent call last):\n  File "train.py", line 3, in <module>\n'
                             "ValueError: unknown model 'nope'\n", 20),
        "gate.stdout.log": ("verdict PASS " + "ratio 0.990 " * 12 + "end\n", 30),
    }
    for name, (text, offset) in logs.items():
        if text is not None:
            (run / name).write_text(text, encoding="utf-8")
        os.utime(run / name, (T0 + offset, T0 + offset))
    return run


def test_logs_snapshot_80x24(run, snap_compare):
    shot = _tab_snapshot("logs", "teacher says hello", "ValueError")
    assert snap_compare(app_for(_logs_run(run)), terminal_size=(80, 24), run_before=shot)


def test_logs_snapshot_200x50(run, snap_compare):
    shot = _tab_snapshot("logs", "teacher says hello", "ValueError")
    assert snap_compare(app_for(_logs_run(run)), terminal_size=(200, 50), run_before=shot)


def _diff_snapshot(run: Path, size: tuple[int, int], snap_compare) -> bool:
    """POCON-0002's diff with a teacher answer and a student that differs from both others."""
    from po_tui.screens.diff import DiffScreen
    from tests.eval_files import scored_cases, write_results

    write_results(run / "eval", "teacher", "20251123_090000", scored_cases([0.95, 0.93, 0.9, 0.92]))
    write_results(run / "eval", "student", "20251123_120000", scored_cases([0.82, 0.4, 0.88, 0.79], product="Student Scheduler"))

    async def settle(pilot):
        await _tab_snapshot("evaluation", "POCON-0001", "tier means")(pilot)
        pilot.app.open_case("POCON-0002")
        await until(pilot, lambda: isinstance(pilot.app.screen, DiffScreen) and "score 0.400" in screen_text(pilot.app))
        await pilot.pause(0.2)

    return snap_compare(app_for(run), terminal_size=size, run_before=settle)


def test_diff_snapshot_80x24(run, snap_compare):
    assert _diff_snapshot(run, (80, 24), snap_compare)


def test_diff_snapshot_200x50(run, snap_compare):
    assert _diff_snapshot(run, (200, 50), snap_compare)


def demo_gate_run(run: Path, *, evals: bool = True, preset: str = "grounded", copy: bool = False) -> Path:
    """A run judged by a teacher-comparing gate: teacher, baseline and student evaluated (or not yet).

    `copy`: the student writes one good answer for every concept (valid, ungrounded)."""
    import json

    from tests.test_gate import demo_files
    from tests.test_grounding import specific_answers
    from tests.tui_run import _writer, teacher_events, train_events

    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"eval:\n  teacher_reference: true\ngate:\n  preset: {preset}\n", encoding="utf-8")
    teacher_events(run)
    train_events(run)
    jobs = ["teacher", "train", "eval-teacher", "eval-baseline", "eval-student", "gate"]
    argv: dict[str, list] = {}
    if evals:
        answers = specific_answers()
        student = {cid: answers["POCON-0002"] for cid in answers} if copy else None
        b, s, t = demo_files(run / "eval", student or answers)
        if copy:
            t = demo_files(run / "eval-teacher", answers)[2]
        for k, (job, path) in enumerate((("eval-teacher", t), ("eval-baseline", b), ("eval-student", s))):
            with _writer(run, job, T0 + 200 + k * 20) as ev:
                ev.started("eval")
                ev.artifact(path, "eval_results")
                ev.finished("succeeded", exit_code=0, summary={"n": 4, "results": str(path)})
        argv["gate"] = ["gate", str(b), str(s), "--teacher", str(t), "--preset", preset]
    states = {j: ("succeeded" if evals or j in ("teacher", "train") else "pending") for j in jobs}
    doc = {"format": "po-tui-run/1", "run_id": "20251123-090000-demo", "state": "running", "gate": None,
           "jobs": [{"name": j, "stage": "eval" if j.startswith("eval") else j, "state": states[j],
                     "argv": argv.get(j, [j] if states[j] == "succeeded" else None)} for j in jobs]}
    (run / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")
    return run


async def test_gate_panel_shows_the_grounded_preset_its_criteria_and_the_constant_answer(tmp_path):
    app = app_for(demo_gate_run(tmp_path / "run"))
    async with app.run_test(size=(120, 50)) as pilot:
        text = await open_tab(pilot, "gate", "computed verdict: PASS", "constant answer")
        assert "gates grounded: distillation with grounded answers" in text
        assert "not shown to depend on the concept" not in text
        for label in ("student valid rate", "student mean / teacher mean (format errors as 0)",
                      "student mean − baseline mean (format errors as 0)", "student grounding − constant answer's grounding"):
            assert label in text
        rows = {line.split()[0]: line.split() for line in text.splitlines() if line.split()[:1] in (["student"], ["teacher"])}
        assert rows["teacher"][1:] == ["1.00"] * 6  # mean, valid, name, ids ok, ids cov, grounding
        constant = next(line for line in text.splitlines() if line.strip().startswith("constant answer "))
        assert constant.split()[3:] == ["1.00", "0.25", "0.25", "0.25", "0.25"]  # valid, then grounded for 1 of 4


async def test_gate_panel_says_when_a_passing_demo_student_is_not_grounded(tmp_path):
    app = app_for(demo_gate_run(tmp_path / "run", preset="demo", copy=True))
    async with app.run_test(size=(120, 50)) as pilot:
        text = await open_tab(pilot, "gate", "computed verdict: PASS", "not shown to depend on the concept")
        assert "gates demo: the demo's proof of distillation" in text and "not gated" in text


async def test_gate_panel_shows_the_grounded_criteria_before_any_result(tmp_path):
    app = app_for(demo_gate_run(tmp_path / "run", evals=False))
    async with app.run_test(size=(120, 40)) as pilot:
        text = await open_tab(pilot, "gate", "gates grounded", "grounding − constant")
        assert "computed verdict" not in text
        assert ">= 0.75" in text and ">= 0.3" in text and ">= 0.25" in text and ">= 0.9" in text
