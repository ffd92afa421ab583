"""Readers for every layout in docs/formats.md and the reference files, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.core.blocks import render_response
from engine.core.prompts import render_student_prompt
from engine.core.records import (
    Concept,
    guess_tier,
    population_stats,
    read_concept_list,
    read_concepts,
    read_eval_results,
    read_samples,
    split_prompt,
    supervised_record,
    teacher_record,
)
from engine.errors import InputError
from tests.po_samples import REQUIREMENTS_YAML, dump, review, vision

CONCEPT = "Field Service Scheduler for utilities in EMEA, targeting medium operations with emphasis on dispatch."
V, R = dump(vision()), dump(review())


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def concept_row(cid="POCON-0001", tier="medium"):
    return {"concept_id": cid, "concept": CONCEPT, "requirements_yaml": REQUIREMENTS_YAML, "tier": tier, "metadata": {}}


def test_teacher_record_written_and_read_back(tmp_path):
    concept = Concept(CONCEPT, REQUIREMENTS_YAML, "POCON-0001", "medium")
    row = teacher_record(concept, V, R, score=0.9, metric="po-v2", breakdown={"schema": 30}, metadata={"model": "m"})
    assert set(row) >= {
        "concept_id", "tier", "concept", "requirements_yaml", "teacher_product_vision",
        "teacher_product_owner_review", "score", "metric", "score_breakdown", "metadata",
    }
    kind, samples = read_samples(write_jsonl(tmp_path / "t.jsonl", [row]))
    assert kind == "teacher"
    s = samples[0]
    assert (s.id, s.vision, s.review, s.recorded_score, s.recorded_metric) == ("POCON-0001", V, R, 0.9, "po-v2")
    assert s.concept.tier == "medium"


def test_legacy_teacher_without_ids_gets_line_ids_and_tier_from_text(tmp_path):
    rows = [{"concept": CONCEPT, "requirements_yaml": REQUIREMENTS_YAML, "teacher_product_vision": V,
             "teacher_product_owner_review": R, "score": 0.88}] * 2
    kind, samples = read_samples(write_jsonl(tmp_path / "legacy.jsonl", rows))
    assert kind == "legacy_teacher"
    assert [s.id for s in samples] == ["line-1", "line-2"]
    assert samples[0].concept.tier == "medium"
    assert samples[0].recorded_metric == "po-v1"
    assert samples[0].concept.key == samples[1].concept.key


def test_validation_layout(tmp_path):
    row = {"input": concept_row(), "output": {"product_vision": V, "product_owner_review": R}, "score": 0.8, "metadata": {}}
    kind, samples = read_samples(write_jsonl(tmp_path / "val.jsonl", [row]))
    assert kind == "validation"
    assert samples[0].id == "POCON-0001" and samples[0].vision == V
    concepts = read_concepts(tmp_path / "val.jsonl")
    assert concepts["POCON-0001"].requirements_yaml == REQUIREMENTS_YAML


def test_supervised_newer_layout_from_our_renderer(tmp_path):
    prompt = render_student_prompt(CONCEPT, REQUIREMENTS_YAML)
    row = supervised_record(prompt, V, R, concept_id="POCON-0007")
    kind, samples = read_samples(write_jsonl(tmp_path / "sup.jsonl", [row]))
    assert kind == "supervised"
    s = samples[0]
    assert s.concept.concept == CONCEPT
    assert s.concept.requirements_yaml == REQUIREMENTS_YAML.strip()
    assert s.id == "POCON-0007"
    vision_text, review_text = s.blocks()
    assert vision_text == V.rstrip("\n") and review_text == R.rstrip("\n")
    assert s.format_check().valid


def test_supervised_older_layout_ends_at_important():
    prompt = f"You are the PO.\n\nCONCEPT:\n{CONCEPT}\n\nREQUIREMENTS:\n{REQUIREMENTS_YAML}\n\nIMPORTANT:\n- Always emit two blocks"
    concept, req = split_prompt(prompt)
    assert concept == CONCEPT and req == REQUIREMENTS_YAML.strip()
    assert split_prompt("no markers here") is None


def test_supervised_without_markers_is_an_error_naming_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "sup.jsonl", [{"prompt": "p", "response": render_response(V, R)}])
    with pytest.raises(InputError) as exc:
        read_samples(path)
    assert str(exc.value).startswith(f"{path}:1: prompt: cannot recover the concept")


def test_old_eval_results_joined_to_concepts(tmp_path):
    doc = {
        "model": "m", "adapter_path": None, "timestamp": "20251114_215442", "dataset": "val.jsonl",
        "total_samples": 2, "valid_samples": 1, "failed_samples": 1,
        "metrics": {"mean": 0.9, "std": 0.0, "min": 0.9, "max": 0.9},
        "results": [
            {"concept_id": "POCON-0001", "tier": "medium", "status": "ok", "attempts": 1, "score": 0.9,
             "vision_yaml": V, "review_yaml": R, "raw_response": render_response(V, R)},
            {"concept_id": "POCON-0001", "tier": "medium", "status": "format_error", "attempts": 3,
             "score": None, "vision_yaml": None, "review_yaml": None, "raw_response": "no blocks", "error": "x"},
        ],
    }
    path = tmp_path / "baseline_20251114_215442.json"
    path.write_text(json.dumps(doc, indent=2))
    concepts = {"POCON-0001": Concept(CONCEPT, REQUIREMENTS_YAML, "POCON-0001", "medium")}
    kind, samples = read_samples(path, concepts=concepts)
    assert kind == "eval_results"
    assert [s.recorded_status for s in samples] == ["ok", "format_error"]
    assert samples[1].format_check().reason == "missing_vision_block"
    assert samples[0].where == "results[0]"
    assert read_eval_results(path).header["valid_samples"] == 1


def test_eval_results_unknown_concept_id_is_located(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"results": [{"concept_id": "POCON-9", "raw_response": "x"}]}))
    with pytest.raises(InputError) as exc:
        read_samples(path, concepts={})
    assert "results[0].concept_id" in str(exc.value) and "POCON-9" in str(exc.value)


def test_malformed_eval_json_names_line(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{\n  "results": [\n    {"concept_id": }\n  ]\n}\n')
    with pytest.raises(InputError) as exc:
        read_samples(path)
    assert str(exc.value).startswith(f"{path}:3: malformed JSON")


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"concept": 12, "requirements_yaml": "x", "teacher_product_vision": V, "teacher_product_owner_review": R},
         "concept", "expected a string, got int"),
        ({"concept": CONCEPT, "requirements_yaml": "x", "teacher_product_vision": V, "teacher_product_owner_review": R,
          "score": "high"}, "score", "expected a number, got str"),
        ({"concept": CONCEPT, "teacher_product_vision": V, "teacher_product_owner_review": R}, "requirements_yaml", "missing"),
        ({"input": {"concept": CONCEPT, "requirements_yaml": "x"}, "output": "text"}, "output", "expected an object"),
        ({"input": {"concept": CONCEPT, "requirements_yaml": "x"}, "output": {"product_vision": V}},
         "output.product_owner_review", "missing"),
    ],
)
def test_wrong_field_types_name_file_line_field(tmp_path, row, field, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [concept_row() | {"teacher_product_vision": V, "teacher_product_owner_review": R}, row])
    with pytest.raises(InputError) as exc:
        read_samples(path)
    assert str(exc.value).startswith(f"{path}:2: {field}: ")
    assert message in str(exc.value)


def test_unknown_layout_and_non_object_lines(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}])
    with pytest.raises(InputError, match="unrecognised record layout"):
        read_samples(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(InputError, match="expected a JSON object"):
        read_samples(path)


def test_concept_records_are_not_samples_but_are_concepts(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [concept_row("POCON-0001"), concept_row("POCON-0002", "simple")])
    with pytest.raises(InputError, match="no answer to score"):
        read_samples(path)
    assert list(read_concepts(path)) == ["POCON-0001", "POCON-0002"]
    assert [c.tier for c in read_concept_list(path)] == ["medium", "simple"]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_samples(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="is a directory"):
        read_samples(tmp_path)


def test_guess_tier():
    assert guess_tier(CONCEPT) == "medium"
    assert guess_tier("A product for everyone.") is None


def test_population_stats_matches_eval_results_contract():
    stats = population_stats([0.5, 1.0])
    assert stats == {"n": 2, "mean": 0.75, "std": 0.25, "min": 0.5, "max": 1.0}
    assert population_stats([0.3])["std"] == 0.0
    assert population_stats([])["mean"] is None
