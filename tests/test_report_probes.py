"""The report's training section shows the held-out probes made while training
(`train.probe_every`, engine/stages/train/probe.py): the format being learnt, step by step."""

from __future__ import annotations

import json

from engine.cli import main
from tests.eval_files import scored_cases, train_info, write_adapter, write_results

PROBES = [
    {"step": 20, "prompts": 4, "valid": 0, "complete": 0, "valid_rate": 0.0, "mean": 0.0, "max_new_tokens": 190},
    {"step": 40, "prompts": 4, "valid": 2, "complete": 1, "valid_rate": 0.5, "mean": 0.4812, "max_new_tokens": 190},
    {"step": 60, "prompts": 4, "valid": 4, "complete": 4, "valid_rate": 1.0, "mean": 0.9875, "max_new_tokens": 190},
]


def run_with(tmp_path, probes):
    run = tmp_path / "run"
    write_adapter(run / "adapter", {**train_info(), "probes": probes})
    write_results(run / "eval", "baseline", "20251120_100000", scored_cases([None, None]))
    write_results(run / "eval", "student", "20251120_110000", scored_cases([0.95, 0.97]), adapter="adapter")
    return run


def _report(run, capsys, *extra):
    code = main(["report", str(run), "--no-plots", *extra])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return out


def test_training_section_tables_the_probes(tmp_path, capsys):
    run = run_with(tmp_path, PROBES)
    _report(run, capsys)
    md = (run / "report.md").read_text(encoding="utf-8")
    section = md[md.index("## 2. Training snapshot"):md.index("## 3.")]
    assert "Learning while it trained: at these steps the student answered the first 4 held-out prompts" in section
    assert "| step | valid | every key | mean |" in section
    assert "| 20 | 0/4 | 0 | 0.0000 |" in section
    assert "| 40 | 2/4 | 1 | 0.4812 |" in section
    assert "| 60 | 4/4 | 4 | 0.9875 |" in section


def test_json_summary_carries_the_probes(tmp_path, capsys):
    run = run_with(tmp_path, PROBES)
    doc = json.loads(_report(run, capsys, "--json", "-o", str(tmp_path / "r.md")))
    assert [p["step"] for p in doc["training"]["probes"]] == [20, 40, 60]
    assert doc["training"]["probes"][-1]["mean"] == 0.9875


def test_no_probes_no_table_and_damaged_rows_are_left_out(tmp_path, capsys):
    run = run_with(tmp_path, None)
    _report(run, capsys)
    assert "Learning while it trained" not in (run / "report.md").read_text(encoding="utf-8")
    damaged = [*PROBES[:1], {"step": "40", "prompts": 4, "valid": 1, "mean": 0.5}, {"step": 50, "prompts": 0, "valid": 0, "mean": 0.0},
               {"step": 55, "prompts": 4, "valid": 1, "mean": float("nan")}, "x", {"step": True, "prompts": 4, "valid": 1, "mean": 0.5}]
    run2 = run_with(tmp_path / "2", damaged)
    _report(run2, capsys)
    md = (run2 / "report.md").read_text(encoding="utf-8")
    assert "| 20 | 0/4 | 0 | 0.0000 |" in md and md.count("/4 |") == 1
