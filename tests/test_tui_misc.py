"""Cockpit keys and screens (issue 19): resume on a finished run, help at 80 columns, `b` going back,
the report as Markdown, the runs picker's directory and per-run progress."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import InputError
from engine.pipeline.config import parse_config
from engine.pipeline.launch import resume_run
from engine.pipeline.manifest import read_manifest
from engine.pipeline.manifest import write_manifest as save_manifest
from engine.pipeline.plan import build_plan, fingerprint, resolve
from engine.pipeline.runner import Engine, create_run
from po_tui.app import CockpitApp
from po_tui.screens.leave import LeaveScreen
from po_tui.screens.report import ReportScreen
from tests.test_tui import FIXED_NOW, notifications, screen_text, until
from tests.tui_run import T0, Recorder, finished_run, write_manifest


def app_for(run: Path, **kw) -> CockpitApp:
    return CockpitApp(run, poll_s=0.05, clock=lambda: FIXED_NOW, **kw)


# -- 1. resume is not offered on a succeeded run, and refuses to touch it --------------------------


def succeeded_engine_run(tmp_path: Path) -> Path:
    """A run the engine finished: every job succeeded, fingerprints recorded, outputs present."""
    config = parse_config({"concepts": {"count": 4, "seed": 1}, "report": {"plots": False}})
    run = create_run(tmp_path / "runs" / "r1", config)
    jobs = build_plan(config, run)
    for job in jobs:  # outputs first: a later job's fingerprint hashes an earlier one's outputs
        for pattern in job.outputs:
            path = Path(pattern) if Path(pattern).is_absolute() else run / pattern
            path = path.with_name(path.name.replace("*", "x"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{job.name} output\n")
    manifest = read_manifest(run)
    for entry, job in zip(manifest["jobs"], jobs, strict=True):
        assert all(resolve(run, p) is not None for p in job.outputs)
        entry.update(state="succeeded", exit_code=0, fingerprint=fingerprint(run, job))
    manifest["state"] = "succeeded"
    save_manifest(run, manifest)
    return run


def job_states(run: Path) -> dict[str, str]:
    return {j["name"]: j["state"] for j in read_manifest(run)["jobs"]}


def test_resuming_a_succeeded_run_with_nothing_changed_is_refused_and_rewrites_nothing(tmp_path, capsys):
    run = succeeded_engine_run(tmp_path)
    before = job_states(run)
    assert set(before.values()) == {"succeeded"}
    with pytest.raises(InputError, match="succeeded and nothing changed"):
        Engine(run, parse_config({"concepts": {"count": 4, "seed": 1}, "report": {"plots": False}}), resume=True).decisions()
    with pytest.raises(InputError, match="nothing to resume"):
        resume_run(run)  # the cockpit's path
    assert not (run / "engine.log").exists() and not (run / "engine.pid").exists()
    assert main(["run", "--resume", str(run), "--headless"]) == 2  # the command line's path
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to resume" in err
    assert job_states(run) == before and read_manifest(run)["state"] == "succeeded"


def test_a_succeeded_run_whose_outputs_went_missing_may_still_be_resumed(tmp_path):
    run = succeeded_engine_run(tmp_path)
    (run / "report.md").unlink()
    config = parse_config({"concepts": {"count": 4, "seed": 1}, "report": {"plots": False}})
    decisions = {d.job: d.action for d in Engine(run, config, resume=True).decisions()}
    assert decisions["report"] == "redo" and decisions["concepts"] == "skip"


async def test_R_on_a_succeeded_run_is_not_offered_and_touches_nothing(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "config.yaml").write_text("{}\n")  # a run po-tui run started: only its success stops a resume
    manifest = (run / "manifest.json").read_text()
    app = app_for(run)
    said = notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "gate PASS" in screen_text(app))
        await until(pilot, lambda: not app.controls.resume.ok and app.controls.resume.why != "")
        await pilot.press("R")
        await pilot.pause(0.3)
        assert any("cannot resume: the run succeeded" in n.message for n in said)
        assert "R resume" not in screen_text(app)
    assert (run / "manifest.json").read_text() == manifest
    assert not (run / "engine.log").exists()


# -- 3. `b` goes back to the runs picker without asking: nothing is stopped -------------------------


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def live_owned_run(tmp_path: Path, engine_pid: int) -> Path:
    run = tmp_path / "owned"
    run.mkdir()
    write_manifest(run, {"teacher": "running"}, state="running")
    Recorder(run / "teacher.events.jsonl", "teacher", T0).started("teacher")
    (run / "engine.pid").write_text(json.dumps({"pid": engine_pid, "pgid": engine_pid, "host": socket.gethostname(),
                                                "started_at": "x", "mode": "detached"}))
    return run


async def test_b_goes_back_to_the_picker_without_the_leave_question(tmp_path, sleeper):
    run = live_owned_run(tmp_path, sleeper.pid)
    app = CockpitApp(run, poll_s=0.05, owned=True, back=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.controls.cancel.ok)
        await pilot.press("b")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, LeaveScreen)
    assert app.return_value == "back"
    assert sleeper.poll() is None  # the run goes on: the picker lists it


async def test_quitting_the_same_run_still_asks(tmp_path, sleeper):
    run = live_owned_run(tmp_path, sleeper.pid)
    app = CockpitApp(run, poll_s=0.05, owned=True, back=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.controls.cancel.ok)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, LeaveScreen))
        await pilot.press("d")
    assert app.return_value == "detach"


# -- 2. help at 80 columns: each key's description stays on its own row(s), whole ---------------------


async def box_lines(app, pilot, selector: str) -> list[str]:
    """Every line of a scrolling box's content at the app's size, scrolled through page by page."""
    box = app.screen.query_one(selector)
    region = box.scrollable_content_region
    lines: dict[int, str] = {}
    y = 0
    while True:
        box.scroll_to(y=y, animate=False)
        await pilot.pause(0.1)
        top = round(box.scroll_y)
        shown = screen_text(app).splitlines()[region.y:region.y + region.height]
        for i, line in enumerate(shown):
            lines[top + i] = line[region.x:region.x + region.width].rstrip()
        if top >= box.max_scroll_y:
            return [lines[i] for i in sorted(lines)]
        y += region.height


@pytest.mark.parametrize("size", [(80, 24), (60, 24)])
async def test_help_rows_are_never_broken_mid_phrase(tmp_path, size):
    from po_tui.screens.help import KEY_WIDTH, SECTIONS

    app = app_for(finished_run(tmp_path / "run"))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.model.manifest is not None)
        await pilot.press("question_mark")
        await until(pilot, lambda: "Keys" in screen_text(app))
        lines = await box_lines(app, pilot, "#help-box")
    # Each row: the key alone in the first column, its description in the second; a wrapped
    # description continues under itself (blank key column) and nowhere else.
    rows: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        key, rest = line[:KEY_WIDTH].strip(), line[KEY_WIDTH:]
        if key:
            current = rows.setdefault(key, []) if rest.startswith("  ") and rest.strip() else None
            if current is not None:
                current.append(rest.strip())
        elif current is not None and rest.strip():
            assert rest.startswith("  "), f"a wrapped description left its column: {line!r}"
            current.append(rest.strip())
        else:
            current = None
    for _, section in SECTIONS:
        for key, description in section:
            assert " ".join(rows.get(key, [])) == description, (key, rows.get(key), lines)


# -- 4. `r`: the report rendered as Markdown, model output inert -------------------------------------


async def open_report(app, pilot) -> str:
    await until(pilot, lambda: "r Report" in screen_text(app))
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, ReportScreen))
    await until(pilot, lambda: len(app.screen.query("MarkdownBlock")) > 0)
    await pilot.pause(0.2)
    return "\n".join(await box_lines(app, pilot, "#report-box"))


async def test_report_is_rendered_as_markdown_and_model_output_stays_literal(tmp_path, capsys):
    from tests.test_report import finished_run as report_run

    run = report_run(tmp_path)
    assert main(["report", str(run), "--no-plots"]) == 0
    capsys.readouterr()
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "## 1. Context" in md and "missing\\_review\\_block" in md  # what the raw view showed
    app = app_for(run)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: "r Report" in screen_text(app))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReportScreen) and "1. Context" in screen_text(app))
        first = screen_text(app)
        assert "## 1. Context" not in first  # headings, not their syntax
        assert "│ teacher" in first or "┃ teacher" in first  # the context table drawn as a table
        # the format errors section (reached through the document's own table of contents)
        document = app.screen.query_one("#report-markdown")
        block = next(block_id for _, label, block_id in document.table_of_contents if "Format errors" in str(label))
        app.screen.query_one("#report-box").scroll_to_widget(app.screen.query_one(f"#{block}"), top=True, animate=False)
        await pilot.pause(0.2)
        shown = screen_text(app)
    assert "missing\\_review\\_block" not in shown and "missing_review_block" in shown  # escapes resolved
    # the student's raw answer: shown as typed, inside its code block
    assert "<script>alert(1)</script> [x](http://evil)" in shown
    assert "# not a heading" in shown and "`````" in shown


async def test_a_hand_edited_report_cannot_inject_markup_escapes_html_or_act_on_links(tmp_path):
    run = finished_run(tmp_path / "run")  # its report.md holds raw hostile text (Rich markup, ANSI, controls)
    text = (run / "report.md").read_text(encoding="utf-8")
    text += "\nSee [click here](http://example.invalid/x) or http://bare.invalid now.\n\n<b>html</b>\n\n[bold]loud[/bold]\n"
    (run / "report.md").write_text(text, encoding="utf-8")
    app = app_for(run)
    opened: list[str] = []
    app.open_url = lambda url, **kw: opened.append(url)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        shown = await open_report(app, pilot)
        assert "[bold red]boom[/] [link=http://x]click[/link] red bell nul end" in shown
        assert "[bold]loud[/bold]" in shown and "<b>html</b>" in shown and "http://bare.invalid" in shown
        assert "\x1b" not in shown and "\x07" not in shown
        row, line = next((i, line) for i, line in enumerate(screen_text(app).splitlines()) if "click here" in line)
        await pilot.click(offset=(line.index("click here") + 3, row))
        await pilot.pause(0.3)
        assert opened == [] and isinstance(app.screen, ReportScreen)
        assert "click here" in screen_text(app)  # still this report: nothing navigated


# -- 5. the runs picker: a runs directory from the command line, the environment or the project config;
#       progress and ETA per run ----------------------------------------------------------------------


def live_run(root: Path, engine_pid: int) -> Path:
    """A run its engine (here a sleeping process of this host) is driving: teacher half way, ETA 5h30m."""
    run = root / "20261130-120000-live"
    run.mkdir(parents=True)
    write_manifest(run, {"teacher": "running"}, state="running")
    rec = Recorder(run / "teacher.events.jsonl", "teacher", time.time() - 5)
    rec.started("teacher")
    rec.emit("progress", done=4, total=8, unit="records", eta_s=5.5 * 3600)
    (run / "engine.pid").write_text(json.dumps({"pid": engine_pid, "pgid": engine_pid, "host": socket.gethostname(),
                                                "started_at": "x", "mode": "detached"}))
    return run


def test_live_runs_show_the_running_stage_progress_and_eta_and_follow_new_events(tmp_path, sleeper):
    from engine.views.runlist import LiveRuns

    root = tmp_path / "runs"
    run = live_run(root, sleeper.pid)
    finished_run(root / "20251122-090000-done")
    live = LiveRuns()
    rows, problems = live.gather([root, tmp_path / "absent"])
    assert problems == []
    by_name = {Path(r["path"]).name: r for r in rows}
    running, done = by_name[run.name], by_name["20251122-090000-done"]
    assert (running["state"], running["stage"], running["jobs_done"], running["jobs"]) == ("running", "teacher", 0, 5)
    assert running["stage_percent"] == 50.0 and 5.5 * 3600 - 60 < running["eta_s"] <= 5.5 * 3600
    assert (done["state"], done["jobs_done"], done["stage_percent"], done["eta_s"]) == ("succeeded", 5, None, None)
    # the next refresh reads what was appended since (the same watcher), not the run again
    more = Recorder(run / "teacher.events.jsonl", "teacher", time.time())
    more.seq = 2  # after the started and progress events live_run wrote
    more.emit("progress", done=6, total=8, unit="records", eta_s=60.0)
    rows, _ = live.gather([root])
    assert next(r for r in rows if r["path"] == str(run))["stage_percent"] == 75.0
    assert list(live.watchers) == [str(run)]  # finished runs stay manifest-only


async def test_picker_shows_progress_and_eta_per_run(tmp_path, sleeper):
    from po_tui.picker import RunsApp

    root = tmp_path / "runs"
    live_run(root, sleeper.pid)
    finished_run(root / "20251122-090000-done")
    app = RunsApp([root])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.rows) == 2)
        await until(pilot, lambda: "0/5 · 50%" in screen_text(app))
        text = screen_text(app)
    # all in view at 80 columns: state, progress, the ETA whole (5h30m, counting down), the verdict
    running = next(line for line in text.splitlines() if "running" in line)
    assert re.search(r"\b5h[23]\dm\b", running) and "teacher" in running, text
    done = next(line for line in text.splitlines() if "succeeded" in line)
    assert "5/5" in done and "PASS" in done, text
    assert all(name in text for name in ("progress", "ETA", "gate"))


class FakeCockpit:
    def __init__(self) -> None:
        self.picked: list[Path] = []

    def attach(self, run_dir: Path, *, owned: bool = False) -> str | None:
        raise AssertionError("not expected")

    def pick(self, runs_dir: Path) -> int:
        self.picked.append(runs_dir)
        return 0


@pytest.fixture
def terminal(monkeypatch, tmp_path):
    """`po-tui` alone as on a terminal, in an empty project directory, with no runs dir in the environment."""
    import engine.cli

    monkeypatch.setattr(engine.cli, "can_show_cockpit", lambda: True)
    monkeypatch.delenv("PO_TUI_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return FakeCockpit()


def test_po_tui_alone_picks_from_the_flag_the_environment_the_project_config_or_runs(terminal, tmp_path, monkeypatch, capsys):
    assert main([], cockpit=terminal) == 0 and terminal.picked[-1] == Path("runs")
    (tmp_path / "po-tui.yaml").write_text("runs_dir: project-runs\nconcepts:\n  count: 4\n")
    assert main([], cockpit=terminal) == 0 and terminal.picked[-1] == tmp_path / "project-runs"  # relative to the file
    monkeypatch.setenv("PO_TUI_RUNS_DIR", str(tmp_path / "env-runs"))
    assert main([], cockpit=terminal) == 0 and terminal.picked[-1] == tmp_path / "env-runs"
    assert main(["--runs-dir", "flag-runs"], cockpit=terminal) == 0 and terminal.picked[-1] == Path("flag-runs")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_a_runs_dir_that_is_a_file_or_a_bad_project_config_is_one_line_exit_2(terminal, tmp_path, monkeypatch, capsys, how):
    (tmp_path / "afile").write_text("x")
    if how == "flag":
        argv, expect = ["--runs-dir", "afile"], "po-tui: error: afile: --runs-dir: not a directory"
    elif how == "env":
        monkeypatch.setenv("PO_TUI_RUNS_DIR", "afile")
        argv, expect = [], "po-tui: error: afile: PO_TUI_RUNS_DIR: not a directory"
    else:
        (tmp_path / "po-tui.yaml").write_text("concepts:\n  count: 4\nrun_dir: x\n")
        argv, expect = [], "po-tui: error: po-tui.yaml:3: run_dir: unknown key"
    assert main(argv, cockpit=terminal) == 2
    err = capsys.readouterr().err
    assert err.startswith(expect) and err.count("\n") == 1, err
    assert terminal.picked == []


def test_runs_and_run_use_the_same_runs_dir(tmp_path, monkeypatch, capsys):
    import argparse

    from engine.commands.run import prepare

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PO_TUI_RUNS_DIR", raising=False)
    (tmp_path / "po-tui.yaml").write_text("runs_dir: project-runs\nconcepts:\n  count: 4\n")
    args = argparse.Namespace(resume=None, retry_failed=False, config="po-tui.yaml", run_dir=None, runs_dir=None)
    run_dir, config, resuming = prepare(args)
    assert run_dir.parent == tmp_path / "project-runs" and (run_dir / "manifest.json").is_file()
    assert main(["runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["dir"] == str(tmp_path / "project-runs") and [r["path"] for r in listed["runs"]] == [str(run_dir)]
    assert listed["runs"][0]["jobs_done"] == 0 and "eta_s" in listed["runs"][0]
    monkeypatch.setenv("PO_TUI_RUNS_DIR", "env-runs")  # the environment before the config
    assert prepare(args)[0].parent == Path("env-runs")
    assert prepare(argparse.Namespace(**{**vars(args), "runs_dir": "flag-runs"}))[0].parent == Path("flag-runs")
