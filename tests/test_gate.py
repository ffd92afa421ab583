"""`po-tui gate`: presets, gates files, rescoring, the bootstrap interval, bad input, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.records import Concept
from engine.errors import InputError
from engine.stages.gate import PRESETS, bootstrap_ratio, load_gates, run_gate
from engine.stages.results import load_results
from tests.eval_files import CONCEPT, case, scored_cases, write_results
from tests.po_samples import REQUIREMENTS_YAML

REF_BASELINE = "inference_results/baseline_20251114_215442.json"
REF_STUDENT = "inference_results/student_20251114_220448.json"
REF_CONCEPTS = "artifacts/synthetic/product_owner/product_owner_val.jsonl"


def _gate(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["gate", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def pair(tmp_path: Path, baseline: list, student: list, **kwargs) -> tuple[Path, Path]:
    b = write_results(tmp_path, "baseline", "20251120_100000", scored_cases(baseline), **kwargs)
    s = write_results(tmp_path, "student", "20251120_110000", scored_cases(student), adapter="runs/r1/adapter", **kwargs)
    return b, s


# --- the reference files: "done when" ----------------------------------------------------------


@pytest.mark.reference
def test_reference_files_pass_seeds_and_fail_v2_closeout(reference, capsys):
    b, s = reference / REF_BASELINE, reference / REF_STUDENT
    code, out, err = _gate(capsys, b, s)
    assert code == 0, err
    assert "gate [seeds] on recorded po-v1 scores" in out
    assert "student mean / baseline mean" in out and "0.9179" in out
    assert "0.8411" in out and "0.7720" in out
    assert "verdict: PASS (3/3 criteria)" in out
    assert "paired by concept_id over 20 cases" in out
    # what the old files missed is said, not hidden
    assert "3 case(s) recorded as valid fail po-tui's format check (invalid_review_yaml 3)" in " ".join(out.split())

    code, out, _ = _gate(capsys, b, s, "--preset", "v2-closeout")
    assert code == 1
    assert "verdict: FAIL (1/5 criteria)" in out


@pytest.mark.reference
def test_reference_json_verdict(reference, capsys):
    code, out, _ = _gate(capsys, reference / REF_BASELINE, reference / REF_STUDENT, "--json")
    assert code == 0
    v = json.loads(out)
    assert v["passed"] is True and v["gates"] == "seeds" and v["metric"] == "po-v1" and v["rescored"] is False
    by_metric = {c["metric"]: c for c in v["criteria"]}
    assert by_metric["compare.ratio"]["value"] == pytest.approx(0.772025462962963 / 0.8410532407407407)
    assert by_metric["student.valid_rate"]["value"] == 1.0
    assert v["student"]["mean"] == pytest.approx(0.7720254629629629, abs=1e-12)
    assert v["student"]["format_check_errors"] == 3
    interval = v["ratio_interval"]
    assert interval["paired"] is True and interval["resamples"] == 10_000
    assert interval["low"] < interval["ratio"] < interval["high"]
    assert 0.80 < interval["low"] < 0.85 and 0.98 < interval["high"] < 1.03


@pytest.mark.reference
def test_reference_rescored_with_po_v2_judges_the_broken_reviews(reference, capsys):
    code, out, _ = _gate(
        capsys, reference / REF_BASELINE, reference / REF_STUDENT, "--rescore", "po-v2",
        "--concepts", reference / REF_CONCEPTS, "--json",
    )
    v = json.loads(out)
    assert code == 1 and v["passed"] is False and v["rescored"] is True and v["metric"] == "po-v2"
    assert v["student"]["valid"] == 17 and v["student"]["reasons"] == {"invalid_review_yaml": 3}
    by_metric = {c["metric"]: c for c in v["criteria"]}
    assert by_metric["student.valid_rate"] == {**by_metric["student.valid_rate"], "value": 0.85, "passed": False}
    assert by_metric["baseline.mean"]["value"] == pytest.approx(0.831728745791246)
    # po-v1 re-scoring reproduces the recorded scores of the 17 valid answers
    code, out, _ = _gate(
        capsys, reference / REF_BASELINE, reference / REF_STUDENT, "--rescore", "po-v1",
        "--concepts", reference / REF_CONCEPTS, "--json",
    )
    v = json.loads(out)
    assert v["baseline"]["mean"] == pytest.approx(0.8410532407407407, abs=1e-12)
    assert v["student"]["valid"] == 17


# --- presets and boundaries --------------------------------------------------------------------


def test_seeds_boundaries_pass_exactly_at_the_threshold(tmp_path, capsys):
    # valid rate 18/20 = 0.90, baseline mean 0.80, student mean 0.72 = 0.90 x baseline
    b, s = pair(tmp_path, [0.8] * 20, [0.72] * 18 + [None, None])
    code, out, err = _gate(capsys, b, s, "--json")
    v = json.loads(out)
    assert code == 0, err
    assert [c["passed"] for c in v["criteria"]] == [True, True, True]
    assert v["student"]["valid_rate"] == 0.9 and v["student"]["format_errors"] == 2
    assert v["student"]["mean_with_errors_as_zero"] == pytest.approx(0.72 * 18 / 20)


def test_seeds_fail_on_each_criterion(tmp_path, capsys):
    b, s = pair(tmp_path, [0.74] * 10, [0.74] * 8 + [None] * 2)  # valid 0.8, baseline 0.74
    code, out, _ = _gate(capsys, b, s, "--json")
    v = json.loads(out)
    assert code == 1
    assert {c["metric"]: c["passed"] for c in v["criteria"]} == {
        "student.valid_rate": False, "baseline.mean": False, "compare.ratio": True,
    }
    b, s = pair(tmp_path, [0.9] * 10, [0.8] * 10)  # ratio 0.889
    code, out, _ = _gate(capsys, b, s)
    assert code == 1 and "FAIL" in out and "0.8889" in out


def test_v2_closeout_criteria(tmp_path, capsys):
    b, s = pair(tmp_path, [0.84] * 10, [0.87] * 10)  # |delta| = 0.03 (float noise must not fail it)
    code, out, _ = _gate(capsys, b, s, "--preset", "v2-closeout", "--json")
    v = json.loads(out)
    assert code == 0, v
    assert [c["metric"] for c in v["criteria"]] == [c.metric for c in PRESETS["v2-closeout"]]
    b, s = pair(tmp_path, [0.84] * 10, [0.95] * 7 + [0.5, 0.69, None])
    code, out, _ = _gate(capsys, b, s, "--preset", "v2-closeout", "--json")
    failed = {c["metric"] for c in json.loads(out)["criteria"] if not c["passed"]}
    assert code == 1
    assert failed == {"student.std", "compare.abs_delta", "student.format_errors", "student.min"}


def test_no_valid_student_scores_fails_instead_of_crashing(tmp_path, capsys):
    b, s = pair(tmp_path, [0.8] * 4, [None] * 4)
    code, out, _ = _gate(capsys, b, s, "--json")
    v = json.loads(out)
    assert code == 1
    assert v["student"]["mean"] is None and v["ratio_interval"]["ratio"] is None
    assert {c["metric"]: c["value"] for c in v["criteria"]}["compare.ratio"] is None
    code, out, _ = _gate(capsys, b, s)
    assert code == 1 and "not computable" in out


# --- gates files -------------------------------------------------------------------------------


def test_gates_file_overrides_removes_and_adds(tmp_path, capsys):
    b, s = pair(tmp_path, [0.8] * 10, [0.78] * 10)
    gates = tmp_path / "gates.yaml"
    gates.write_text(
        "preset: v2-closeout\n"
        "student:\n"
        "  mean: '>= 0.75'      # relaxed\n"
        "  std: null            # dropped\n"
        "  median: '≥ 0.7'\n"
        "compare:\n"
        "  ratio: '> 0.95'\n",
        encoding="utf-8",
    )
    spec = load_gates(None, gates)
    assert [(c.metric, c.op, c.threshold) for c in spec.criteria] == [
        ("student.mean", ">=", 0.75), ("compare.abs_delta", "<=", 0.03), ("student.format_errors", "<=", 0.0),
        ("student.min", ">=", 0.70), ("student.median", ">=", 0.7), ("compare.ratio", ">", 0.95),
    ]
    assert spec.name == "gates.yaml (from v2-closeout)"
    code, out, _ = _gate(capsys, b, s, "--gates", gates)
    assert code == 0, out
    assert "gate [gates.yaml (from v2-closeout)]" in out and "6/6 criteria" in out
    # --preset on the command line replaces the file's preset: as the base
    assert [c.metric for c in load_gates("seeds", gates).criteria][:3] == ["student.valid_rate", "baseline.mean", "compare.ratio"]


def test_gates_file_without_preset_checks_only_what_it_says(tmp_path, capsys):
    b, s = pair(tmp_path, [0.8] * 10, [0.5] * 10)
    gates = tmp_path / "g.yaml"
    gates.write_text("baseline:\n  mean: '>= 0.75'\n", encoding="utf-8")
    code, out, _ = _gate(capsys, b, s, "--gates", gates, "--json")
    v = json.loads(out)
    assert code == 0 and [c["metric"] for c in v["criteria"]] == ["baseline.mean"]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("preset: seeds\nstudent:\n  valid_rat: '>= 0.5'\n", "g.yaml:3: student.valid_rat: unknown key (did you mean 'valid_rate'?)"),
        ("studen:\n  mean: '>= 1'\n", "g.yaml:1: studen: unknown key (did you mean 'student'?)"),
        ("student:\n  mean: 0.8\n", "g.yaml:2: student.mean: expected 'OP NUMBER'"),
        ("student:\n  mean: '=> 0.8'\n", "student.mean: expected 'OP NUMBER'"),
        ("preset: sedes\n", "g.yaml:1: preset: Input should be 'seeds', 'v2-closeout', 'demo', 'grounded' or 'none'"),
        ("student: [1\n", "g.yaml:2: invalid YAML"),
        ("- a\n- b\n", "g.yaml:1: expected a mapping at the top level, got list"),
        ("{}\n", "g.yaml: defines no criteria"),
        ("preset: seeds\ncompare:\n  ratio: null\nstudent:\n  valid_rate: null\nbaseline:\n  mean: null\n", "defines no criteria"),
    ],
)
def test_bad_gates_files_are_one_line_errors(tmp_path, capsys, text, expect):
    b, s = pair(tmp_path, [0.8] * 3, [0.8] * 3)
    gates = tmp_path / "g.yaml"
    gates.write_text(text, encoding="utf-8")
    code, out, err = _gate(capsys, b, s, "--gates", gates)
    assert code == 2 and out == ""
    assert expect in err and err.count("\n") == 1 and "Traceback" not in err


def test_gates_file_missing(tmp_path, capsys):
    b, s = pair(tmp_path, [0.8] * 3, [0.8] * 3)
    code, _, err = _gate(capsys, b, s, "--gates", tmp_path / "nope.yaml")
    assert code == 2 and "nope.yaml: no such file" in err


# --- rescoring ---------------------------------------------------------------------------------


def concepts_file(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "concepts.jsonl"
    path.write_text(
        "".join(json.dumps(Concept(CONCEPT, REQUIREMENTS_YAML, cid, "simple").to_dict()) + "\n" for cid in ids),
        encoding="utf-8",
    )
    return path


def test_rescore_judges_answers_the_file_marked_ok(tmp_path, capsys):
    cases = [case(f"C{i}", 0.5, legacy=True) for i in range(4)] + [case("C4", 0.5, legacy=True, broken=True)]
    b = write_results(tmp_path, "baseline", "20251120_100000", [case(f"C{i}", 0.6, legacy=True) for i in range(5)], legacy=True)
    s = write_results(tmp_path, "student", "20251120_110000", cases, legacy=True)
    # recorded: all five "ok" at 0.5, the broken REVIEW counted as the file says
    recorded = run_gate(b, s)
    assert recorded.student.valid == 5 and recorded.student.mean == pytest.approx(0.5)
    assert recorded.student.format_check_errors == 1
    assert any("recorded as valid fail po-tui's format check (invalid_review_yaml 1)" in n for n in recorded.notes)
    # re-scored: the full answers score 1.0 with po-v2, the broken one is a format_error
    concepts = concepts_file(tmp_path, [f"C{i}" for i in range(5)])
    v = run_gate(b, s, rescore="po-v2", concepts_path=concepts)
    assert v.rescored and v.metric == "po-v2"
    assert v.student.valid == 4 and v.student.mean == pytest.approx(1.0)
    assert v.student.reasons == {"invalid_review_yaml": 1}
    assert v.student.mean_with_errors_as_zero == pytest.approx(0.8)
    assert not v.passed  # valid rate 0.8 < 0.90
    # new-format cases carry their concept: no --concepts needed
    nb, ns = pair(tmp_path / "new", [0.1] * 3, [0.1, None, 0.1])
    v = run_gate(nb, ns, rescore="po-v1")
    assert v.student.valid == 2 and v.baseline.mean == pytest.approx(118 / 120)


def test_rescore_needs_concepts_for_old_files(tmp_path, capsys):
    b = write_results(tmp_path, "baseline", "20251120_100000", [case("C1", 0.6, legacy=True)], legacy=True)
    s = write_results(tmp_path, "student", "20251120_110000", [case("C1", 0.6, legacy=True)], legacy=True)
    code, _, err = _gate(capsys, b, s, "--rescore", "po-v2")
    assert code == 2 and "results[0].concept_id: no requirements to re-score against: pass --concepts FILE" in err
    code, _, err = _gate(capsys, b, s, "--rescore", "po-v2", "--concepts", concepts_file(tmp_path, ["C9"]))
    assert code == 2 and "results[0].concept_id: 'C1' is not in the --concepts file" in err
    code, _, err = _gate(capsys, b, s, "--concepts", concepts_file(tmp_path, ["C1"]))
    assert code == 2 and "--concepts is only used with --rescore" in err


# --- the bootstrap -----------------------------------------------------------------------------


def test_bootstrap_is_paired_only_on_the_same_cases_and_is_seeded(tmp_path):
    b, s = pair(tmp_path, [0.6, 0.7, 0.8, 0.9, 0.75], [0.6, 0.7, 0.8, 0.9, 0.75])
    student, baseline = load_results(s), load_results(b)
    paired = bootstrap_ratio(student, baseline, resamples=2000, seed=1)
    # identical answers, paired: every resample has ratio 1
    assert paired.paired and paired.low == pytest.approx(1.0) and paired.high == pytest.approx(1.0)
    # the same scores under other ids: independent resampling, a real spread around 1
    other = write_results(tmp_path / "x", "student", "20251120_120000",
                          scored_cases([0.6, 0.7, 0.8, 0.9, 0.75], prefix="OTHER"))
    indep = bootstrap_ratio(load_results(other), baseline, resamples=2000, seed=1)
    assert not indep.paired and "0 concept_ids shared" in indep.pairing_note
    assert indep.low < 0.95 < 1.05 < indep.high
    again = bootstrap_ratio(load_results(other), baseline, resamples=2000, seed=1)
    assert (again.low, again.high) == (indep.low, indep.high)
    assert bootstrap_ratio(load_results(other), baseline, resamples=2000, seed=2).low != indep.low


# --- bad input and untrusted text --------------------------------------------------------------


def test_bad_results_files(tmp_path, capsys):
    good = write_results(tmp_path, "baseline", "20251120_100000", scored_cases([0.8]))
    bad_json = tmp_path / "student_1.json"
    bad_json.write_text('{"results": [\n  {"score": 0.5,}\n]}\n', encoding="utf-8")
    code, out, err = _gate(capsys, good, bad_json)
    assert code == 2 and out == "" and f"{bad_json}:2: malformed JSON" in err
    wrong = tmp_path / "student_2.json"
    wrong.write_text(json.dumps({"results": [{"concept_id": "C1", "status": "ok", "score": "0.5"}]}), encoding="utf-8")
    code, _, err = _gate(capsys, good, wrong)
    assert code == 2 and "results[0].score: expected a number, got str" in err
    no_list = tmp_path / "student_3.json"
    no_list.write_text(json.dumps({"results": {"a": 1}}), encoding="utf-8")
    code, _, err = _gate(capsys, good, no_list)
    assert code == 2 and "results: expected a list, got dict" in err
    no_score = tmp_path / "student_4.json"
    no_score.write_text(json.dumps({"results": [{"concept_id": "C1", "status": "ok"}]}), encoding="utf-8")
    code, _, err = _gate(capsys, good, no_score)
    assert code == 2 and "results[0].score: missing: a case not marked format_error needs a score" in err
    code, _, err = _gate(capsys, good, tmp_path)
    assert code == 2 and "is a directory" in err
    code, _, err = _gate(capsys, good, tmp_path / "none.json")
    assert code == 2 and "none.json: no such file" in err


def test_different_recorded_metrics_are_refused(tmp_path, capsys):
    b = write_results(tmp_path, "baseline", "20251120_100000", scored_cases([0.8]), metric="po-v1")
    s = write_results(tmp_path, "student", "20251120_110000", scored_cases([0.8]), metric="po-v2")
    code, _, err = _gate(capsys, b, s)
    assert code == 2
    assert "different metrics" in err and "pass --rescore METRIC --concepts FILE" in err
    with pytest.raises(InputError):
        run_gate(b, s)


def test_text_from_files_is_printed_inert(tmp_path, capsys):
    evil = "[bold red]Qwen[/] \x1b]0;pwned\x07\x1b[31mred"
    b = write_results(tmp_path, "baseline", "20251120_100000", scored_cases([0.8] * 3), model=evil)
    s = write_results(tmp_path, "student", "20251120_110000", scored_cases([0.8] * 3), model=evil, adapter="[link=x]a[/link]")
    code, out, _ = _gate(capsys, b, s)
    assert code == 0
    assert "[bold red]Qwen[/]" in out and "[link=x]a[/link]" in out
    assert "\x1b" not in out and "\x07" not in out and "pwned" not in out


# --- the demo preset: the teacher reference and the constant-answer control --------------------


def demo_files(tmp_path: Path, student: dict, baseline: dict | None = None) -> tuple[Path, Path, Path]:
    """(baseline, student, teacher) results on four concepts with their own products and ids."""
    from tests.test_grounding import raw_cases, specific_answers

    teacher = specific_answers()
    baseline = baseline if baseline is not None else {cid: (None, None) for cid in teacher}  # untrained: no blocks
    return (
        write_results(tmp_path, "baseline", "20251120_100000", raw_cases(baseline)),
        write_results(tmp_path, "student", "20251120_110000", raw_cases(student), adapter="student"),
        write_results(tmp_path, "teacher", "20251120_090000", raw_cases(teacher), model="synthetic"),
    )


def test_demo_preset_passes_a_trained_student_and_grounded_fails_one_that_copies_an_answer(tmp_path, capsys):
    from tests.test_grounding import specific_answers

    answers = specific_answers()
    b, s, t = demo_files(tmp_path / "good", answers)
    code, out, err = _gate(capsys, b, s, "--teacher", t, "--preset", "grounded", "--json")
    v = json.loads(out)
    assert code == 0, err
    values = {c["metric"]: c["value"] for c in v["criteria"]}
    assert list(values) == ["student.valid_rate", "compare.teacher_ratio", "compare.delta_errors_as_zero",
                            "compare.grounding_margin"]
    assert values["compare.teacher_ratio"] == pytest.approx(1.0)
    # The baseline has no valid answer: its mean is not computable, but with format errors as 0 it is 0.
    assert v["baseline"]["mean"] is None and values["compare.delta_errors_as_zero"] == pytest.approx(v["student"]["mean"])
    assert values["compare.grounding_margin"] > 0.7
    ground = v["grounding"]
    assert ground["sides"]["constant"]["name_match"] == pytest.approx(0.25) and ground["constant"]["concept_id"] == "POCON-0001"
    assert v["teacher"]["file"] == str(t) and v["purpose"].startswith("distillation with grounded answers")
    code, out, _ = _gate(capsys, b, s, "--teacher", t, "--preset", "demo")
    assert code == 0 and "grounding (format errors as 0)" in out and "constant answer" in out
    assert "the demo's proof of distillation" in out and "verdict: PASS (3/3 criteria)" in out
    assert "not gated" in out  # the demo's verdict says what it leaves out
    # The negative control: one good answer copied to every concept is valid and scores well. The demo
    # preset (format and scores) passes it; the grounded preset fails it on grounding alone.
    copy = {cid: answers["POCON-0002"] for cid in answers}
    b, s, t = demo_files(tmp_path / "copy", copy)
    code, out, _ = _gate(capsys, b, s, "--teacher", t, "--preset", "demo", "--json")
    assert code == 0 and json.loads(out)["student"]["valid_rate"] == 1.0
    code, out, _ = _gate(capsys, b, s, "--teacher", t, "--preset", "grounded", "--json")
    v = json.loads(out)
    failed = {c["metric"]: c["value"] for c in v["criteria"] if not c["passed"]}
    assert code == 1 and v["student"]["valid_rate"] == 1.0
    assert list(failed) == ["compare.grounding_margin"] and failed["compare.grounding_margin"] == pytest.approx(0.0)


def test_demo_preset_without_the_teacher_says_so_in_one_line(tmp_path, capsys):
    from tests.test_grounding import specific_answers

    b, s, _t = demo_files(tmp_path, specific_answers())
    code, out, err = _gate(capsys, b, s, "--preset", "demo")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "gate demo compares the student with the teacher (compare.teacher_ratio)" in err and "--teacher FILE" in err
    gates = tmp_path / "g.yaml"
    gates.write_text("teacher:\n  valid_rate: '>= 0.9'\n", encoding="utf-8")
    code, _, err = _gate(capsys, b, s, "--gates", gates)
    assert code == 2 and "(teacher.valid_rate) but there are no teacher results" in err
    # Criteria that do not need the teacher are judged without it; with no teacher answers at all
    # (no teacher file, no reference answers in the cases) there is no constant answer: FAIL, and why.
    gates.write_text("preset: grounded\ncompare:\n  teacher_ratio: null\n", encoding="utf-8")
    code, out, _ = _gate(capsys, b, s, "--gates", gates, "--json")
    v = json.loads(out)
    assert code == 1 and [c["passed"] for c in v["criteria"]] == [True, True, False]
    assert v["criteria"][2]["value"] is None and any("no constant answer: no teacher answers" in n for n in v["notes"])


def test_gates_files_name_the_teacher_the_constant_and_the_grounding(tmp_path, capsys):
    from tests.test_grounding import specific_answers

    answers = specific_answers()
    b, s, t = demo_files(tmp_path, answers, baseline=answers)
    gates = tmp_path / "g.yaml"
    gates.write_text(
        "teacher:\n  valid_rate: '>= 1'\n  grounding: '>= 0.99'\n"
        "constant:\n  name_match: '<= 0.25'\n  id_precision: '< 0.5'\n  mean_with_errors_as_zero: '< 0.9'\n"
        "student:\n  id_coverage: '== 1'\n"
        "compare:\n  teacher_ratio: '>= 0.99'\n  constant_delta: '> 0.05'\n  delta_errors_as_zero: '== 0'\n",
        encoding="utf-8",
    )
    spec = load_gates(None, gates)
    assert spec.needs_teacher and spec.purpose is None
    assert [c.label for c in spec.criteria][1:4] == ["teacher valid rate", "teacher grounding",
                                                      "constant answer mean with errors as zero"]
    code, out, err = _gate(capsys, b, s, "--teacher", t, "--gates", gates, "--json")
    v = json.loads(out)
    assert code == 0, [c for c in v["criteria"] if not c["passed"]]
    assert len(v["criteria"]) == 9
    # A file overriding the demo preset no longer claims the preset's purpose.
    gates.write_text("preset: demo\n", encoding="utf-8")
    assert load_gates(None, gates).purpose == PRESETS_PURPOSE_DEMO
    gates.write_text("preset: demo\nstudent:\n  valid_rate: '>= 0.5'\n", encoding="utf-8")
    assert load_gates(None, gates).purpose is None


PRESETS_PURPOSE_DEMO = load_gates("demo").purpose


def test_a_pipeline_asking_for_the_demo_gate_needs_the_teacher_reference(tmp_path):
    from engine.pipeline.config import load_config

    config = tmp_path / "config.yaml"
    config.write_text("eval:\n  max_samples: 0\ngate:\n  preset: demo\n", encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_config(config)
    assert str(exc.value).startswith(f"{config}:4: gate.preset: preset demo compares the student with the teacher")
    config.write_text("eval:\n  teacher_reference: true\ngate:\n  preset: demo\n", encoding="utf-8")
    assert load_config(config).gate.preset == "demo"


def test_a_bad_teacher_file_is_one_line(tmp_path, capsys):
    from tests.test_grounding import specific_answers

    b, s, t = demo_files(tmp_path, specific_answers())
    code, out, err = _gate(capsys, b, s, "--teacher", tmp_path / "none.json", "--preset", "demo")
    assert code == 2 and out == "" and "none.json: no such file" in err and err.count("\n") == 1
    t.write_bytes(b'{"results": [\n  {"score": 0.5,}\n]}\n')
    code, out, err = _gate(capsys, b, s, "--teacher", t)
    assert code == 2 and out == "" and f"{t}:2: malformed JSON" in err and "Traceback" not in err
    other = write_results(tmp_path / "v1", "teacher", "20251120_090000", scored_cases([0.9] * 4), metric="po-v1")
    code, _, err = _gate(capsys, b, s, "--teacher", other)
    assert code == 2 and "different metrics" in err
