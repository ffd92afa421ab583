"""The Logs tab, after k9s: one chronological view across jobs, stderr told apart without alarm,
a per-job filter, `/` search, wrap; and the feed stamping each log line with its time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from textual.color import Color

from po_tui.feed import RunFeed
from po_tui.widgets.logs import LogsPanel
from po_tui.widgets.logview import MAX_LINES, LogView
from tests.test_tui import app_for, open_tab, screen_text, until
from tests.tui_run import T0, finished_run

TRACEBACK = ('Traceback (most recent call last):\n  File "train.py", line 3, in <module>\n    main()\n'
             "ValueError: unknown model 'nope'\n")


def write_log(run: Path, name: str, text: str, mtime: float) -> None:
    path = run / name
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run = finished_run(tmp_path / "run")
    # Written in this order in time, one file per job and stream: a, b, c, d, e.
    write_log(run, "teacher.stdout.log", "teacher says hello\nline a from teacher\n", T0 + 10)
    write_log(run, "train.stdout.log", "line b from train\n", T0 + 20)
    write_log(run, "teacher.stderr.log", "line c from teacher\n", T0 + 30)
    write_log(run, "train.stderr.log", "Map: 100%|██████████| 8/8 [00:00<00:00, 880.1 examples/s]\nline d from train\n" + TRACEBACK,
              T0 + 40)
    write_log(run, "gate.stdout.log", "line e from gate\n", T0 + 50)
    return run


def rows(text: str) -> list[str]:
    return [line for line in text.split("\n") if " from " in line]


def test_the_feed_stamps_lines_with_their_file_time_and_merges_them_in_order(run):
    lines = RunFeed(run).poll().log_lines
    order = [line.text for line in lines if " from " in line.text]
    assert order == ["line a from teacher", "line b from train", "line c from teacher", "line d from train", "line e from gate"]
    assert [line.ts for line in lines] == sorted(line.ts for line in lines)
    by_text = {line.text: line for line in lines}
    assert by_text["line c from teacher"].ts == T0 + 30 and by_text["line c from teacher"].stream == "stderr"


async def test_lines_from_several_jobs_interleave_by_time_not_grouped_by_job(run):
    app = app_for(run)
    async with app.run_test(size=(120, 40)) as pilot:
        text = await open_tab(pilot, "logs", "line e from gate", "ValueError")
        got = [line.split(" from ")[0][-6:].strip() for line in rows(text)]
        assert got == ["line a", "line b", "line c", "line d", "line e"]
        # each behind its job's tag
        assert any(line.split()[0] == "train" and "line b from train" in line for line in rows(text))


async def test_lines_appended_live_keep_their_order_across_jobs(tmp_path):
    run = finished_run(tmp_path / "run")
    app = app_for(run)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_tab(pilot, "logs", "teacher says hello")
        now = time.time()
        for i, job in enumerate(("train", "teacher", "train")):
            with open(run / f"{job}.stderr.log", "a", encoding="utf-8") as fh:
                fh.write(f"live {i} from {job}\n")
            os.utime(run / f"{job}.stderr.log", (now + i, now + i))
            await until(pilot, lambda i=i: f"live {i} from" in screen_text(app))
        assert [r.split("live ")[1][:1] for r in rows(screen_text(app)) if "live " in r] == ["0", "1", "2"]


def _style_of(app, needle: str):
    """The style of the first character of `needle` where it shows on screen."""
    for y, line in enumerate(screen_text(app).split("\n")):
        x = line.find(needle)
        if x >= 0:
            return app.screen.get_style_at(x, y)
    raise AssertionError(f"{needle!r} is not on screen")


async def test_stderr_progress_is_not_an_error_but_a_traceback_is(run, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = app_for(run)
    async with app.run_test(size=(120, 40)) as pilot:
        text = await open_tab(pilot, "logs", "ValueError", "Map: 100%")
        assert ":err" not in text
        view = app.query_one(LogView)
        error = Color.from_rich_color(view.get_component_rich_style("logview--error").color)
        progress = Color.from_rich_color(_style_of(app, "Map: 100%").color)
        stdout = Color.from_rich_color(_style_of(app, "line b from train").color)
        assert progress != error and stdout != error
        for needle in ("Traceback (most", 'File "train.py"', "main()", "ValueError: unknown"):
            assert Color.from_rich_color(_style_of(app, needle).color) == error, needle
        # stdout and stderr lines are told apart by their marker, whatever the colours
        progress_line = next(line for line in text.split("\n") if "Map: 100%" in line)
        stdout_line = next(line for line in text.split("\n") if "line b from train" in line)
        assert "┆" in progress_line and "│" in stdout_line and "┆" not in stdout_line


async def test_without_colour_errors_stay_bold_and_stderr_keeps_its_marker(run, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = app_for(run)
    async with app.run_test(size=(120, 40)) as pilot:
        text = await open_tab(pilot, "logs", "ValueError", "Map: 100%")
        assert _style_of(app, "ValueError: unknown").bold and _style_of(app, "Traceback (most").bold
        assert not _style_of(app, "Map: 100%").bold and not _style_of(app, "line b from train").bold
        assert "┆ Map: 100%" in text and "│ line b from train" in text


async def test_the_job_filter_shows_one_job_then_all_again(run):
    app = app_for(run)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_tab(pilot, "logs", "line e from gate")
        await pilot.press("j")  # the first job that wrote: teacher
        await until(pilot, lambda: "job teacher" in screen_text(app))
        text = screen_text(app)
        assert "line a from teacher" in text and "line c from teacher" in text
        assert "from train" not in text and "from gate" not in text
        await pilot.press("j")
        await until(pilot, lambda: "job train" in screen_text(app))
        assert "from teacher" not in screen_text(app) and "line d from train" in screen_text(app)
        await pilot.press("a")
        await until(pilot, lambda: "all jobs" in screen_text(app))
        assert len(rows(screen_text(app))) == 5


async def test_search_narrows_and_highlights_then_escape_restores(run):
    app = app_for(run)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_tab(pilot, "logs", "line e from gate")
        await pilot.press("/", *"FROM TEA")  # case-insensitive
        await until(pilot, lambda: "2 matches" in screen_text(app))
        text = screen_text(app)
        assert [r.split(" from ")[0][-6:] for r in rows(text)] == ["line a", "line c"]
        assert "line b from train" not in text
        match = app.query_one(LogView).get_component_rich_style("logview--match")
        assert _style_of(app, "from teacher").bgcolor == match.bgcolor
        await pilot.press("enter")  # the next match, and the keys go back to the lines
        await until(pilot, lambda: "(1/2)" in screen_text(app))
        await pilot.press("n")
        await until(pilot, lambda: "(2/2)" in screen_text(app))
        await pilot.press("N")
        await until(pilot, lambda: "(1/2)" in screen_text(app))
        await pilot.press("escape")
        await until(pilot, lambda: "search" not in screen_text(app).split("\n")[3])
        assert len(rows(screen_text(app))) == 5
        assert isinstance(app.focused, LogView)


async def test_keys_typed_into_the_search_are_text_not_commands(run):
    app = app_for(run)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_tab(pilot, "logs", "line e from gate")
        await pilot.press("/", *"job a", "escape")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "all jobs" in text and "wrap off" in text and app.tabs.active == "logs"
        assert len(rows(text)) == 5


async def test_w_toggles_wrap_of_long_lines(run):
    with open(run / "gate.stdout.log", "a", encoding="utf-8") as fh:
        fh.write("long " + "x" * 150 + " END\n")
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await open_tab(pilot, "logs", "long xxx")
        assert "wrap off" in text and " END" not in text  # cut at the edge, scrolls sideways
        await pilot.press("w")
        await until(pilot, lambda: "wrap on" in screen_text(app) and " END" in screen_text(app))
        lines = screen_text(app).split("\n")
        head = next(i for i, line in enumerate(lines) if "long xxx" in line)
        continued = lines[head + 1]
        assert continued.startswith(" " * 5) and "x" in continued  # indented under the text, no tag
        assert all(len(line) <= 80 for line in lines)
        await pilot.press("w")
        await until(pilot, lambda: "wrap off" in screen_text(app) and " END" not in screen_text(app))


async def test_markup_and_escapes_in_log_lines_stay_inert(run):
    write_log(run, "eval-student.stdout.log", "[bold red]boom[/] \x1b[31mred\x1b[0m \x1b]0;title\x07end\n", T0 + 60)
    app = app_for(run)
    async with app.run_test(size=(120, 40)) as pilot:
        text = await open_tab(pilot, "logs", "[bold red]boom[/] red end")
        assert "\x1b" not in text
        assert not _style_of(app, "boom").bold


def test_a_progress_bar_redrawn_with_carriage_returns_shows_its_last_state():
    from po_tui.feed import LogLine

    view = LogView()
    view.add([LogLine("train", "stderr", "Map:  10%|#   | 1/8\rMap:  50%|##  | 4/8\rMap: 100%|####| 8/8\r", 1.0),
              LogLine("train", "stdout", "done\r", 2.0)])
    assert [e.text for e in view.entries] == ["Map: 100%|####| 8/8", "done"]


def test_the_view_keeps_at_most_max_lines_in_time_order():
    from po_tui.feed import LogLine

    view = LogView()
    view.add([LogLine("a", "stdout", f"a{i}", float(2 * i)) for i in range(MAX_LINES)])
    view.add([LogLine("b", "stderr", f"b{i}", float(2 * i + 1)) for i in range(MAX_LINES // 2, MAX_LINES + 10)])
    assert view.line_count == MAX_LINES
    stamps = [e.ts for e in view.entries]
    assert stamps == sorted(stamps) and stamps[-1] == float(2 * (MAX_LINES + 9) + 1)


async def test_the_panel_line_count_is_what_it_keeps(run):
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tab(pilot, "logs", "line e from gate")
        assert app.query_one(LogsPanel).line_count == len(app.query_one(LogView).entries) == 11
