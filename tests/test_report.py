"""`po-tui report`: the report renders for a finished run, inert, with the right numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.inert import clean, fence_for, md_code_block, md_code_span, md_inline
from engine.stages.report import charts
from engine.stages.results import load_results
from engine.stages.sidebyside import regressions, side_by_side, yaml_diff
from tests.eval_files import case, scored_cases, write_adapter, write_results

EVIL_RAW = (
    "Sure! Here is ```` my answer \x1b[31mred\x1b]0;title\x07 <script>alert(1)</script> [x](http://evil)\n"
    "```yaml VISION\nproduct_name: Field Service Scheduler\n```\n"
    "`````\n# not a heading\n"
)


def finished_run(tmp_path: Path) -> Path:
    """A run directory as the pipeline leaves it: adapter with training outputs, eval results."""
    run = tmp_path / "run-1"
    write_adapter(run / "adapter")
    ev = run / "eval"
    write_results(ev, "baseline", "20251120_100000", [
        case("POCON-0001", 0.80, tier="simple", reference={"vision_yaml": "a: 1", "review_yaml": "b: 2", "score": 0.9}),
        case("POCON-0002", 0.90, tier="medium", reference={"vision_yaml": "a: 1", "review_yaml": "b: 2", "score": 1.0}),
        case("POCON-0003", 0.85, tier="corporate"),
        case("POCON-0004", 0.75, tier="simple"),
    ])
    write_results(ev, "student", "20251120_110000", [
        case("POCON-0001", 0.95, tier="simple", latency=1.0, tokens=500),
        case("POCON-0002", None, tier="medium", status="format_error", reason="missing_review_block", raw=EVIL_RAW),
        case("POCON-0003", 0.60, tier="corporate", review_status="needs_adjustment", product="Dispatch Hub"),
        case("POCON-0004", 0.90, tier="simple", review_status="conflicts"),
    ], adapter="adapter", duration_s=40.0)
    write_results(ev, "teacher", "20251120_090000",
                  scored_cases([0.95, 0.97, 0.93, 0.99], tiers=["simple", "medium", "corporate", "simple"]),
                  model="gemini-2.5-flash")
    write_results(ev, "student", "20251101_000000", scored_cases([0.1] * 4))  # older: passed over
    (ev / "comparison_20251120_120000.json").write_text(json.dumps({"timestamp": "x"}), encoding="utf-8")
    return run


def _report(capsys, *argv) -> tuple[int, str, str]:
    code = main(["report", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_renders_for_a_finished_run(tmp_path, capsys):
    run = finished_run(tmp_path)
    code, out, err = _report(capsys, run, "--no-plots")
    assert code == 0, err
    md = (run / "report.md").read_text(encoding="utf-8")
    assert f"wrote {run / 'report.md'} (3 run(s), gate FAIL, text charts)" in err
    for n, title in enumerate(["Context", "Training snapshot", "Scores", "Per tier", "Review status distribution",
                               "Speed and output length", "Acceptance gate",
                               "Grounding and the constant-answer control", "Format errors",
                               "Largest regressions (student vs baseline)", "Files"], start=1):
        assert f"\n## {n}. {title}\n" in md
    # context: columns teacher, baseline, student; models; training hyperparameters
    assert "|  | `teacher` | `baseline` | `student` |" in md
    assert "| model | `gemini-2.5-flash` | `Qwen/Qwen2.5-7B-Instruct` | `Qwen/Qwen2.5-7B-Instruct` |" in md
    assert "| adapter | - | - | `adapter` |" in md
    assert "| `lora_r` | `32` |" in md and "| `grad_accum` | `12` |" in md
    # training snapshot
    assert "- Loss: first 1.46 → final 0.43 (mean 0.65); final eval loss 0.51" in md
    assert "duration 1h40m;" in md
    assert f"- Source: `{run / 'adapter'}`" in md
    assert re.search(r"loss 1\.46 [▁▂▃▄▅▆▇█]{6} 0\.43 {2}\(6 logged steps\)", md)
    # scores: teacher / baseline / student
    assert "|  | `teacher` | `baseline` | `student` | reference answers |" in md
    assert "| mean | 0.9600 | 0.8250 | 0.8167 | 0.9500 |" in md
    assert "| valid rate | 1.0000 | 1.0000 | 0.7500 | - |" in md
    assert "| mean, format errors as 0 | 0.9600 | 0.8250 | 0.6125 | - |" in md
    assert "| format errors | 0 | 0 | 1 | - |" in md
    assert "Student mean / baseline mean: **0.990** (99.0 % of baseline)." in md
    assert "student (3 scores)" in md  # text histogram
    # per tier, statuses, speed
    assert "| `simple` | 0.9700 (2/2) | 0.7750 (2/2) | 0.9250 (2/2) | +0.1500 |" in md
    assert "| `conflicts` (outside the allowed set) | 0 | 0 | 1 |" in md
    assert "| seconds per sample | 15 | 15 | 10 |" in md
    assert "| reasons for a retry | 0 | 0 | missing\\_review\\_block 1 |" in md
    assert "| evaluation duration | 1m00s | 1m00s | 40.0s |" in md
    assert "| output tokens / s | 200.0 | 200.0 | 200.0 |" in md
    assert "| output tokens, mean / max | 400 / 400 | 400 / 400 | 425 / 500 |" in md
    # the gate (seeds by default): valid rate 0.75 fails
    assert "Criteria: `seeds`, on recorded po-v2 scores." in md
    assert "| student valid rate | 0.7500 | \\>= 0.90 | **FAIL** |" in md
    assert "**Verdict: FAIL** (2/3 criteria)." in md
    assert "paired by concept\\_id over 4 cases" in md
    # every format error, with its reason
    assert "#### `student` · `POCON-0002` (`medium`): `missing_review_block`" in md
    assert "- Detail: missing\\_review\\_block detail" in md
    # regressions, largest first, format error as 0, with a YAML diff
    assert "| `POCON-0002` | `medium` | 0.9000 | 0.0000 | -0.9000 |" in md
    assert "| `POCON-0003` | `corporate` | 0.8500 | 0.6000 | -0.2500 |" in md
    assert md.index("### `POCON-0002`") < md.index("### `POCON-0003`")
    assert "-product_name: Field Service Scheduler\n+product_name: Dispatch Hub" in md
    assert "-status: aligned\n+status: needs_adjustment" in md
    # files: what was used and what was passed over, and why
    assert "student_20251101_000000.json`: older than student\\_20251120\\_110000.json" in md
    assert "comparison_20251120_120000.json`: not an evaluation-results file" in md


def test_model_output_is_inert_in_the_report(tmp_path, capsys):
    run = finished_run(tmp_path)
    assert _report(capsys, run, "--no-plots")[0] == 0
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "\x1b" not in md and "\x07" not in md
    # the raw answer sits in a fence longer than its longest backtick run (5), so it cannot close it
    start = md.index("````````text\n") if "````````text\n" in md else md.index("``````text\n")
    fence = md[start: md.index("text\n", start)]
    assert len(fence) == 6
    body_end = md.index("\n" + fence + "\n", start + 1)
    body = md[start + len(fence) + 5: body_end]
    assert "<script>alert(1)</script>" in body and "# not a heading" in body and "`````" in body
    assert not any(line.strip() == fence for line in body.splitlines())
    # and nothing of it leaked outside a code block
    outside = md[:start] + md[body_end:]
    assert "<script>" not in outside


def test_json_summary_and_stdout_markdown(tmp_path, capsys):
    run = finished_run(tmp_path)
    out_md = tmp_path / "out" / "r.md"
    code, out, _ = _report(capsys, run, "-o", out_md, "--json", "--no-plots", "--preset", "v2-closeout", "--top", "1")
    assert code == 0
    summary = json.loads(out)
    assert summary["report"] == str(out_md) and out_md.is_file()
    assert list(summary["runs"]) == ["teacher", "baseline", "student"]
    assert summary["runs"]["student"]["mean_with_errors_as_zero"] == pytest.approx(0.6125)
    assert summary["gate"]["gates"] == "v2-closeout" and summary["gate"]["passed"] is False
    assert summary["training"]["loss"] == {"first": 1.46, "final": 0.43, "mean": 0.65, "final_eval": 0.51}
    assert summary["regressions"] == [
        {"concept_id": "POCON-0002", "tier": "medium", "baseline": 0.9, "student": 0.0, "delta": pytest.approx(-0.9)}
    ]
    assert summary["format_errors"] == [{"tag": "student", "concept_id": "POCON-0002", "reason": "missing_review_block"}]
    code, out, err = _report(capsys, run, "-o", "-", "--no-plots")
    assert code == 0 and out.startswith("# Product Owner distillation report\n") and err == ""


def test_explicit_files_and_training_from_the_results_file(tmp_path, capsys):
    b = write_results(tmp_path, "baseline", "20251120_100000", scored_cases([0.8, 0.9], legacy=True), legacy=True)
    s = write_results(tmp_path, "student", "20251120_110000", scored_cases([0.85, 0.9], legacy=True), legacy=True)
    code, _, err = _report(capsys, b, s)
    assert code == 2 and "-o/--out: required when the inputs are files" in err
    out = tmp_path / "report.md"
    code, _, err = _report(capsys, b, s, "-o", out, "--no-plots")
    assert code == 0, err
    md = out.read_text(encoding="utf-8")
    assert "Training: no `po_tui_train.json` or `loss_history.json` found" in md
    assert "| seconds per sample | - | - |" in md  # old files record no latency
    assert "| output characters, mean / max |" in md
    assert "**Verdict: PASS** (3/3 criteria)." in md
    assert "None: the student scores at least the baseline on every shared concept." in md
    # training embedded in a new results file (po_tui.train), no adapter folder on disk
    from tests.eval_files import train_info

    s2 = write_results(tmp_path / "new", "student", "20251120_110000", scored_cases([0.85, 0.9]),
                       adapter="/nonexistent/adapter", train=train_info(loss={"first": 2.0, "final": 0.5, "mean": 1.0}))
    b2 = write_results(tmp_path / "new", "baseline", "20251120_100000", scored_cases([0.8, 0.9]))
    code, _, err = _report(capsys, b2, s2, "-o", out, "--no-plots")
    md = out.read_text(encoding="utf-8")
    assert code == 0, err
    assert "- Loss: first 2 → final 0.5 (mean 1)" in md and "(po_tui.train)" in md
    # --train names the folder explicitly
    adapter = write_adapter(tmp_path / "ad", losses=[3.0, 1.0])
    code, _, _ = _report(capsys, b2, s2, "-o", out, "--no-plots", "--train", adapter)
    assert code == 0 and f"- Source: `{adapter}`" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda t: [t], "no evaluation-results files"),
        (lambda t: [t, t, "-o", t / "r.md"], "is a directory: give one run directory, or results files only"),
        (lambda t: [t / "missing.json", "-o", t / "r.md"], "missing.json: no such file"),
        (lambda t: [write_results(t, "student", "20251120_110000", scored_cases([0.8])),
                    write_results(t / "b", "student", "20251120_120000", scored_cases([0.8])), "-o", t / "r.md"],
         "two files with tag 'student'"),
        (lambda t: [write_results(t, "student", "20251120_110000", scored_cases([0.8])), "-o", t / "r.md",
                    "--train", t / "nope"], "--train: no such directory"),
        (lambda t: [write_results(t, "student", "20251120_110000", scored_cases([0.8])), "-o", "-", "--json"],
         "--json and -o - both write to stdout"),
        (lambda t: [write_results(t, "student", "20251120_110000", scored_cases([0.8])),
                    write_results(t, "baseline", "20251120_100000", scored_cases([0.8]), metric="po-v1"),
                    "-o", t / "r.md"], "different metrics"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, make, expect):
    argv = make(tmp_path)
    code, out, err = _report(capsys, *argv)
    assert code == 2 and out == ""
    assert expect in err and err.count("\n") == 1
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "report.md").exists()


def test_text_charts_when_matplotlib_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(charts, "have_matplotlib", lambda: False)
    run = finished_run(tmp_path)
    code, _, err = _report(capsys, run)
    assert code == 0 and "text charts" in err
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "![" not in md and "  0.9-1.0 |" in md
    assert not list(run.glob("*.png"))


def test_png_plots_when_matplotlib_is_installed(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = finished_run(tmp_path)
    code, _, err = _report(capsys, run)
    assert code == 0 and "2 plot(s)" in err
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "![score histograms](report-scores.png)" in md and "![loss curve](report-loss.png)" in md
    for name in ("report-scores.png", "report-loss.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.reference
def test_report_on_the_reference_results(reference, tmp_path, capsys):
    out = tmp_path / "report.md"
    code, stdout, err = _report(capsys, reference / "inference_results", "-o", out, "--no-plots", "--json")
    assert code == 0, err
    md = out.read_text(encoding="utf-8")
    summary = json.loads(stdout)
    assert "| mean | 0.8411 | 0.7720 |" in md and "| std | 0.0492 | 0.1808 |" in md
    assert "Student mean / baseline mean: **0.918** (91.8 % of baseline)." in md
    assert "**Verdict: PASS** (3/3 criteria)." in md and summary["gate"]["passed"] is True
    # the three student answers at 0.375 are the three largest regressions, and their broken REVIEWs are shown
    top3 = summary["regressions"][:3]
    assert {r["concept_id"] for r in top3} == {"POCON-0061", "POCON-0215", "POCON-0217"}
    assert all(r["student"] == 0.375 for r in top3)
    assert "3 case(s) the file counts as valid but po-tui's format check rejects" in md
    assert md.count("po-tui's format check rejects it: `invalid_review_yaml`") == 3
    assert "| output characters, mean / max | 2047 / 2429 | 2381 / 2954 |" in md
    assert "finetuned_20251114_143731.json`: not an evaluation-results file" in md
    assert "baseline_20251114_143731.json`: older than baseline\\_20251114\\_215442.json" in md


# --- the pieces --------------------------------------------------------------------------------


def test_side_by_side_joins_by_concept_id(tmp_path):
    b = load_results(write_results(tmp_path, "baseline", "20251120_100000", [
        case("A", 0.8), case("B", 0.9), case("C", 0.7)]))
    s = load_results(write_results(tmp_path, "student", "20251120_110000", [
        case("B", None, status="format_error", broken=True, reason="invalid_review_yaml"),
        case("A", 0.85, reference={"vision_yaml": "v", "review_yaml": "r", "score": 0.97}), case("D", 0.5)]))
    rows = side_by_side({"baseline": b, "student": s})
    assert [r.concept_id for r in rows] == ["A", "B", "C", "D"]
    by = {r.concept_id: r for r in rows}
    assert by["A"].reference == {"vision_yaml": "v", "review_yaml": "r", "score": 0.97}
    assert by["B"].score("student") == 0.0 and by["B"].score("student", errors_as_zero=False) is None
    assert by["B"].views["student"].reason == "invalid_review_yaml"
    assert by["C"].views["student"] is None and by["C"].delta("baseline", "student") is None
    assert by["D"].views["baseline"] is None
    assert [(r.concept_id, round(d, 4)) for r, d in regressions(rows)] == [("B", -0.9)]
    diff = yaml_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", "x", "y")
    assert diff[:2] == ["--- x", "+++ y"] and "-b: 2" in diff and "+b: 3" in diff


def test_inert_helpers():
    assert clean("a\x1b[31mb\x1b]0;t\x07c\x00d\r\ne\u202e") == "abcd\ne"
    assert fence_for("no ticks") == "```" and fence_for("x ```` y") == "`````"
    block = md_code_block("```\n# h\n```", "yaml")
    assert block.startswith("````yaml\n") and block.endswith("\n````")
    assert md_code_span("a`b|c", table=True) == "``a`b\\|c``"
    assert md_code_span("`x`") == "`` `x` ``"
    assert md_inline("[x](http://e) <b> *y* www.e.com a@b") == "\\[x\\](http\\://e) \\<b\\> \\*y\\* www\\.e.com a\\@b"
    assert md_inline("a\nb " * 100, limit=10) == "a b a b a…"
    assert charts.bin_counts([0.0, 0.05, 0.1, 0.99, 1.0]) == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert charts.sparkline([3.0, 2.0, 1.0]) == "█▅▁"
    assert len(charts.sparkline([float(i) for i in range(500)], width=60)) == 60


def test_report_rescored(tmp_path, capsys):
    run = finished_run(tmp_path)
    code, out, err = _report(capsys, run, "--no-plots", "--rescore", "po-v1", "--json")
    assert code == 0, err
    summary = json.loads(out)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "Scores: every answer re-judged with po-v1." in md
    assert all(r["rescored"] and r["metric"] == "po-v1" for r in summary["runs"].values())
    # the synthetic answers are complete: po-v1 gives each 118/120, whatever the file recorded
    assert summary["runs"]["baseline"]["mean"] == pytest.approx(118 / 120)
    assert summary["runs"]["student"]["valid"] == 3


def test_report_shows_the_constant_answer_beside_the_student(tmp_path, capsys):
    from tests.test_gate import demo_files
    from tests.test_grounding import specific_answers

    answers = specific_answers()
    run = tmp_path / "run"
    demo_files(run / "eval", answers)
    code, out, err = _report(capsys, run, "--no-plots", "--preset", "demo", "--json")
    assert code == 0, err
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "Criteria: `demo`" in md and "What it proves: the demo's proof of distillation" in md
    assert "**Verdict: PASS** (3/3 criteria)" in md
    section = md.split("## 8. Grounding and the constant-answer control\n")[1].split("\n## 9.")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in section.splitlines() if line.startswith("| ")}
    assert list(rows) == ["side", "**student**", "baseline", "teacher", "constant answer"]
    assert rows["**student**"][-1].rstrip(" |") == "1.0000" and rows["baseline"][0] == "0.0000"
    assert rows["constant answer"][2] == "0.2500"  # name match: right for one concept of four
    assert "the one for POCON-0001), written for every concept" in section and "Student grounding − constant answer's: **+" in section
    assert "Student mean / teacher mean, format errors as 0: **1.000**" in md
    assert "Not shown to depend on the concept" not in md
    # A student that writes one good answer for every concept: the report says its score proves no grounding.
    copy = tmp_path / "copy"
    demo_files(copy / "eval", {cid: answers["POCON-0002"] for cid in answers})
    code, _, err = _report(capsys, copy, "--no-plots", "--preset", "demo")
    assert code == 0, err
    assert "**Not shown to depend on the concept**" in (copy / "report.md").read_text(encoding="utf-8")
    summary = json.loads(out)
    assert summary["grounding"]["sides"]["constant"]["grounding"] == pytest.approx(0.25)
    assert summary["grounding"]["constant"]["concept_id"] == "POCON-0001"
    # No teacher file: the report is still written, and says why the demo gate has no verdict.
    next((run / "eval").glob("teacher_*.json")).unlink()
    code, _, err = _report(capsys, run, "--no-plots", "--preset", "demo")
    md = (run / "report.md").read_text(encoding="utf-8")
    assert code == 0 and "(2 run(s), no gate, text charts)" in err
    assert "Not evaluated: gate demo compares the student with the teacher (compare.teacher\\_ratio)" in md
    assert "give its results (teacher\\_\\*.json) with the others." in md
    assert "| **student** |" in md and "no constant answer: no teacher answers" in md


def test_a_run_directory_is_judged_by_its_own_gates_unless_the_command_line_says_otherwise(tmp_path, capsys):
    """`po-tui report RUN_DIR` uses the gates the run's config.yaml set (what its gate job used), so a
    regenerated report never contradicts the run's verdict; a typed --preset still wins."""
    run = finished_run(tmp_path)
    (run / "config.yaml").write_text("gate:\n  preset: v2-closeout\n  resamples: 200\n", encoding="utf-8")
    code, _, err = _report(capsys, run, "--no-plots", "--json", "-o", tmp_path / "own.md")
    assert code == 0, err
    assert "Criteria: `v2-closeout`" in (tmp_path / "own.md").read_text(encoding="utf-8")
    code, _, err = _report(capsys, run, "--no-plots", "--preset", "seeds", "-o", tmp_path / "typed.md")
    assert code == 0, err
    assert "Criteria: `seeds`" in (tmp_path / "typed.md").read_text(encoding="utf-8")
