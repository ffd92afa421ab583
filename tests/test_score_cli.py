"""`po-tui score`: output rows, summary, and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.records import Concept, teacher_record
from tests.po_samples import REQUIREMENTS_YAML, dump, review, vision

CONCEPT = "Field Service Scheduler for utilities, targeting simple operations with emphasis on dispatch."


def teacher_file(tmp_path: Path, n: int = 3) -> Path:
    path = tmp_path / "teacher.jsonl"
    rows = []
    for i in range(n):
        concept = Concept(CONCEPT, REQUIREMENTS_YAML, f"POCON-{i:04d}", "simple")
        r = review() if i != 1 else "status: aligned\nsummary: [unclosed\n"
        rows.append(teacher_record(concept, dump(vision()), r if isinstance(r, str) else dump(r),
                                   score=0.5, metric="po-v2", breakdown={}, metadata={}))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_writes_one_row_per_record_in_order(tmp_path, capsys):
    src = teacher_file(tmp_path)
    assert main(["score", str(src)]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["POCON-0000", "POCON-0001", "POCON-0002"]
    for row in rows:
        assert {"id", "score", "breakdown", "valid", "reason"} <= set(row)
        assert set(row["breakdown"]) == {"schema", "vision", "alignment", "specificity"}
    assert rows[0]["score"] == 1.0 and rows[0]["valid"] is True and rows[0]["reason"] is None
    assert rows[1]["valid"] is False and rows[1]["reason"] == "invalid_review_yaml"
    assert "mean 1.0000 over 2 valid" in err
    assert "format check: 2 valid, 1 format_error (invalid_review_yaml 1)" in err
    # recorded scores (0.5, po-v2) are compared and do not match
    assert "recorded scores: 0/3 reproduced" in err


def test_score_to_file_is_atomic_and_metric_selectable(tmp_path, capsys):
    src = teacher_file(tmp_path)
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(src), "--metric", "po-v1", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["score"] == pytest.approx(118 / 120) and rows[0]["metric"] == "po-v1"
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "recorded scores are po-v2: not compared with po-v1" in captured.err


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["score", "{tmp}/missing.jsonl"], "missing.jsonl: no such file"),
        (["score", "{bad}"], "bad.jsonl:2: malformed JSON"),
        (["score", "{wrongtype}"], "wrongtype.jsonl:1: teacher_product_vision: expected a string, got list"),
        (["score", "{teacher}", "--metric", "po-v9"], "invalid choice: 'po-v9'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, expect):
    teacher = teacher_file(tmp_path)
    (tmp_path / "bad.jsonl").write_text(teacher.read_text().splitlines()[0] + '\n{oops\n{"a": 1}\n')
    (tmp_path / "wrongtype.jsonl").write_text(json.dumps({
        "concept": CONCEPT, "requirements_yaml": REQUIREMENTS_YAML,
        "teacher_product_vision": ["no"], "teacher_product_owner_review": "x"}) + "\n")
    names = {"tmp": tmp_path, "bad": tmp_path / "bad.jsonl", "wrongtype": tmp_path / "wrongtype.jsonl", "teacher": teacher}
    out = tmp_path / "never.jsonl"
    with pytest.raises(SystemExit) if "invalid choice" in expect else _no_exit():
        code = main([a.format(**names) for a in argv] + ["-o", str(out)])
        assert code == 2
    err = capsys.readouterr().err
    assert expect in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not out.exists()


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_debug_shows_traceback_in_a_real_process(tmp_path):
    missing = tmp_path / "missing.jsonl"
    plain = subprocess.run([sys.executable, "-m", "engine", "score", str(missing)], capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr.strip() == f"po-tui score: error: {missing}: no such file"
    debug = subprocess.run([sys.executable, "-m", "engine", "score", str(missing), "--debug"], capture_output=True, text=True)
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr


def test_eval_results_without_concepts_asks_for_them(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"results": [{"concept_id": "POCON-1", "status": "ok", "score": 0.5, "raw_response": "x"}]}))
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    assert "results[0].concept_id: no requirements to score against: pass --concepts" in err
