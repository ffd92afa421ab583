"""Learning while it trains, as the user sees it: `train_probe` events on the cockpit's Training
tab and in `po-tui status` (the engine side is tests/test_train_probe.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.runlog.state import RunState
from engine.runlog.tail import read_events
from engine.views.headline import headline
from po_tui.app import CockpitApp
from po_tui.model import CockpitModel
from po_tui.widgets.training import PROBES_SHOWN, probe_label
from tests.test_tui import FIXED_NOW, open_tab
from tests.tui_run import T0, Recorder, finished_run

PROBES = [(2, 0, 4, 0.0), (4, 1, 4, 0.2125), (6, 3, 4, 0.7031), (8, 4, 4, 0.9875)]


def with_probes(run: Path, probes=PROBES) -> Path:
    """A finished run whose training also probed held-out prompts."""
    finished_run(run)
    recorder = Recorder(run / "train.events.jsonl", "train", T0 + 150)
    recorder.seq = 1000
    for step, valid, prompts, mean in probes:
        recorder.emit("train_probe", step=step, max_steps=8, prompts=prompts, valid=valid, complete=valid,
                      valid_rate=None, mean=mean, stopped=valid, max_new_tokens=190, metric="po-v2", seconds=1.5)
    return run


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_training_tab_shows_the_probes(tmp_path, size):
    app = CockpitApp(with_probes(tmp_path / "run"), poll_s=0.05, clock=lambda: FIXED_NOW)
    async with app.run_test(size=size) as pilot:
        text = await open_tab(pilot, "training", "held-out probes", "step 8: 4/4 valid")
        flat = " ".join(text.split())
        assert "step 2: 0/4 valid, mean 0.000" in flat and "step 8: 4/4 valid, mean 0.988" in flat
        assert "train loss: last" in text  # the loss charts are still there


async def test_training_tab_without_probes_shows_no_probe_line(tmp_path):
    app = CockpitApp(finished_run(tmp_path / "run"), poll_s=0.05, clock=lambda: FIXED_NOW)
    async with app.run_test(size=(200, 50)) as pilot:
        text = await open_tab(pilot, "training", "8 / 8", "train loss: last")
        assert "held-out probes" not in text and not app.query_one("#probe-label").display


def test_probe_line_keeps_the_start_and_the_latest():
    many = [(s, s // 10, 10, s / 100) for s in range(10, 110, 10)]
    text = probe_label(many).plain
    assert text.count("step ") == PROBES_SHOWN
    assert "step 10: 1/10" in text and "step 100: 10/10 valid, mean 1.000" in text and "step 20:" not in text


def test_model_folds_probes_and_ignores_damaged_ones(tmp_path):
    damaged = [("9", 1, 4, 0.5), (10, None, 4, 0.5), (11, 1, 0, 0.5), (12, 1, 4, "NaN")]
    run = with_probes(tmp_path / "run", PROBES + damaged)
    model = CockpitModel(run)
    for event in read_events(run / "train.events.jsonl"):
        model.apply(event)
    assert list(model.probes) == PROBES


def test_status_headline_names_the_latest_probe(tmp_path):
    state = RunState.from_run_dir(with_probes(tmp_path / "run"))
    text = headline("train", state.jobs["train"])["text"]
    assert "probe 4/4 valid, mean 0.9875" in text
    assert "probe" not in headline("train", RunState.from_run_dir(finished_run(tmp_path / "plain")).jobs["train"])["text"]
