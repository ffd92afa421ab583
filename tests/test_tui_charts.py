"""Charts with axes (loss on the Training tab), labelled score histograms, and a Teacher tab whose
histogram total agrees with its accepted and rejected counts mid-run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.runlog.events import events_path
from po_tui.samples import SampleTally
from po_tui.widgets.chart import Series, histogram, line_chart, score_bins
from tests.test_tui import app_for, open_tab, screen_text, until
from tests.tui_run import T0, Recorder, finished_run, write_manifest

BLOCKS = "▁▂▃▄▅▆▇█"


def _lines(text) -> list[str]:
    return text.plain.split("\n")


# --- the line chart ------------------------------------------------------------------------------


def test_chart_has_value_axis_labels_and_step_ticks():
    points = [(step, 3.0 - step * 0.01) for step in range(10, 211)]  # 3.0 - 0.1 ... 3.0 - 2.1
    lines = _lines(line_chart([Series("train loss", points)], 60, 12))
    assert len(lines) == 12 and all(len(line) <= 60 for line in lines)
    labels = [line.split("┤")[0].strip() for line in lines if "┤" in line]
    assert labels[0] == "2.9" and labels[-1] == "0.9" and len(labels) == 3  # max, a middle tick, min
    assert 0.9 < float(labels[1]) < 2.9
    axis, ticks = lines[-2], lines[-1]
    assert "└" in axis and axis.count("┬") == 3
    assert ticks.split() == ["step", "10", "110", "210"]
    # each tick label sits under its tick mark
    for label in ("10", "110", "210"):
        start = ticks.index(" " + label) + 1
        assert "┬" in axis[start - 1:start + len(label) + 1]
    assert any("\u2800" < ch <= "\u28ff" for ch in "".join(lines[:-2]))  # a braille line, not blocks
    assert not any(ch in BLOCKS for ch in "".join(lines))


def test_one_point_is_a_marker_with_its_value_not_a_block():
    lines = _lines(line_chart([Series("train loss", [(5, 0.42)])], 50, 9))
    plot = "\n".join(lines[:-2])
    assert plot.count("●") == 1 and "● 0.42" in plot
    assert not any(ch in BLOCKS for ch in plot)
    marker_row = next(line for line in lines if "●" in line)
    assert marker_row.split("┤")[0].strip() == "0.42"  # on the middle tick, which names its value
    assert lines[-1].split() == ["step", "5"]


@pytest.mark.parametrize("count", [2, 3])
def test_two_or_three_points_are_labelled_markers(count):
    points = [(step, 1.0 + step / 10) for step in range(1, count + 1)]
    plot = "\n".join(_lines(line_chart([Series("eval loss", points, marker="◆")], 60, 10))[:-2])
    assert plot.count("◆") == count
    for _, value in points:
        assert f"{value:.4g}" in plot


def test_train_and_eval_share_one_step_axis():
    train = Series("train loss", [(s, 2.0 - s * 0.1) for s in range(1, 11)])
    evals = Series("eval loss", [(5, 1.6), (10, 1.2)], marker="◆")
    lines = _lines(line_chart([train, evals], 60, 10))
    assert lines[-1].split() == ["step", "1", "6", "10"]
    marker_cols = [line.index("◆") for line in lines if "◆" in line]
    axis = lines[-2]
    assert axis.rfind("┬") in marker_cols  # the eval point at the last step is above the last tick


def test_chart_follows_its_size_and_an_empty_chart_says_so():
    series = [Series("loss", [(s, 1 / s) for s in range(1, 50)])]
    for width, height in ((40, 6), (150, 30)):
        lines = _lines(line_chart(series, width, height))
        assert len(lines) == height and max(len(line) for line in lines) == width
    assert line_chart([Series("loss", [])], 40, 6).plain == "no points yet"


def _train_only_run(run: Path, steps: int) -> Path:
    run.mkdir(parents=True)
    rec = Recorder(events_path(run, "train"), "train", T0)
    rec.started("train")
    for step in range(1, steps + 1):
        rec.emit("train_step", step=step * 10, max_steps=100, loss=1.25 - step * 0.01)
    write_manifest(run, {"train": "running"}, state="running")
    return run


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_training_tab_draws_one_logged_point_as_a_marker_with_axes(tmp_path, size):
    app = app_for(_train_only_run(tmp_path / "run", 1))
    async with app.run_test(size=size) as pilot:
        text = await open_tab(pilot, "training", "train loss: last 1.24", "● 1.24")
        assert "█" not in text and "step" in text.split("● 1.24")[1]
        chart = [line for line in text.split("\n") if "┤" in line or "└" in line]
        assert len(chart) == 4 and max(len(line.rstrip()) for line in chart) > size[0] - 10  # it spans the width


async def test_training_tab_chart_has_axes_and_grows_with_the_terminal(tmp_path):
    run = finished_run(tmp_path / "run")
    heights = []
    for size in ((80, 24), (200, 50)):
        app = app_for(run)
        async with app.run_test(size=size) as pilot:
            text = await open_tab(pilot, "training", "eval loss: last", "step  1")
            lines = text.split("\n")
            assert any(line.strip().startswith("1.8 ┤") for line in lines)  # the first (highest) loss
            assert any(line.strip().startswith("0.4 ┤") for line in lines)  # the lowest
            assert "◆ 1.5" in text and "1.1 ◆" in text  # the two eval points, with their values
            tick_line = next(line for line in lines if line.strip().startswith("step  1"))
            assert tick_line.split() == ["step", "1", "4", "8"]
            heights.append(sum("┤" in line or "│" in line for line in lines))
    assert heights[1] > heights[0] + 10


# --- histograms ----------------------------------------------------------------------------------


def test_histogram_rows_name_their_bins_and_counts():
    lines = _lines(histogram([0, 3, 1], ["0.0-0.3", "0.3-0.7", "0.7-1.0"], width=12))
    assert [line.split("│")[0].strip() for line in lines] == ["0.0-0.3", "0.3-0.7", "0.7-1.0"]
    assert [int(line.split()[-1]) for line in lines] == [0, 3, 1]
    assert lines[1].split("│")[1].startswith("█" * 12) and "█" not in lines[0]
    assert score_bins(10)[0] == "0.0-0.1" and score_bins(10)[-1] == "0.9-1.0"


HIST_ROW = re.compile(r"^\s*(\d\.\d)-(\d\.\d) │[█▏▎▍▌▋▊▉ ]*?\s(\d+)\s*$")


def _histogram_rows(text: str) -> dict[str, int]:
    return {f"{m.group(1)}-{m.group(2)}": int(m.group(3)) for m in map(HIST_ROW.match, text.split("\n")) if m}


def _number_after(text: str, word: str) -> int:
    return int(re.search(rf"{word}\s+(\d+)", text).group(1))


def _teacher_mid_run(run: Path) -> Path:
    """24 samples, the stats saying so, then 4 more samples the (throttled) stats have not caught up with."""
    run.mkdir(parents=True)
    rec = Recorder(events_path(run, "teacher"), "teacher", T0)
    rec.started("teacher")

    def sample(i: int, outcome: str, score: float | None, reason: str | None = None) -> None:
        rec.emit("teacher_sample", concept_id=f"POCON-{i:04d}", variant=0, outcome=outcome, score=score,
                 status="aligned" if score is not None else None, reason=reason, attempts=1, model="m")

    for i in range(24):
        sample(i, "accepted" if i < 20 else "rejected", 0.55 + (i % 5) * 0.1 if i < 20 else 0.2, None if i < 20 else "below_min_score")
    rec.emit("teacher_stats", accepted=20, rejected=4, attempted=24, target=40, in_flight=4, acceptance_rate=20 / 24,
             statuses={"aligned": 24})
    for i in range(24, 27):
        sample(i, "accepted", 0.95)
    sample(27, "rejected", None, "provider_error:server_error")  # no answer, so no score to bin
    write_manifest(run, {"teacher": "running"}, state="running")
    return run


async def test_teacher_histogram_total_agrees_with_accepted_and_rejected_mid_run(tmp_path):
    app = app_for(_teacher_mid_run(tmp_path / "run"))
    async with app.run_test(size=(200, 50)) as pilot:
        text = await open_tab(pilot, "teacher", "score histogram", "0.9-1.0 │")
        rows = _histogram_rows(text)
        assert len(rows) == 10 and rows["0.2-0.3"] == 4
        accepted, rejected, attempted = (_number_after(text, w) for w in ("accepted", "rejected", "attempted"))
        assert (accepted, rejected, attempted) == (23, 5, 28)
        assert "n=27 scored samples: 23 accepted + 4 rejected" in text and "1 without a score not binned" in text
        assert sum(rows.values()) == accepted + rejected - 1 == 27
        assert f"{23 / 28 * 100:.1f} %" in text  # the acceptance rate of the counts shown


def test_sample_tally_counts_a_sample_asked_again_after_a_provider_error_once():
    tally = SampleTally()
    tally.add({"concept_id": "A", "variant": 0, "outcome": "rejected", "score": None, "reason": "provider_error:timeout"})
    tally.add({"concept_id": "B", "variant": 1, "outcome": "rejected", "score": 0.31, "status": "misaligned"})
    assert (tally.accepted, tally.rejected, tally.scored, tally.unscored) == (0, 2, 1, 1)
    # the run resumed: A is asked again and accepted this time
    tally.add({"concept_id": "A", "variant": 0, "outcome": "accepted", "score": 1.0, "status": "aligned"})
    assert (tally.accepted, tally.rejected, tally.scored, tally.unscored) == (1, 1, 2, 0)
    assert sum(tally.bins) == tally.scored_accepted + tally.scored_rejected == 2
    assert tally.bins[9] == 1 and tally.bins[3] == 1
    assert dict(tally.statuses) == {"misaligned": 1, "aligned": 1}
    tally.add({"concept_id": "C", "variant": 0, "outcome": "in_flight", "score": 0.5})  # not a finished sample
    assert tally.accepted + tally.rejected == 2


async def test_teacher_tab_says_when_the_teacher_counted_samples_this_log_does_not_hold(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rec = Recorder(events_path(run, "teacher"), "teacher", T0)
    rec.started("teacher")
    rec.emit("teacher_sample", concept_id="POCON-0001", variant=0, outcome="accepted", score=0.9, status="aligned")
    rec.emit("teacher_stats", accepted=31, rejected=2, attempted=33, target=40)  # 32 accepted or rejected before this log
    write_manifest(run, {"teacher": "running"}, state="running")
    app = app_for(run)
    async with app.run_test(size=(200, 50)) as pilot:
        text = await open_tab(pilot, "teacher", "0.9-1.0 │")
        assert _number_after(text, "attempted") == 33 and sum(_histogram_rows(text).values()) == 1
        assert "n=1 scored samples" in text and "32 more counted by the teacher" in text



async def test_training_chart_is_drawn_again_when_the_terminal_is_resized(tmp_path):
    app = app_for(finished_run(tmp_path / "run"))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tab(pilot, "training", "eval loss: last", "step  1")

        def axis_width() -> int:
            axis = next((line for line in screen_text(app).split("\n") if "└" in line), "")
            return len(axis.rstrip())

        narrow = axis_width()
        await pilot.resize_terminal(160, 40)
        await until(pilot, lambda: axis_width() > narrow + 60)
        lines = screen_text(app).split("\n")
        assert next(line for line in lines if line.strip().startswith("step  1")).split() == ["step", "1", "4", "8"]
        assert sum("┤" in line or "│" in line for line in lines) > 15  # taller too
