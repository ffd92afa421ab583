"""`po-tui eval` on the tiny Qwen2 model (baseline and a LoRA student), the synthetic teacher and
the real google-genai client against the fake Gemini server.

The tiny model does not learn the two-block format in a few CPU steps, so its answers are format
errors: these tests check what the stage guarantees -- batched greedy decoding equal to one at a
time, retries with their reasons, the results schema, resume without regenerating, one-line
errors on bad input, secrets kept out of every file -- never the quality of the answers.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.prompts import render_student_prompt
from engine.core.records import read_eval_results
from engine.errors import InputError
from engine.providers.po_writer import write_answer
from engine.runlog.tail import read_events
from engine.stages.concepts import generate_concepts
from engine.stages.eval.dataset import read_cases
from engine.stages.eval.results import RESULTS_FORMAT, summarize
from engine.stages.results import load_results
from engine.store.atomic import atomic_write_jsonl

ROOT = Path(__file__).resolve().parents[1]
KEY = "AIzaFAKE-eval-do-not-leak-51c0ffee"
RESULTS_NAME = re.compile(r"^(?P<tag>.+)_(\d{8}_\d{6})\.json$")
FORMATS_FIELDS = ("model", "adapter_path", "timestamp", "dataset", "tag", "metric", "total_samples", "valid_samples",
                  "failed_samples", "metrics", "results")
CASE_FIELDS = ("concept_id", "tier", "status", "attempts", "score", "vision_yaml", "review_yaml", "raw_response", "error",
               "format_error", "error_detail", "review_status", "breakdown", "partial_score", "latency_s", "output_tokens",
               "tokens_per_s", "finish_reason", "attempt_log", "reference", "concept", "requirements_yaml")
# Fast local settings: short answers, two retries.
FAST = ["--max-new-tokens", "32", "--retries", "2"]

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # the stage exits 1 with a message when provider calls failed
            rc = exc.code if isinstance(exc.code, int) else 1
            err.write(str(exc.code) + "\n")
    return rc, out.getvalue(), err.getvalue()


def results_file(out: Path, tag: str) -> Path:
    files = sorted(p for p in out.glob(f"{tag}_*.json") if RESULTS_NAME.match(p.name))
    assert len(files) == 1, files
    return files[0]


def case_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- fixtures (module scope: one tiny model, one trained adapter) --------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval")


@pytest.fixture(scope="module")
def tiny(work) -> Path:
    from engine.stages.tiny_model import make_tiny_model

    return make_tiny_model(work / "tiny", seed=0)


@pytest.fixture(scope="module")
def concepts(work) -> Path:
    return atomic_write_jsonl(work / "concepts.jsonl", generate_concepts(6, 9))


@pytest.fixture(scope="module")
def adapter(work, tiny) -> Path:
    """A real `po-tui train` output (adapter, tokenizer, po_tui_train.json, model card)."""
    rows = []
    for row in generate_concepts(6, 5):
        answer = write_answer(row["concept"], row["requirements_yaml"], random.Random(row["concept_id"]))
        rows.append({"prompt": render_student_prompt(row["concept"], row["requirements_yaml"]), "response": answer})
    data = atomic_write_jsonl(work / "train.jsonl", rows)
    out = work / "adapter"
    rc, _, err = run_cli(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(out), "--lora-r", "8",
                          "--lora-alpha", "16", "--lr", "1e-2", "--batch-size", "2", "--max-steps", "3"])
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def student(work, tiny, adapter, concepts) -> tuple[Path, dict, str]:
    """The student evaluated with batching, reporting into a run directory."""
    out, run_dir = work / "student", work / "run"
    rc, stdout, stderr = run_cli([
        "eval", "--dataset", str(concepts), "--base-model", str(tiny), "--adapter", str(adapter), "--tag", "student",
        "--out", str(out), "--batch-size", "4", *FAST, "--run-dir", str(run_dir), "--job", "eval-student",
    ])
    assert rc == 0, stderr
    path = results_file(out, "student")
    assert stdout.strip() == str(path)
    return path, json.loads(path.read_text()), stderr


# --- batching ----------------------------------------------------------------------------------


def test_batched_greedy_decoding_equals_one_at_a_time_token_for_token(tiny, adapter, concepts):
    from engine.stages.eval.generate import ASSISTANT, USER, Turn
    from engine.stages.eval.local import LocalModel, plan_local
    from engine.stages.eval.settings import EvalSettings

    s = EvalSettings(dataset=str(concepts), out="unused", tag="t", base_model=str(tiny), adapter=str(adapter))
    model = LocalModel.load(s, plan_local(s))
    assert type(model.model).__name__ == "PeftModelForCausalLM"
    cases = read_cases(concepts, 0)
    prompts = [model.encode((Turn(USER, render_student_prompt(c.concept.concept, c.concept.requirements_yaml)),)) for c in cases]
    # A retry conversation (prompt, answer, instruction) through the chat template: much longer.
    prompts.append(model.encode((Turn(USER, "CONCEPT:\nx"), Turn(ASSISTANT, "no blocks"), Turn(USER, "Answer again."))))
    assert len({len(p) for p in prompts}) > 3  # left padding really happens
    config = model.generation_config(max_new_tokens=40, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
    batched = model.generate_ids(prompts, config)
    alone = [model.generate_ids([p], config)[0] for p in prompts]
    assert [o.ids for o in batched] == [o.ids for o in alone]
    assert [o.stopped for o in batched] == [o.stopped for o in alone]
    assert all(o.ids for o in batched)


# --- the student and the baseline --------------------------------------------------------------


def test_student_eval_with_batching_writes_the_results_schema(student, concepts, adapter, work):
    path, doc, stderr = student
    for field in FORMATS_FIELDS:
        assert field in doc
    assert doc["tag"] == "student" and doc["metric"] == "po-v2" and doc["adapter_path"] == str(adapter.resolve())
    assert doc["total_samples"] == 6 and doc["valid_samples"] + doc["failed_samples"] == 6
    ids = [json.loads(line)["concept_id"] for line in concepts.read_text().splitlines()]
    assert [r["concept_id"] for r in doc["results"]] == ids  # dataset order, not the length-sorted order
    po = doc["po_tui"]
    assert po["format"] == "po-tui-eval/1" and po["provider"] == "local"
    assert po["generation"]["batch_size"] == 4 and po["generation"]["chat_template"] is True
    assert po["generation"]["greedy"] is True and po["generation"]["max_new_tokens"] == 32
    assert po["train"] == json.loads((adapter / "po_tui_train.json").read_text())
    assert po["speed"]["s_per_sample"] > 0 and po["speed"]["output_tokens_max"] <= 33
    for r in doc["results"]:
        for field in CASE_FIELDS:
            assert field in r, field
        # The tiny model never writes the format: three attempts, each with its reason.
        assert r["status"] == "format_error" and r["score"] is None and r["error"]
        assert r["attempts"] == 3 and [a["attempt"] for a in r["attempt_log"]] == [1, 2, 3]
        assert all(a["reason"] for a in r["attempt_log"]) and r["format_error"] == r["attempt_log"][-1]["reason"]
        assert isinstance(r["partial_score"], float) and set(r["breakdown"]) == {"schema", "vision", "alignment", "specificity"}
        # A retry is the conversation so far plus the instruction: its prompt is longer.
        inputs = [a["input_tokens"] for a in r["attempt_log"]]
        assert inputs[0] < inputs[1] < inputs[2]
        # Retried cases are batched together too.
        assert all(a["batch_size"] > 1 for a in r["attempt_log"])
        assert r["reference"] is None and r["concept"] and r["requirements_yaml"]
    m = doc["metrics"]
    assert m["valid_rate"] == 0.0 and m["mean_with_errors_as_zero"] == 0.0 and m["mean"] is None and m["n"] == 6
    assert "eval [student] 6/6" in stderr and "6 cases, 0 valid" in stderr
    # Same reader for our files and the replaced system's (the gate's, the report's, the cockpit's).
    loaded = load_results(path)
    assert loaded.po_tui["format"] == RESULTS_FORMAT and len(loaded.cases) == 6
    assert not any(c.valid for c in loaded.cases) and all(c.reason for c in loaded.cases)


def test_student_eval_reports_events_and_updates_the_model_card(student, adapter, work):
    path, doc, _ = student
    events = read_events(work / "run" / "eval-student.events.jsonl")
    cases = [e["data"] for e in events if e["type"] == "eval_case"]
    assert sorted(c["concept_id"] for c in cases) == sorted(r["concept_id"] for r in doc["results"])
    assert all(c["status"] == "format_error" and c["attempts"] == 3 and c["format_error"] for c in cases)
    progress = [e["data"] for e in events if e["type"] == "progress"]
    assert progress[-1]["done"] == 6 and progress[-1]["total"] == 6 and progress[-1]["unit"] == "cases"
    finished = events[-1]
    assert finished["type"] == "job_finished" and finished["data"]["state"] == "succeeded"
    summary = finished["data"]["summary"]
    assert summary["n"] == 6 and summary["valid"] == 0 and summary["valid_rate"] == 0.0
    assert summary["mean_with_errors_as_zero"] == 0.0 and summary["results"] == str(path) and "mean" in summary
    assert any(e["type"] == "artifact" and e["data"]["kind"] == "eval_results" for e in events)
    info = json.loads((adapter / "po_tui_eval.json").read_text())
    assert info["cases"] == 6 and info["results"] == str(path) and info["valid_rate"] == 0.0
    card = (adapter / "README.md").read_text()
    assert "Not evaluated yet" not in card and "- cases: 6" in card and str(path) in card


@pytest.fixture(scope="module")
def baselines(tiny, concepts, work) -> dict[str, tuple[Path, dict]]:
    """The base model alone, at batch size 8 and 1."""
    runs = {}
    for batch in ("8", "1"):
        out = work / f"baseline-b{batch}"
        rc, _, err = run_cli(["eval", "--dataset", str(concepts), "--base-model", str(tiny), "--tag", "baseline",
                              "--out", str(out), "--batch-size", batch, *FAST])
        assert rc == 0, err
        runs[batch] = out, json.loads(results_file(out, "baseline").read_text())
    return runs


def test_baseline_greedy_answers_do_not_depend_on_the_batch_size(baselines, tiny):
    answers = {}
    for batch, (_, doc) in baselines.items():
        assert doc["adapter_path"] is None and doc["po_tui"]["train"] is None
        answers[batch] = [(r["raw_response"], r["attempts"], r["output_tokens"]) for r in doc["results"]]
        sizes = {a["batch_size"] for r in doc["results"] for a in r["attempt_log"]}
        assert sizes == ({1} if batch == "1" else {6})
    assert answers["8"] == answers["1"]
    assert not (tiny / "po_tui_eval.json").exists()


def test_sampling_is_reproducible_per_seed_and_4bit_loads_on_cpu(tiny, concepts, work):
    pytest.importorskip("bitsandbytes")
    runs = {}
    for name, extra in (("a", []), ("b", []), ("c", ["--seed", "7"]), ("q", ["--load-4bit"])):
        out = work / f"sample-{name}"
        rc, _, err = run_cli(["eval", "--dataset", str(concepts), "--base-model", str(tiny), "--tag", "s", "--out", str(out),
                              "--max-samples", "3", "--retries", "0", "--max-new-tokens", "24", "--temperature", "1.5",
                              "--top-p", "0.95", *extra])
        assert rc == 0, err
        runs[name] = json.loads(results_file(out, "s").read_text())
    texts = {k: [r["raw_response"] for r in d["results"]] for k, d in runs.items()}
    assert texts["a"] == texts["b"] and texts["a"] != texts["c"]
    g = runs["a"]["po_tui"]["generation"]
    assert g["greedy"] is False and g["temperature"] == 1.5 and g["top_p"] == 0.95 and g["seed"] == 42
    assert runs["q"]["po_tui"]["generation"]["load_4bit"] is True and len(runs["q"]["results"]) == 3


# --- resume --------------------------------------------------------------------------------------


def test_resume_keeps_finished_cases_and_replays_stored_answers(tiny, adapter, concepts, student, work):
    """A partial cases file (as a kill leaves it) is continued, not regenerated."""
    _, full, _ = student
    source = work / "student" / "student.cases.jsonl"
    rows = case_rows(source)
    header = rows[0]
    case0 = next(r for r in rows if r["type"] == "case" and r["index"] == 0)
    case0["result"]["raw_response"] = "STORED-NOT-REGENERATED"
    target = next(c for c in read_cases(concepts, 0) if c.index == 2)
    valid = write_answer(target.concept.concept, target.concept.requirements_yaml, random.Random(2))
    stored_attempt = {"type": "attempt", "index": 2, "concept_id": target.concept_id, "attempt": 1, "text": valid,
                      "finish_reason": "STOP", "output_tokens": 500, "input_tokens": 700, "latency_s": 1.0,
                      "wall_share_s": 0.25, "batch_size": 4, "reason": None, "detail": None}
    out = work / "resumed"
    out.mkdir()
    partial = out / "student.cases.jsonl"
    body = "".join(json.dumps(r) + "\n" for r in (header, case0, stored_attempt))
    partial.write_text(body + '{"type": "attempt", "index": 3, "te')  # a torn last line, as SIGKILL leaves it
    argv = ["eval", "--dataset", str(concepts), "--base-model", str(tiny), "--adapter", str(adapter), "--tag", "student",
            "--out", str(out), "--batch-size", "2", *FAST]  # another batch size: greedy answers do not change
    rc, _, err = run_cli(argv)
    assert rc == 0, err
    assert "resuming" in err and "1/6 cases already evaluated" in err and "torn last line" in err
    doc = json.loads(results_file(out, "student").read_text())
    assert doc["timestamp"] == header["timestamp"]  # the run's file name is kept across segments
    results = doc["results"]
    assert len(results) == 6 and [r["index"] for r in results] == list(range(6))
    assert results[0]["raw_response"] == "STORED-NOT-REGENERATED"
    assert results[2]["status"] == "ok" and results[2]["raw_response"] == valid and results[2]["attempts"] == 1
    assert results[2]["score"] > 0.5 and doc["valid_samples"] == 1
    assert doc["po_tui"]["resumed"] is True and doc["po_tui"]["replayed_attempts"] == 1
    for i in (1, 3, 4, 5):  # the others were generated, and match the uninterrupted run
        assert results[i]["raw_response"] == full["results"][i]["raw_response"]
    events = read_events(out / "student.events.jsonl")
    assert sorted(e["data"]["index"] for e in events if e["type"] == "eval_case") == [1, 2, 3, 4, 5]
    assert list(out.glob("student.cases.jsonl.torn-*"))
    # Everything finished: a rerun writes the same results file again without loading the model.
    before = results_file(out, "student")
    rc, _, err = run_cli(argv)
    assert rc == 0 and "6/6 cases already evaluated" in err and "loading" not in err
    assert results_file(out, "student") == before


def test_resume_refuses_other_settings_and_restart_starts_over(tiny, concepts, baselines):
    out = baselines["8"][0]
    cases = out / "baseline.cases.jsonl"
    before = cases.read_bytes()
    files = sorted(p.name for p in out.iterdir())
    rc, stdout, err = run_cli(["eval", "--dataset", str(concepts), "--base-model", str(tiny), "--tag", "baseline",
                               "--out", str(out), "--max-new-tokens", "16", "--retries", "2"])
    assert rc == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "max_new_tokens 32 -> 16" in err and "--restart" in err and str(cases) in err
    assert cases.read_bytes() == before and sorted(p.name for p in out.iterdir()) == files
    rc, _, err = run_cli(["eval", "--dataset", str(concepts), "--base-model", str(tiny), "--tag", "baseline",
                          "--out", str(out), "--max-new-tokens", "16", "--retries", "0", "--restart"])
    assert rc == 0, err
    assert "moved to" in err and len(list(out.glob("baseline.cases.jsonl.replaced-*"))) == 1
    rows = case_rows(cases)
    assert rows[0]["type"] == "header" and rows[0]["fingerprint"]["max_new_tokens"] == 16
    assert sum(r["type"] == "case" for r in rows) == 6 and all(r["result"]["attempts"] == 1 for r in rows if r["type"] == "case")


def _synthetic_cmd(concepts: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--dataset", str(concepts), "--provider", "synthetic", "--tag", "teacher", "--out", str(out),
            "--max-samples", "0", *extra]


def test_sigkill_mid_run_then_rerun_finishes_only_the_rest(tmp_path):
    concepts = atomic_write_jsonl(tmp_path / "concepts.jsonl", generate_concepts(12, 4))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "engine", *_synthetic_cmd(concepts, out, "--concurrency", "1", "--synthetic-latency", "0.15")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    cases = out / "teacher.cases.jsonl"
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if cases.exists() and sum('"type":"case"' in line for line in cases.read_text().splitlines()) >= 3:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    done = [r for r in case_rows(cases) if r["type"] == "case"]
    assert 3 <= len(done) < 12 and not list(out.glob("teacher_*.json"))
    rc, _, err = run_cli(_synthetic_cmd(concepts, out, "--concurrency", "4", "--synthetic-latency", "0.15"))
    assert rc == 0, err
    doc = json.loads(results_file(out, "teacher").read_text())
    assert doc["total_samples"] == 12 and [r["index"] for r in doc["results"]] == list(range(12))
    for row in done:
        assert doc["results"][row["index"]] == row["result"]  # kept, not generated again
    events = read_events(out / "teacher.events.jsonl")
    last_start = max(i for i, e in enumerate(events) if e["type"] == "job_started")
    regenerated = [e["data"]["index"] for e in events[last_start:] if e["type"] == "eval_case"]
    assert sorted(regenerated) == sorted(set(range(12)) - {r["index"] for r in done})


# --- providers -----------------------------------------------------------------------------------


def test_synthetic_provider_on_teacher_records_with_references(tmp_path):
    """prep's val.jsonl layout (teacher records): the reference answer rides along, scored alike."""
    rows = []
    for row in generate_concepts(8, 21):
        answer = write_answer(row["concept"], row["requirements_yaml"], random.Random(row["concept_id"]))
        vision = answer.split("```yaml VISION\n")[1].split("\n```")[0]
        review = answer.split("```yaml REVIEW\n")[1].split("\n```")[0]
        rows.append({**{k: row[k] for k in ("concept_id", "tier", "concept", "requirements_yaml")},
                     "teacher_product_vision": vision, "teacher_product_owner_review": review, "score": 0.9,
                     "metric": "po-v2", "metadata": {}})
    dataset = atomic_write_jsonl(tmp_path / "val.jsonl", rows)
    docs = []
    for name in ("a", "b"):
        out = tmp_path / name
        rc, _, err = run_cli(_synthetic_cmd(dataset, out, "--synthetic-defect-rate", "0.6", "--synthetic-fix-rate", "1"))
        assert rc == 0, err
        docs.append(json.loads(results_file(out, "teacher").read_text()))
    doc = docs[0]
    assert [r["raw_response"] for r in doc["results"]] == [r["raw_response"] for r in docs[1]["results"]]  # deterministic
    assert doc["model"] == "synthetic-po-1" and doc["adapter_path"] is None and doc["po_tui"]["provider"] == "synthetic"
    assert doc["po_tui"]["generation"]["system_prompt"] == "teacher" and doc["po_tui"]["generation"]["concurrency"] == 4
    retried = [r for r in doc["results"] if r["attempts"] > 1]
    assert retried, "a defect rate of 0.6 should force some retries"
    for r in retried:
        assert r["attempt_log"][0]["reason"] and r["status"] == "ok"  # fix rate 1: the retry fixes it
    ok = [r for r in doc["results"] if r["status"] == "ok"]
    assert ok and all(0 < r["score"] <= 1 and r["score"] == r["partial_score"] for r in ok)
    stats = summarize(doc["results"])
    assert doc["metrics"]["mean"] == pytest.approx(stats["mean"]) and doc["metrics"]["valid"] == len(ok)
    for r, row in zip(doc["results"], rows, strict=True):
        assert r["concept_id"] == row["concept_id"]
        assert r["reference"]["vision_yaml"] == row["teacher_product_vision"] and r["reference"]["valid"] is True
        assert 0 < r["reference"]["score"] <= 1 and r["reference"]["recorded_score"] == 0.9


def test_gemini_through_the_fake_server_retries_and_never_leaks_the_key(tmp_path, concepts, monkeypatch):
    from tests.fakes.llm_servers import FakeGemini, error, ok
    from tests.fakes.po_responder import po_responder

    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "out"
    with FakeGemini(po_responder, script=[error(429, retry_after="0"), ok("Sure! Here is my answer, no blocks.")]) as server:
        rc, stdout, err = run_cli(["eval", "--dataset", str(concepts), "--provider", "gemini", "--model", "gemini-2.5-flash",
                                   "--base-url", server.url, "--tag", "gemini", "--out", str(out), "--concurrency", "1",
                                   "--backoff-base", "0.01", "--max-samples", "3"])
        requests = list(server.requests)
    assert rc == 0, err
    doc = json.loads(results_file(out, "gemini").read_text())
    first = doc["results"][0]
    assert first["attempts"] == 2 and first["attempt_log"][0]["reason"] == "missing_vision_block" and first["status"] == "ok"
    assert [r["status"] for r in doc["results"]] == ["ok", "ok", "ok"] and doc["model"] == "gemini-2.5-flash"
    assert len(requests) == 5  # 429, the answer without blocks, two more cases, the retry
    retry = requests[4].body  # the retries come after the first round
    assert [c["role"] for c in retry["contents"]] == ["user", "model", "user"]
    assert "VISION block was missing" in retry["contents"][2]["parts"][0]["text"]
    assert requests[0].headers["x-goog-api-key"] == KEY
    errors = [e["data"] for e in read_events(out / "gemini.events.jsonl") if e["type"] == "provider_error"]
    assert [e["kind"] for e in errors] == ["rate_limited"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    assert KEY not in stdout + err


def test_provider_calls_that_keep_failing_leave_their_cases_for_a_rerun(tmp_path, concepts, monkeypatch):
    from tests.fakes.llm_servers import FakeGemini, error
    from tests.fakes.po_responder import po_responder

    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "out"
    argv = ["eval", "--dataset", str(concepts), "--provider", "gemini", "--base-url", "", "--tag", "g", "--out", str(out),
            "--concurrency", "1", "--backoff-base", "0.01", "--api-retries", "1", "--max-samples", "2"]
    with FakeGemini(po_responder, script=[error(503), error(503)]) as server:
        argv[argv.index("--base-url") + 1] = server.url
        rc, _, err = run_cli(argv)
        assert rc == 1 and "1 of 2 cases not evaluated" in err and "rerun" in err
        assert len(err.strip().splitlines()[-1:]) == 1 and "Traceback" not in err
        assert not list(out.glob("g_*.json"))
        from engine.runlog.tail import read_events

        events = read_events(out / "g.events.jsonl")
        failure = [e["data"] for e in events if e["type"] == "error"][-1]
        assert failure["code"] == "stage_failed" and "traceback" not in failure
        assert events[-1]["data"]["state"] == "failed" and events[-1]["data"]["exit_code"] == 1
        rc, _, err = run_cli(argv)
    assert rc == 0, err
    doc = json.loads(results_file(out, "g").read_text())
    assert [r["status"] for r in doc["results"]] == ["ok", "ok"]


# --- bad input -----------------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    good = json.dumps(generate_concepts(1, 1)[0])
    files = {
        "malformed": tmp_path / "malformed.jsonl",
        "no_requirements": tmp_path / "noreq.jsonl",
        "empty": tmp_path / "empty.jsonl",
        "adapter": tmp_path / "not-an-adapter",
    }
    files["malformed"].write_text(good + "\n{not json\n" + good + "\n")
    files["no_requirements"].write_text(json.dumps({"concept_id": "X1", "concept": "a tool", "requirements_yaml": 3}) + "\n")
    files["empty"].write_text("")
    files["adapter"].mkdir()
    return files


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing_dataset", "no such file"),
        ("malformed", "malformed.jsonl:2: malformed JSON"),
        ("no_requirements", "noreq.jsonl:1: requirements_yaml: expected a string"),
        ("empty", "no cases"),
        ("unknown_model", "--base-model: unknown model"),
        ("not_an_adapter", "--adapter: not a PEFT adapter directory"),
        ("no_key", "GEMINI_API_KEY"),
        ("bad_tag", "--tag: "),
        ("zero_tokens", "--max-new-tokens"),
        ("adapter_with_provider", "--adapter is for local models"),
        ("no_base_model", "--base-model is required"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, expect, bad_files, tiny, concepts, tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    out = tmp_path / "out"
    base = ["eval", "--tag", "t", "--out", str(out)]
    local = ["--base-model", str(tiny)]
    argv = {
        "missing_dataset": [*base, "--dataset", str(tmp_path / "nope.jsonl"), *local],
        "malformed": [*base, "--dataset", str(bad_files["malformed"]), "--max-samples", "0", *local],
        "no_requirements": [*base, "--dataset", str(bad_files["no_requirements"]), *local],
        "empty": [*base, "--dataset", str(bad_files["empty"]), *local],
        "unknown_model": [*base, "--dataset", str(concepts), "--base-model", "no-such-org/no-such-model"],
        "not_an_adapter": [*base, "--dataset", str(concepts), *local, "--adapter", str(bad_files["adapter"])],
        "no_key": [*base, "--dataset", str(concepts), "--provider", "gemini"],
        "bad_tag": ["eval", "--tag", "../x", "--out", str(out), "--dataset", str(concepts), *local],
        "zero_tokens": [*base, "--dataset", str(concepts), *local, "--max-new-tokens", "0"],
        "adapter_with_provider": [*base, "--dataset", str(concepts), "--provider", "synthetic", "--adapter", str(tmp_path)],
        "no_base_model": [*base, "--dataset", str(concepts)],
    }[case]
    rc, stdout, err = run_cli(argv)
    assert rc == 2, err
    assert stdout == "" and len(err.strip().splitlines()) == 1 and err.startswith("po-tui eval: error: "), err
    assert expect in err and "Traceback" not in err
    assert not out.exists()


def test_max_samples_takes_the_first_concepts_in_file_order_once_each(tmp_path):
    rows = generate_concepts(5, 2)
    path = atomic_write_jsonl(tmp_path / "c.jsonl", [rows[0], rows[1], rows[0], rows[2], rows[3], rows[4]])
    cases = read_cases(path, 3)
    assert [c.concept_id for c in cases] == [rows[0]["concept_id"], rows[1]["concept_id"], rows[2]["concept_id"]]
    assert [c.index for c in cases] == [0, 1, 2] and cases[2].line == 4
    supervised = atomic_write_jsonl(tmp_path / "s.jsonl", [
        {"prompt": render_student_prompt(r["concept"], r["requirements_yaml"]), "response": "```yaml VISION\na: 1\n```"} for r in rows
    ])
    recovered = read_cases(supervised, 0)
    assert [c.concept.requirements_yaml for c in recovered] == [r["requirements_yaml"].strip() for r in rows]
    assert recovered[0].reference is not None and recovered[0].reference.raw.startswith("```yaml VISION")
    clash = dict(rows[1], concept_id=rows[0]["concept_id"])
    with pytest.raises(InputError, match="appears twice with different content"):
        read_cases(atomic_write_jsonl(tmp_path / "d.jsonl", [rows[0], clash]), 0)


def test_terminal_lines_strip_control_characters_from_untrusted_text():
    from engine.commands.eval import _case_line, clean

    # the same cleaning as every other screen (engine/core/inert.py): a CR is a line break, not
    # dropped; 8-bit C1 sequences and bidi overrides go too (the old copy here let them through)
    assert clean("a\x1b[31mred\x1b[0m\x07b\x1b]0;title\x07c\rd") == "aredbc\nd"
    assert clean("\x9b2Jx\u202eevil") == "xevil"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        _case_line("t")({"concept_id": "X\x1b[2J", "status": "format_error", "format_error": "missing_review_block",
                         "partial_score": 0.1, "score": None, "attempts": 1, "output_tokens": 3, "latency_s": 0.5}, 1, 1)
    assert "\x1b" not in err.getvalue() and "X: format_error missing_review_block" in err.getvalue()


# --- the replaced system's files ----------------------------------------------------------------


def test_a_free_text_run_is_refused_by_the_one_results_reader(tmp_path):
    """The replaced system's free-text runs (test_case/prompt/response, no status or score) are not
    evaluations of the two-block format: the gate, the report and the cockpit's reader says so."""
    path = tmp_path / "baseline_20251114_143731.json"
    path.write_text(json.dumps({"model": "m", "adapter_path": None, "timestamp": "t",
                                "results": [{"test_case": 1, "prompt": "p", "response": "r", "response_length": 1}]}))
    with pytest.raises(InputError, match=r"not an evaluation of the VISION/REVIEW format \(an old free-text run\?\)") as err:
        load_results(path)
    assert err.value.field == "results[0].score"


def test_reference_results_load_with_the_same_reader(reference):
    results = reference / "inference_results"
    for name in ("baseline_20251114_215442.json", "student_20251114_220448.json"):
        loaded = load_results(results / name)
        recorded, metrics = loaded.header["metrics"], summarize(read_eval_results(results / name).cases)
        assert loaded.po_tui == {} and len(loaded.cases) == metrics["n"] == loaded.header["total_samples"] == 20
        assert sum(c.valid for c in loaded.cases) == metrics["valid"] == loaded.header["valid_samples"]
        for key in ("mean", "std", "min", "max"):
            assert metrics[key] == pytest.approx(recorded[key], abs=1e-12)
        assert metrics["mean_with_errors_as_zero"] == pytest.approx(recorded["mean"], abs=1e-12)
        assert statistics.fmean(c.score for c in loaded.cases if c.valid) == pytest.approx(recorded["mean"], abs=1e-12)
    with pytest.raises(InputError, match="not an evaluation of the VISION/REVIEW format"):
        load_results(results / "baseline_20251114_143731.json")


def test_the_reference_validation_set_is_a_dataset_with_references(reference):
    path = reference / "artifacts" / "synthetic" / "product_owner" / "product_owner_val.jsonl"
    cases = read_cases(path, 20)
    ids = [json.loads(line)["input"]["concept_id"] for line in path.read_text().splitlines()[:20]]
    assert [c.concept_id for c in cases] == ids
    assert all(c.reference is not None and c.reference.recorded_metric == "po-v1" for c in cases)


# --- the benchmark keeps working -----------------------------------------------------------------


def test_eval_benchmark_runs_on_the_random_weights_path(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "eval_throughput.py"), "--shape", "tiny-random", "--random-weights",
         "--prompts", "3", "--max-new-tokens", "8", "--batch-sizes", "1", "3", "--repeats", "1", "--workdir", str(tmp_path / "w"),
         "--json", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch_size"] for r in rows] == [1, 3] and all(r["identical_to_batch_1"] for r in rows)
    assert all(r["output_tokens_per_s"] == pytest.approx(r["samples_per_s"] * 8) for r in rows)
    assert "| 3 |" in proc.stdout and "1.00x" in proc.stdout
