"""`po-tui prep` and `po-tui import`: every record accounted for, a leak-free deterministic split."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.blocks import check_text
from engine.core.prompts import render_student_prompt
from engine.core.records import Concept, read_concepts, read_samples, supervised_record, teacher_record
from engine.providers.po_writer import write_answer
from engine.stages.concepts import generate_concepts
from engine.stages.prep import PrepOptions, prepare, split_groups

VAL = "artifacts/synthetic/product_owner/product_owner_val.jsonl"
SUPERVISED = "artifacts/distillation/po_teacher_supervised.jsonl"


def teacher_rows(n_concepts: int = 20, variants: int = 2, seed: int = 1) -> list[dict]:
    rows = []
    for c in generate_concepts(n_concepts, seed=seed):
        concept = Concept(c["concept"], c["requirements_yaml"], c["concept_id"], c["tier"])
        for v in range(variants):
            ex, _ = check_text(write_answer(c["concept"], c["requirements_yaml"], random.Random(f"{c['concept_id']}:{v}")))
            rows.append(teacher_record(concept, ex.vision_text, ex.review_text, score=0.9, metric="po-v2", breakdown={},
                                       metadata={"model": "m", "variant": v}))
    return rows


def with_status(review: str, status: str) -> str:
    """The same REVIEW with another first line (`status: ...`)."""
    return f"status: {status}\n" + review.split("\n", 1)[1]


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def messy(tmp_path) -> tuple[Path, dict[str, int]]:
    """A teacher file with one record for every way prep can set a record aside (1-based lines)."""
    rows = teacher_rows()
    bad = dict(rows[0])
    bad["concept"] = 42  # wrong type
    rows[0] = bad
    rows[1] = dict(rows[1], teacher_product_owner_review="")  # missing REVIEW
    rows[2] = dict(rows[2], teacher_product_owner_review="status: aligned\nsummary: [unclosed\n")
    rows[3] = dict(rows[3], teacher_product_owner_review=with_status(rows[3]["teacher_product_owner_review"], "conflicts"))
    rows[4] = dict(rows[4], requirements_yaml="FR001: do a thing\nFR002: do another\n")
    rows[5] = dict(rows[5], teacher_product_vision="product_name: X", teacher_product_owner_review="status: aligned")
    rows.append(dict(rows[10]))  # exact duplicate of line 11
    path = write(tmp_path / "teacher.jsonl", rows)
    return path, {"bad_record": 1, "missing_review_block": 2, "invalid_review_yaml": 3, "conflicts": 4, "no_ids": 5, "below": 6,
                  "duplicate": len(rows)}


def test_every_record_is_accounted_for_with_its_reason(tmp_path, messy):
    path, at = messy
    report = prepare(path, tmp_path / "out", PrepOptions(min_score=0.8, dedupe=True))
    assert report["records"] == report["accounted"] == 41
    reasons = {r["line"]: r["reason"] for r in report["rows"]}
    assert reasons[at["bad_record"]] == "bad_record"
    assert reasons[at["missing_review_block"]] == "missing_review_block"
    assert reasons[at["invalid_review_yaml"]] == "invalid_review_yaml"
    assert reasons[at["conflicts"]] == "status_outside_allowed_set"
    assert reasons[at["no_ids"]] == "requirements_without_ids"
    assert reasons[at["below"]] == "below_min_score"
    assert reasons[at["duplicate"]] == "duplicate"
    assert report["legacy_statuses"] == {"conflicts": 1}
    assert report["exact_duplicates"] == {"count": 1, "lines": [at["duplicate"]], "removed": True}
    detail = {r["line"]: r["detail"] for r in report["rows"]}
    assert "concept: expected a string" in detail[at["bad_record"]]
    assert "line" in detail[at["invalid_review_yaml"]]
    o = report["outcomes"]
    assert o["train"] + o["val"] == 41 - 7
    assert len(lines(tmp_path / "out" / "train.jsonl")) == o["train"]
    assert len(lines(tmp_path / "out" / "val.jsonl")) == o["val"]


def test_duplicates_are_reported_but_kept_without_dedupe(tmp_path, messy):
    path, at = messy
    report = prepare(path, tmp_path / "out", PrepOptions(min_score=0.8))
    assert report["exact_duplicates"]["count"] == 1 and not report["exact_duplicates"]["removed"]
    assert report["outcomes"]["duplicate"] == 0


def test_legacy_status_mapped_only_when_asked(tmp_path):
    rows = teacher_rows(6, 1)
    rows[0] = dict(rows[0], teacher_product_owner_review=with_status(rows[0]["teacher_product_owner_review"], "gaps"))
    path = write(tmp_path / "t.jsonl", rows)
    plain = prepare(path, tmp_path / "a", PrepOptions(min_score=0.0))
    assert plain["outcomes"]["invalid"] == 1 and plain["legacy_statuses"] == {"gaps": 1}
    mapped = prepare(path, tmp_path / "b", PrepOptions(min_score=0.0, map_status={"gaps": "needs_adjustment"}))
    assert mapped["outcomes"]["invalid"] == 0
    assert mapped["statuses_mapped"] == {"gaps->needs_adjustment": 1}
    out = lines(tmp_path / "b" / "train.jsonl") + lines(tmp_path / "b" / "val.jsonl")
    line1 = next(r for r in out if r["source_line"] == 1)
    assert "status: needs_adjustment" in line1["response"] and "status: gaps" not in line1["response"]


def test_split_keeps_concepts_whole_stratified_and_deterministic(tmp_path):
    rows = teacher_rows(40, 3)
    path = write(tmp_path / "t.jsonl", rows)
    a = prepare(path, tmp_path / "a", PrepOptions(min_score=0.0, val_fraction=0.25, seed=7))
    prepare(path, tmp_path / "b", PrepOptions(min_score=0.0, val_fraction=0.25, seed=7))
    prepare(path, tmp_path / "c", PrepOptions(min_score=0.0, val_fraction=0.25, seed=8))
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()
    assert (tmp_path / "a" / "val.jsonl").read_bytes() != (tmp_path / "c" / "val.jsonl").read_bytes()
    train = lines(tmp_path / "a" / "train.jsonl")
    val = lines(tmp_path / "a" / "val.jsonl")
    assert {r["concept_key"] for r in train}.isdisjoint({r["concept_key"] for r in val})
    assert a["split"]["val_concepts"] == 10 and a["split"]["train_concepts"] == 30
    assert a["split"]["val_records"] == 30  # all three variants of each held-out concept
    assert {r["tier"] for r in val} == {"simple", "medium", "corporate"}  # stratified
    assert a["split"]["concept_overlap_train_val"] == 0


def test_split_groups_hits_the_global_count_exactly():
    strata = {f"g{i}": ("a" if i < 7 else "b" if i < 12 else "c") for i in range(13)}
    val = split_groups(strata, 0.3, seed=1)
    assert len(val) == round(13 * 0.3)
    assert split_groups(strata, 0.3, seed=1) == val


def test_training_rows_use_the_one_student_prompt_and_val_is_an_eval_set(tmp_path):
    rows = teacher_rows(10, 1)
    path = write(tmp_path / "t.jsonl", rows)
    prepare(path, tmp_path / "out", PrepOptions(min_score=0.0, val_fraction=0.3))
    train = lines(tmp_path / "out" / "train.jsonl")[0]
    src = next(r for r in rows if r["concept_id"] == train["concept_id"])
    assert train["prompt"] == render_student_prompt(src["concept"], src["requirements_yaml"])
    assert train["response"].startswith("```yaml VISION\n") and "```yaml REVIEW\n" in train["response"]
    kind, samples = read_samples(tmp_path / "out" / "val.jsonl")
    assert kind == "teacher" and len(samples) == 3
    assert all(s.concept.requirements_yaml and s.format_check().valid for s in samples)
    assert len(read_concepts(tmp_path / "out" / "val.jsonl")) == 3
    prepare(path, tmp_path / "chat", PrepOptions(min_score=0.0, val_fraction=0.3, format="chat"))
    chat = lines(tmp_path / "chat" / "train.jsonl")[0]
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant"]
    assert read_samples(tmp_path / "chat" / "train.jsonl")[0] == "chat"


def test_eval_set_leak_reported_excluded_or_fatal(tmp_path, capsys):
    rows = teacher_rows(12, 1)
    path = write(tmp_path / "t.jsonl", rows)
    eval_set = write(tmp_path / "eval.jsonl", [
        {k: r[k] for k in ("concept_id", "concept", "requirements_yaml", "tier")} for r in rows[:4]
    ])
    report = prepare(path, tmp_path / "a", PrepOptions(min_score=0.0, val_fraction=0.0, eval_set=str(eval_set)))
    assert report["eval_set_overlap"]["in_train_by_content"] == 4 and report["eval_set_overlap"]["in_train_by_id"] == 4
    excluded = prepare(path, tmp_path / "b", PrepOptions(min_score=0.0, val_fraction=0.0, eval_set=str(eval_set), exclude_eval_set=True))
    assert excluded["outcomes"]["in_eval_set"] == 4
    assert excluded["eval_set_overlap"]["in_train_by_content"] == 0
    code = main(["prep", "--teacher", str(path), "--out", str(tmp_path / "c"), "--eval-set", str(eval_set), "--strict", "--min-score", "0"])
    assert code == 2 and "evaluation concepts are in the training set" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_max_samples_caps_with_a_reason(tmp_path):
    path = write(tmp_path / "t.jsonl", teacher_rows(10, 2))
    report = prepare(path, tmp_path / "out", PrepOptions(min_score=0.0, max_samples=7))
    assert report["outcomes"]["over_max_samples"] == 13
    assert report["outcomes"]["train"] + report["outcomes"]["val"] == 7


def test_strict_fails_on_invalid_and_writes_nothing(tmp_path, messy, capsys):
    path, _ = messy
    code = main(["prep", "--teacher", str(path), "--out", str(tmp_path / "out"), "--strict"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.endswith(f"{path}:1: 5 invalid record(s) with --strict; first: bad_record: concept: expected a string, got int")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([[1, 2, 3]], ":1: no usable record (bad_record 1); first: bad_record: expected a JSON object, got list"),
        ([{"concept": "x", "requirements_yaml": "FR001: a"}], ":1: no usable record (bad_record 1); first: bad_record: a concept record"),
        ("held-out", ": no record left for training out of 3 (in_eval_set 3)"),
    ],
)
def test_nothing_left_for_training_is_refused_and_writes_nothing(tmp_path, capsys, rows, expected):
    """Empty train/val files would only fail in train, far from the cause."""
    path = write(tmp_path / "t.jsonl", teacher_rows(3, 1) if rows == "held-out" else rows)
    held_out = ["--eval-set", str(path), "--exclude-eval-set"] if rows == "held-out" else []
    code = main(["prep", "--teacher", str(path), "--out", str(tmp_path / "out"), *held_out])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"{path}{expected}" in err
    assert not (tmp_path / "out").exists()


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    path = write(tmp_path / "t.jsonl", teacher_rows(3, 1))
    assert main(["prep", "--teacher", str(path), "--out", str(tmp_path / "o"), "--map-status", "conflicts"]) == 2
    assert "--map-status: expected OLD=NEW" in capsys.readouterr().err
    assert main(["prep", "--teacher", str(path), "--out", str(tmp_path / "o"), "--map-status", "conflicts=bogus"]) == 2
    assert main(["prep", "--teacher", str(path), "--out", str(tmp_path / "o"), "--stratify", "tier,colour"]) == 2
    assert "--stratify: unknown key(s) colour" in capsys.readouterr().err


def test_import_rebuilds_teacher_records_from_supervised_and_legacy(tmp_path, capsys):
    rows = teacher_rows(4, 1)
    sup = [
        supervised_record(render_student_prompt(r["concept"], r["requirements_yaml"]), r["teacher_product_vision"],
                          r["teacher_product_owner_review"])
        for r in rows
    ]
    sup.append({"prompt": sup[0]["prompt"], "response": "no blocks at all"})
    path = write(tmp_path / "sup.jsonl", sup)
    assert main(["import", str(path), "-o", str(tmp_path / "teacher.jsonl")]) == 0
    out = lines(tmp_path / "teacher.jsonl")
    assert len(out) == 5 and all(r["metric"] == "po-v2" for r in out)
    assert out[0]["concept"] == rows[0]["concept"] and out[0]["concept_id"].startswith("CK-")
    assert out[4]["metadata"]["import_format_error"] == "missing_vision_block"
    assert "1 with format errors" in capsys.readouterr().err
    kept = ("concept", "requirements_yaml", "teacher_product_vision", "teacher_product_owner_review", "score")
    legacy = [{k: r[k] for k in kept} for r in rows]
    assert main(["import", str(write(tmp_path / "legacy.jsonl", legacy)), "-o", str(tmp_path / "t2.jsonl"), "--metric", "po-v1"]) == 0
    assert {r["metadata"]["source_layout"] for r in lines(tmp_path / "t2.jsonl")} == {"legacy_teacher"}


def test_reference_supervised_import_and_prep_done_when(reference, tmp_path, capsys):
    teacher = tmp_path / "teacher.jsonl"
    assert main(["import", str(reference / SUPERVISED), "-o", str(teacher)]) == 0
    assert main(["prep", "--teacher", str(teacher), "--out", str(tmp_path / "prep"), "--eval-set", str(reference / VAL)]) == 0
    err = capsys.readouterr().err
    report = json.loads((tmp_path / "prep" / "prep_report.json").read_text())
    assert report["records"] == report["accounted"] == 359
    assert sum(report["outcomes"].values()) == 359
    assert report["exact_duplicates"]["count"] == 2
    assert report["legacy_statuses"] == {"conflicts": 10}
    assert report["split"]["concept_overlap_train_val"] == 0
    train = lines(tmp_path / "prep" / "train.jsonl")
    val = lines(tmp_path / "prep" / "val.jsonl")
    assert {r["concept_key"] for r in train}.isdisjoint({r["concept_key"] for r in val})
    # The replaced split leaked 23 of the 34 validation concepts; prep says so for its train side.
    assert 0 < report["eval_set_overlap"]["in_train_by_content"] <= 23
    assert "LEAK: eval set" in err
    assert "exact duplicates: 2" in err and "conflicts 10" in err
