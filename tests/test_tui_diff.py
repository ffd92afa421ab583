"""The diff screen fitted to the terminal: two bordered panes under 120 columns with the teacher on
`t`, three from 120 on, unified on `u`, panes kept at the same line, long YAML lines wrapped under
their own indentation."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import DataTable

from po_tui.screens.diff import ADDED, WIDE, DiffScreen, wrap_hanging
from tests.test_tui import screen_text, until
from tests.test_tui_eval import _Host, _run_dir


async def _open_diff(pilot, app) -> DiffScreen:
    await pilot.pause()
    app.query_one("#eval-table", DataTable).focus()
    await pilot.press("down", "enter")  # POCON-0002: the student differs from both others
    await until(pilot, lambda: isinstance(app.screen, DiffScreen) and len(app.screen.query(".diff-pane")) > 0)
    await pilot.pause(0.1)
    return app.screen


def titles(screen: DiffScreen) -> list[str]:
    return [str(pane.border_title) for pane in screen.query(".diff-pane").results(VerticalScroll)]


def pane_box(text: str) -> list[str]:
    """The rows from the panes' top border to their bottom border."""
    lines = text.split("\n")
    top = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("╰"))
    return lines[top:bottom + 1]


async def test_at_80_columns_two_bordered_panes_and_the_teacher_on_t(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_diff(pilot, app)
        assert titles(screen) == ["baseline", "student"]
        box = pane_box(screen_text(app))
        assert len(box) >= 15  # the panes fill the screen under the head
        assert box[0].count("╭") == 2 and box[-1].count("╰") == 2
        for row in box[1:-1]:  # both panes bordered on every row, whatever their answers' lengths
            assert row.startswith("│") and row.rstrip().endswith("│") and "││" in row, row
        await pilot.press("t")
        await until(pilot, lambda: titles(screen) == ["student", "teacher"])
        text = screen_text(app)
        assert "score 0.930" in text and "score 0.400" in text and "score 0.900" not in text
        await pilot.press("t")
        await until(pilot, lambda: titles(screen) == ["baseline", "student"])


async def test_at_200_columns_three_panes_and_t_hides_the_teacher(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await _open_diff(pilot, app)
        assert titles(screen) == ["baseline", "student", "teacher"]
        box = pane_box(screen_text(app))
        assert box[0].count("╭") == 3 and box[-1].count("╰") == 3 and len(box) >= 40
        for row in box[1:-1]:
            assert row.count("││") == 2, row
        await pilot.press("t")
        await until(pilot, lambda: titles(screen) == ["baseline", "student"])


async def test_crossing_the_wide_width_changes_the_panes(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(WIDE - 1, 30)) as pilot:
        screen = await _open_diff(pilot, app)
        assert titles(screen) == ["baseline", "student"]
        await pilot.resize_terminal(WIDE, 30)
        await until(pilot, lambda: titles(screen) == ["baseline", "student", "teacher"])


async def test_unified_is_one_bordered_pane(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_diff(pilot, app)
        await pilot.press("u")
        await until(pilot, lambda: len(titles(screen)) == 1)
        text = screen_text(app)
        assert "+product_name: Student Scheduler" in text
        box = pane_box(text)
        assert all(row.startswith("│") and row.rstrip().endswith("│") for row in box[1:-1])


async def test_the_panes_scroll_together(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_diff(pilot, app)
        panes = list(screen.query(".diff-pane").results(VerticalScroll))
        assert panes[0].max_scroll_y >= 5
        panes[0].scroll_to(y=5, animate=False)
        await until(pilot, lambda: round(panes[1].scroll_y) == 5)


async def test_long_yaml_lines_wrap_under_their_indentation_at_80_columns(tmp_path):
    app = _Host(_run_dir(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_diff(pilot, app)
        rows = pane_box(screen_text(app))
        left = [row[1:39] for row in rows[1:-1]]  # the baseline pane's inside
        head = next(i for i, row in enumerate(left) if "product_summary:" in row)
        continued = left[head + 1]
        indent = len(continued) - len(continued.lstrip())
        assert indent > left[head].index("product_summary") and continued.strip()  # hangs, not back at column 0


def test_wrap_hanging_keeps_the_marker_indentation_words_and_highlight():
    line = "+ description: " + " ".join(f"word{i}" for i in range(30))
    text = Text()
    text.append("  short: one\n")
    text.append(line + "\n", style=ADDED)
    text.append("  - " + "x" * 70)
    text.rstrip()
    out = wrap_hanging(text, 30)
    lines = out.plain.split("\n")
    assert lines[0] == "  short: one"
    assert all(cell_len(row) <= 30 for row in lines)
    wrapped = [row for row in lines[1:] if "word" in row]
    assert len(wrapped) > 2 and all(row.startswith(" " * len("+ description: ")) for row in wrapped[1:])
    assert " ".join(" ".join(wrapped).split()) == line  # every word kept, in order
    long_word = [row for row in lines if "x" in row]
    assert "".join(row.strip(" -") for row in long_word) == "x" * 70 and all(row.startswith("    ") for row in long_word[1:])
    # the change highlight covers the continuation rows too
    start = out.plain.index(wrapped[1])
    assert any(span.style == ADDED and span.start <= start < span.end for span in out.spans)
    assert wrap_hanging(text, 300).plain == text.plain  # nothing longer than the width: unchanged
