"""One rule for the numbers the Evaluation and Gate tabs share: a mean counts a format error as 0
(so a side whose answers all failed has mean 0.000 on both tabs), and a delta is `-` where both
sides' answers were format errors (0 − 0 is not "no change": neither model answered)."""

from __future__ import annotations

from pathlib import Path

from engine.commands.gate import verdict_summary
from engine.runlog.events import events_path
from engine.stages.gate import run_gate
from engine.views.evaltable import EvalTable, delta_text, score_text, tier_means
from tests.eval_files import scored_cases, write_results
from tests.test_tui import app_for, open_tab
from tests.tui_run import T0, Recorder, write_manifest

BASELINE = [None, None, None, None]  # every baseline answer a format error
STUDENT = [0.8, None, 0.6, 0.7]  # POCON-0002: both sides failed


def _run(run: Path, *, eval_logs: bool = True) -> Path:
    folder = run / "eval"
    paths = {
        "eval-baseline": write_results(folder, "baseline", "20251123_100000", scored_cases(BASELINE)),
        "eval-student": write_results(folder, "student", "20251123_110000", scored_cases(STUDENT)),
    }
    for k, (job, path) in enumerate(paths.items()):
        if eval_logs:
            with Recorder(events_path(run, job), job, T0 + 200 + k * 20) as ev:
                ev.started("eval")
                ev.artifact(path, "eval_results")
                ev.finished("succeeded", exit_code=0, summary={"n": 4, "results": str(path)})
    summary = verdict_summary(run_gate(paths["eval-baseline"], paths["eval-student"], preset="seeds"))
    with Recorder(events_path(run, "gate"), "gate", T0 + 300) as ev:
        ev.started("gate")
        ev.finished("failed", exit_code=1, summary=summary)
    write_manifest(run, {"eval-baseline": "succeeded", "eval-student": "succeeded", "gate": "failed"}, state="failed")
    return run


def test_rows_and_tier_means_follow_the_rule():
    assert score_text(None) == "-" and score_text(0.0) == "0.000" and delta_text(None) == "-" and delta_text(0.0) == "+0.000"


def test_a_case_both_sides_failed_has_no_delta_and_the_tier_delta_is_the_difference_of_the_means(tmp_path):
    table = EvalTable(_run(tmp_path / "run"))
    table.refresh()
    rows = {r.concept_id: r for r in table.rows}
    assert rows["POCON-0002"].delta is None  # both failed: nothing compared
    assert rows["POCON-0001"].delta == 0.8  # the baseline failed: it counts 0
    [(tier, n, means, delta)] = tier_means(table.rows)
    assert (n, means["baseline"], round(means["student"], 6)) == (4, 0.0, 0.525)
    assert round(delta, 6) == round(means["student"] - means["baseline"], 6) == 0.525


async def test_evaluation_and_gate_show_the_same_means_and_no_delta_where_both_failed(tmp_path):
    app = app_for(_run(tmp_path / "run"))
    async with app.run_test(size=(120, 40)) as pilot:
        evaluation = await open_tab(pilot, "evaluation", "POCON-0002", "tier means")
        row = next(line for line in evaluation.splitlines() if "POCON-0002" in line)
        assert "+0.000" not in row and row.split()[1:6] == ["simple", "-", "err", "err", "-"]  # tier teacher baseline student delta
        assert "baseline 0.000" in evaluation and "student 0.525" in evaluation and "delta +0.525" in evaluation
        gate = await open_tab(pilot, "gate", "computed verdict", "means (format errors as 0)")
        assert "student 0.525" in gate and "baseline 0.000" in gate
        assert "valid answers  student 3/4  baseline 0/4" in gate
        baseline_mean = next(line for line in gate.splitlines() if line.strip().startswith("baseline mean "))
        assert "– (0 valid)" in baseline_mean  # the gate's criterion reads the valid answers' mean: it says why none


async def test_gate_summary_alone_shows_the_means_as_evaluation_does(tmp_path):
    app = app_for(_run(tmp_path / "run", eval_logs=False))  # no results to compute from: the gate job's summary
    async with app.run_test(size=(120, 40)) as pilot:
        gate = await open_tab(pilot, "gate", "verdict FAIL", "interval [")
        assert "computed verdict" not in gate
        assert "means (format errors as 0)  student 0.525  baseline 0.000" in gate
        assert "baseline mean -" not in gate and "baseline mean –" not in gate


def test_the_gate_summary_carries_the_means_with_format_errors_as_zero(tmp_path):
    folder = tmp_path / "eval"
    b = write_results(folder, "baseline", "20251123_100000", scored_cases(BASELINE))
    s = write_results(folder, "student", "20251123_110000", scored_cases(STUDENT))
    summary = verdict_summary(run_gate(b, s, preset="seeds"))
    assert summary["baseline_mean"] is None and summary["baseline_mean_with_errors_as_zero"] == 0.0
    assert round(summary["student_mean_with_errors_as_zero"], 6) == 0.525 and round(summary["student_mean"], 6) == 0.7
