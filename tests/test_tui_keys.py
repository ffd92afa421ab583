"""Cockpit keys: tab keys applied in the order typed, and the screen underneath inert under a modal."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events

from po_tui.app import CockpitApp
from po_tui.screens.diff import DiffScreen
from po_tui.screens.help import HelpScreen
from tests.test_tui import FIXED_NOW, screen_text, until
from tests.tui_run import finished_run


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return finished_run(tmp_path / "run")


def app_for(run: Path) -> CockpitApp:
    return CockpitApp(run, poll_s=0.05, clock=lambda: FIXED_NOW)


@pytest.mark.parametrize("keys", [("4", "1"), ("1", "4", "2"), ("6", "3", "5", "1"), ("4", "1", "4", "1")])
async def test_tab_keys_arriving_together_are_applied_in_order(run, keys):
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "gate PASS" in screen_text(app))
        for key in keys:  # back to back, no idle wait between them: what `tmux send-keys 4 1` delivers
            app.post_message(events.Key(key, key))
        await pilot.pause(0.3)
        expected = app.tab_titles()[int(keys[-1]) - 1][0]
        assert app.query_one("TabbedContent").active == expected


async def test_tab_keys_behind_the_diff_screen_are_inert(run):
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "gate PASS" in screen_text(app))
        await pilot.press("4")
        await until(pilot, lambda: app.query_one("TabbedContent").active == "evaluation")
        await until(pilot, lambda: "POCON" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen))
        await pilot.press("3", "1", "6")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DiffScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DiffScreen))
        await pilot.pause(0.2)
        assert app.query_one("TabbedContent").active == "evaluation"


async def test_tab_keys_behind_the_help_screen_are_inert(run):
    app = app_for(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "gate PASS" in screen_text(app))
        await pilot.press("2", "question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("5", "c")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        assert app.query_one("TabbedContent").active == "teacher"
