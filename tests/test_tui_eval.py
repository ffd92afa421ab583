"""The evaluation panel and the side-by-side diff screen, driven by Pilot on small results files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from engine.views.evaltable import EvalTable
from po_tui.screens.diff import ADDED, REMOVED, DiffScreen
from po_tui.widgets.evaluation import EvaluationPanel
from tests.eval_files import case, scored_cases, write_results
from tests.test_tui import notifications

HOSTILE = "[bold red]shout[/bold red] [link=http://x]click[/link] \x1b[31mred\x1b[0m bell\x07 nul\x00 end"
SIZES = [(80, 24), (200, 50)]


class _Host(App):
    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        yield EvaluationPanel(self.run_dir)


def _run_dir(tmp_path: Path) -> Path:
    """baseline/student/teacher over 4 concepts in two tiers; student regresses on 0002, fails 0004."""
    run = tmp_path / "run"
    tiers = ["simple", "simple", "medium", "medium"]
    write_results(run / "eval", "baseline", "20251120_100000", scored_cases([0.8, 0.9, 0.5, 0.6], tiers=tiers))
    student = scored_cases([0.85, 0.4, 0.7, None], tiers=tiers, product="Student Scheduler")
    write_results(run / "eval", "student", "20251120_110000", student, adapter="adapter")
    write_results(run / "eval", "teacher", "20251120_090000", scored_cases([0.95, 0.93, 0.9, 0.92], tiers=tiers))
    return run


def _rows(app: App) -> list[list]:
    table = app.query_one("#eval-table", DataTable)
    return [[c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def _ids(app: App) -> list[str]:
    return [r[0] for r in _rows(app)]


@pytest.mark.parametrize("size", SIZES)
async def test_table_fills_from_results_files_with_deltas_status_and_tier_means(tmp_path, size):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        rows = {r[0]: r for r in _rows(app)}
        assert set(rows) == {"POCON-0001", "POCON-0002", "POCON-0003", "POCON-0004"}
        assert rows["POCON-0002"][1:6] == ["simple", "0.930", "0.900", "0.400", "-0.500"]
        assert rows["POCON-0004"][4:] == ["err", "-0.600", "student: invalid_review_yaml"]
        assert rows["POCON-0001"][6] == "ok"
        # default order: largest regression first
        assert _ids(app)[:2] == ["POCON-0004", "POCON-0002"]
        tiers = app.query_one("#eval-tiers", Static).content
        plain = str(tiers)
        assert "medium" in plain and "simple" in plain and "all" in plain


async def test_sorting_and_filtering_change_rows(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        panel = app.query_one(EvaluationPanel)
        app.query_one("#eval-table", DataTable).focus()
        await pilot.press("o")  # delta descending: the best improvement first
        assert _ids(app)[0] == "POCON-0003"
        panel.sort_column, panel.sort_reverse = "concept", False
        panel._redraw()
        assert _ids(app) == ["POCON-0001", "POCON-0002", "POCON-0003", "POCON-0004"]
        await pilot.press("s")  # concept -> tier
        assert panel.sort_column == "tier"
        assert [r[1] for r in _rows(app)] == ["medium", "medium", "simple", "simple"]
        await pilot.press("t")  # tier filter: medium
        assert panel.tier_filter == "medium"
        assert sorted(_ids(app)) == ["POCON-0003", "POCON-0004"]
        assert "tier=medium" in str(app.query_one("#eval-head", Static).content)
        await pilot.press("f")  # status ok
        assert _ids(app) == ["POCON-0003"]
        await pilot.press("f")  # status error
        assert _ids(app) == ["POCON-0004"]
        await pilot.press("f", "t", "t")  # all statuses, tier simple -> all
        assert panel.tier_filter == "all" and len(_ids(app)) == 4


async def test_header_click_sorts_by_that_column(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        table = app.query_one("#eval-table", DataTable)
        table.post_message(DataTable.HeaderSelected(table, list(table.columns)[4], 4, Text("student")))
        await pilot.pause()
        assert _ids(app)[:2] == ["POCON-0004", "POCON-0002"]  # the format error counts 0
        table.post_message(DataTable.HeaderSelected(table, list(table.columns)[4], 4, Text("student")))
        await pilot.pause()
        assert _ids(app)[:2] == ["POCON-0001", "POCON-0003"]  # same header again: descending


async def test_enter_opens_diff_with_highlights_scores_and_navigation(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        app.query_one("#eval-table", DataTable).focus()
        await pilot.press("down", "enter")  # second row: POCON-0002
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        assert screen.row.concept_id == "POCON-0002"
        cols = [s.content for s in screen.query(".diff-col").results(Static)]
        texts = [c if isinstance(c, Text) else Text(str(c)) for c in cols]
        plains = [t.plain for t in texts]
        assert [p.split("\n")[0] for p in plains] == ["baseline", "student", "teacher"]
        assert "score 0.900" in plains[0] and "score 0.400" in plains[1]
        assert "schema 30" in plains[1]  # the breakdown
        # the product name differs: highlighted on both sides, identical lines are not
        base_marked = [s for s in texts[0].spans if s.style == REMOVED]
        stud_marked = [s for s in texts[1].spans if s.style == ADDED]
        assert base_marked and stud_marked
        assert any("Student Scheduler" in texts[1].plain[s.start:s.end] for s in stud_marked)
        assert not any("Student Scheduler" in texts[0].plain[s.start:s.end] for s in base_marked)
        await pilot.press("u")  # one unified diff instead
        await pilot.pause()
        unified = [s.content for s in screen.query(".diff-col").results(Static)]
        assert len(unified) == 1
        assert "-product_name: Field Service Scheduler" in unified[0].plain
        assert "+product_name: Student Scheduler" in unified[0].plain
        await pilot.press("u")
        await pilot.pause()
        assert len(list(screen.query(".diff-col"))) == 3
        await pilot.press("n")
        assert screen.row.concept_id != "POCON-0002" and screen.index == 2
        await pilot.press("p", "p")
        assert screen.index == 0
        await pilot.press("p")  # already first: stays
        assert screen.index == 0
        first = screen.row.concept_id
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.query_one(EvaluationPanel), EvaluationPanel)
        assert not isinstance(app.screen, DiffScreen)
        assert app.query_one(EvaluationPanel).current_concept() == first


async def test_format_error_case_shows_reason_and_old_files_show_no_breakdown(tmp_path):
    run = tmp_path / "run"
    write_results(run, "baseline", "20251120_100000", scored_cases([0.7], legacy=True), legacy=True)
    write_results(run, "student", "20251120_110000", scored_cases([None]))
    app = _Host(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.query_one("#eval-table", DataTable).focus()
        await pilot.press("enter")
        await pilot.pause()
        plains = [str(s.content) for s in app.screen.query(".diff-col").results(Static)]
        assert "breakdown -" in plains[0]
        assert "format error: invalid_review_yaml" in plains[1] and "score -" in plains[1]


async def test_hostile_model_output_is_inert_in_table_and_diff(tmp_path):
    run = tmp_path / "run"
    bad = case("POCON-0001", None, status="format_error", broken=True, reason=HOSTILE)
    bad["vision_yaml"] = "product_name: " + HOSTILE + "\n"
    good = case("POCON-0001", 0.5)
    good["concept"] = HOSTILE
    write_results(run, "baseline", "20251120_100000", [good])
    write_results(run, "student", "20251120_110000", [bad])
    app = _Host(run)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        cells = app.query_one("#eval-table", DataTable).get_row_at(0)
        status = cells[6]
        assert isinstance(status, Text)
        assert "[bold red]shout[/bold red]" in status.plain and "[link=http://x]" in status.plain
        assert "\x1b" not in status.plain and "\x07" not in status.plain and "\x00" not in status.plain
        app.query_one("#eval-table", DataTable).focus()
        await pilot.press("enter")
        await pilot.pause()
        texts = [s.content for s in app.screen.query(".diff-col").results(Static)]
        head = app.screen.query_one("#diff-head", Static).content
        for text in [texts[1], head]:  # the student's answer and reason, the concept
            assert "[bold red]shout[/bold red]" in text.plain
            assert "[link=http://x]click[/link]" in text.plain
        for text in [*texts, head]:
            assert isinstance(text, Text)
            assert "\x1b" not in text.plain and "\x07" not in text.plain and "\x00" not in text.plain
            for span in text.spans:
                style = str(span.style)
                assert "link" not in style and style != "bold red"
        # what reaches the terminal: no link escape (OSC 8) and the brackets drawn literally
        svg = app.export_screenshot()
        assert "[bold&#160;red]shout" in svg or "[bold red]shout" in svg


async def test_results_written_later_show_up_after_refresh_data(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    app = _Host(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.query_one(EvaluationPanel)
        assert _ids(app) == []
        assert "no evaluation results yet" in str(app.query_one("#eval-head", Static).content)
        write_results(run / "eval", "baseline", "20251120_100000", scored_cases([0.5, 0.6]))
        panel.refresh_data()
        assert sorted(_ids(app)) == ["POCON-0001", "POCON-0002"]
        path = write_results(run / "eval", "student", "20251120_110000", scored_cases([0.9, 0.2]))
        panel.refresh_data()
        assert _rows(app)[0][:6] == ["POCON-0002", "simple", "-", "0.600", "0.200", "-0.400"]
        # rewritten with another score: picked up (the file changed), unchanged files not re-parsed
        write_results(run / "eval", "student", "20251120_110000", scored_cases([0.9, 0.7]))
        os.utime(path, ns=(1, 10**18))
        calls = []
        import engine.views.evaltable as et

        original = et.load_results
        et.load_results = lambda p, **kw: calls.append(Path(p).name) or original(p, **kw)
        try:
            panel.refresh_data()
            panel.refresh_data()
        finally:
            et.load_results = original
        assert calls == ["student_20251120_110000.json"]
        assert {r[0]: r[4] for r in _rows(app)}["POCON-0002"] == "0.700"


def _cases_line(obj: dict) -> str:
    return json.dumps(obj) + "\n"


async def test_live_cases_jsonl_is_followed_incrementally_and_torn_lines_wait(tmp_path):
    run = tmp_path / "run"
    write_results(run / "eval", "baseline", "20251120_100000", scored_cases([0.5, 0.6, 0.7]))
    live = run / "eval" / "student.cases.jsonl"
    cases = scored_cases([0.9, 0.1, 0.8])
    live.write_text(_cases_line({"type": "header", "format": "po-tui-eval-cases/1", "metric": "po-v2", "total": 3,
                                 "tag": "student"})
                    + _cases_line({"type": "attempt", "index": 0, "attempt": 1, "text": "x"})
                    + _cases_line({"type": "case", "index": 0, "result": cases[0]}))
    app = _Host(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.query_one(EvaluationPanel)
        assert {r[0]: r[4] for r in _rows(app)} == {"POCON-0001": "0.900", "POCON-0002": "-", "POCON-0003": "-"}
        assert "student 1/3 live" in str(app.query_one("#eval-head", Static).content)
        line = _cases_line({"type": "case", "index": 1, "result": cases[1]})
        with live.open("a") as fh:
            fh.write(line[:40])  # torn: the writer is mid-append
        panel.refresh_data()
        assert {r[0]: r[4] for r in _rows(app)}["POCON-0002"] == "-"
        with live.open("a") as fh:
            fh.write(line[40:])
        panel.refresh_data()
        assert {r[0]: r[4] for r in _rows(app)}["POCON-0002"] == "0.100"
        assert "student 2/3 live" in str(app.query_one("#eval-head", Static).content)
        # the finished results file, written after the last case, takes over
        final = write_results(run / "eval", "student", "20251120_110000", cases)
        st = live.stat()
        os.utime(final, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        panel.refresh_data()
        assert {r[0]: r[4] for r in _rows(app)}["POCON-0003"] == "0.800"
        assert "student student_20251120_110000.json" in str(app.query_one("#eval-head", Static).content)


async def test_unreadable_results_file_becomes_a_notification_not_a_crash(tmp_path):
    run = tmp_path / "run"
    write_results(run, "baseline", "20251120_100000", scored_cases([0.5]))
    (run / "student_20251120_110000.json").write_text("{not json", encoding="utf-8")
    app = _Host(run)
    said = notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert _ids(app) == ["POCON-0001"]
        assert any("student_20251120_110000.json" in str(n.message) for n in said)


async def test_reference_files_twenty_rows_and_the_three_regressions_first(tmp_path, reference):
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    for name in ("baseline_20251114_215442.json", "student_20251114_220448.json"):
        shutil.copy(reference / "inference_results" / name, run / "eval" / name)
    app = _Host(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        rows = _rows(app)
        assert len(rows) == 20
        assert [r[4] for r in rows[:3]] == ["0.375"] * 3  # sorted by delta, largest drop first
        assert all(float(r[5]) < 0 for r in rows[:3])
        assert sorted(r[0] for r in rows[:3]) == ["POCON-0061", "POCON-0215", "POCON-0217"]
        app.query_one("#eval-table", DataTable).focus()
        await pilot.press("enter")
        await pilot.pause()
        plains = [str(s.content) for s in app.screen.query(".diff-col").results(Static)]
        assert "score 0.375" in plains[1] and "breakdown -" in plains[1]


def test_eval_table_refresh_is_a_no_op_when_nothing_changed(tmp_path):
    table = EvalTable(_run_dir(tmp_path))
    assert table.refresh() is True
    assert table.refresh() is False
    assert [r.concept_id for r in table.rows] == ["POCON-0001", "POCON-0002", "POCON-0003", "POCON-0004"]


async def test_reference_answer_stands_in_for_the_teacher_and_open_concept_jumps(tmp_path):
    run = tmp_path / "run"
    ref = {"vision_yaml": "product_name: Reference Scheduler\n", "review_yaml": "status: aligned\n", "score": 0.77,
           "breakdown": {"schema": 25.0}}
    write_results(run, "baseline", "20251120_100000", [case("POCON-0001", 0.5, reference=ref), case("POCON-0002", 0.6)])
    write_results(run, "student", "20251120_110000", [case("POCON-0001", 0.6, reference=ref), case("POCON-0002", 0.7)])
    app = _Host(run)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        panel = app.query_one(EvaluationPanel)
        rows = {r[0]: r for r in _rows(app)}
        assert rows["POCON-0001"][2] == "0.770ʳ" and rows["POCON-0002"][2] == "-"
        assert "reference answer" in str(app.query_one("#eval-head", Static).content)
        panel.tier_filter = "medium"  # hides everything: open_concept clears it
        panel._redraw()
        assert panel.open_concept("POCON-0001") is True
        await pilot.pause()
        cols = [s.content.plain for s in app.screen.query(".diff-col").results(Static)]
        assert [c.split("\n")[0] for c in cols] == ["baseline", "student", "reference"]
        assert "score 0.770" in cols[2] and "schema 25" in cols[2] and "Reference Scheduler" in cols[2]
        assert panel.open_concept("NOPE") is False


def test_changed_lines_marks_only_differing_lines():
    from engine.stages.sidebyside import changed_lines

    a = "one\ntwo\nthree\n"
    b = "one\nTWO\nthree\nfour\n"
    assert changed_lines(a, b) == ({1}, {1, 3})
    assert changed_lines(None, "x") == (set(), {0})


def test_eval_table_forgets_removed_files(tmp_path):
    run = _run_dir(tmp_path)
    table = EvalTable(run)
    table.refresh()
    assert "student" in table.runs
    (run / "eval" / "student_20251120_110000.json").unlink()
    assert table.refresh() is True
    assert list(table.runs) == ["teacher", "baseline"]
    assert all(r.scores["student"] is None for r in table.rows)


def test_real_eval_stage_output_reads_the_same_from_results_and_from_cases_jsonl(tmp_path):
    """The contract with `po-tui eval`: its cases.jsonl rows give the same table as its results file."""
    import contextlib
    import io

    from engine.cli import main
    from engine.stages.concepts import generate_concepts
    from engine.store.atomic import atomic_write_jsonl

    concepts = atomic_write_jsonl(tmp_path / "concepts.jsonl", generate_concepts(6, 3))
    run = tmp_path / "run"
    for tag, defects in (("baseline", "0.5"), ("student", "0.2")):
        argv = ["eval", "--dataset", str(concepts), "--provider", "synthetic", "--tag", tag, "--out", str(run / "eval"),
                "--max-samples", "0", "--synthetic-defect-rate", defects, "--retries", "0"]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(argv) == 0
    finished = EvalTable(run)
    finished.refresh()
    assert len(finished.rows) == 6 and not any(s.live for s in finished.sources)
    for path in (run / "eval").glob("student_*.json"):
        path.unlink()
    live = EvalTable(run)
    live.refresh()
    assert [s.live for s in live.sources] == [False, True]
    assert [(s.done, s.total) for s in live.sources if s.live] == [(6, 6)]
    key = lambda t: [(r.concept_id, r.tier, r.scores, r.delta, r.status) for r in t.rows]  # noqa: E731
    assert key(live) == key(finished)
