"""A served student evaluated through `po-tui eval --provider openai`.

The fake OpenAI-compatible server (tests/fakes/llm_servers.py) stands in for vLLM, llama-server
and Ollama: the test renders what it received through a chat template the way those servers do
and compares the tokens with what training built for the same concept (prep's `--format chat`
rows, tokenised by `engine.stages.train.data.encode_pairs`). The template is Qwen2.5's shape,
with its default system message, so "no system message" is checked to mean "the training
input", not "no system text at all".
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.blocks import check_text
from engine.core.prompts import teacher_system_prompt
from engine.core.records import Concept, teacher_record
from engine.providers.openai_compat import api_url
from engine.providers.po_writer import write_answer
from engine.stages.concepts import generate_concepts
from engine.stages.eval.settings import is_student_tag
from engine.stages.prep import PrepOptions, prepare
from engine.stages.train.data import IGNORE_INDEX, encode_pairs, read_pairs
from tests.fakes.llm_servers import FakeOpenAI, ok
from tests.fakes.po_responder import po_responder

# Qwen2.5's chat template, reduced to what a conversation without tools uses: a default system
# message when the caller sends none.
QWEN25_LIKE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
RESULTS = re.compile(r"^(?P<tag>.+)_(\d{8}_\d{6})\.json$")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def results(out: Path, tag: str) -> dict:
    [path] = [p for p in out.glob(f"{tag}_*.json") if RESULTS.match(p.name)]
    return json.loads(path.read_text())


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    """A local server needs no key: none may come from the developer's environment either."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def prepped(tmp_path_factory) -> Path:
    """prep's output in chat format: val.jsonl rows are teacher records carrying `messages`."""
    work = tmp_path_factory.mktemp("serving")
    rows = []
    for c in generate_concepts(8, seed=3):
        concept = Concept(c["concept"], c["requirements_yaml"], c["concept_id"], c["tier"])
        ex, _ = check_text(write_answer(c["concept"], c["requirements_yaml"], random.Random(c["concept_id"])))
        rows.append(teacher_record(concept, ex.vision_text, ex.review_text, score=0.9, metric="po-v2", breakdown={}, metadata={}))
    teacher = work / "teacher.jsonl"
    teacher.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prepare(teacher, work / "data", PrepOptions(min_score=0.0, val_fraction=0.5, format="chat"))
    return work / "data"


@pytest.fixture(scope="module")
def val_rows(prepped) -> list[dict]:
    rows = [json.loads(line) for line in (prepped / "val.jsonl").read_text().splitlines()]
    assert len(rows) >= 3 and all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)
    return rows


@pytest.fixture(scope="module")
def tokenizer():
    from engine.stages.tiny_model import build_corpus, train_tokenizer

    tok = train_tokenizer(build_corpus(20, 0), 600)
    tok.chat_template = QWEN25_LIKE
    return tok


def server_ids(tokenizer, messages: list[dict]) -> list[int]:
    """What vLLM / llama-server feed the model for a chat request: the template, then the tokens."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def eval_argv(dataset: Path, out: Path, url: str, tag: str, *extra: str) -> list[str]:
    return ["eval", "--dataset", str(dataset), "--provider", "openai", "--model", "student", "--base-url", url,
            "--tag", tag, "--out", str(out), "--max-samples", "0", "--concurrency", "2", "--backoff-base", "0.01", *extra]


# --- the served student ---------------------------------------------------------------------------


def test_served_student_gets_exactly_its_training_messages_and_tokens(prepped, val_rows, tokenizer, tmp_path):
    out = tmp_path / "eval"
    # The first answer has no blocks: one case is asked again, as the local eval would ask it.
    with FakeOpenAI(po_responder, script=[ok("Sure, here is my view, without any block.")]) as server:
        rc, stdout, err = run_cli(eval_argv(prepped / "val.jsonl", out, server.url, "student"))
        requests = list(server.requests)
    assert rc == 0, err
    assert {r.path for r in requests} == {"/v1/chat/completions"}  # a bare host gets /v1
    assert all("authorization" not in r.headers for r in requests)  # a local server needs no key

    first = [r.body for r in requests if len(r.body["messages"]) == 1]
    by_prompt = {row["messages"][0]["content"]: row for row in val_rows}
    assert sorted(b["messages"][0]["content"] for b in first) == sorted(by_prompt)  # every case once
    pairs = {p.prompt: p for p in read_pairs(prepped / "val.jsonl")}  # how `po-tui train` reads them
    for body in first:
        row = by_prompt[body["messages"][0]["content"]]
        assert body["messages"] == row["messages"][:-1]  # prep's training messages, nothing added
        [example] = encode_pairs([pairs[row["messages"][0]["content"]]], tokenizer, max_seq_len=8192, chat=True).examples
        prompt_ids = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label == IGNORE_INDEX]
        assert server_ids(tokenizer, body["messages"]) == prompt_ids  # the training tokens, token for token
        # decoded as the local student eval decodes: greedy, 1200 tokens, no repetition penalty
        assert body["model"] == "student" and body["temperature"] == 0 and body["max_tokens"] == 1200
        assert body["repetition_penalty"] == 1.0 and body["repeat_penalty"] == 1.0
        assert isinstance(body["seed"], int) and body["stream"] is False

    [retry] = [r.body for r in requests if len(r.body["messages"]) > 1]
    assert [m["role"] for m in retry["messages"]] == ["user", "assistant", "user"]  # no system message
    assert retry["messages"][1]["content"] == "Sure, here is my view, without any block."
    from engine.stages.eval.generate import Turn
    from engine.stages.eval.local import conversation_text

    turns = tuple(Turn(m["role"], m["content"]) for m in retry["messages"])
    assert tokenizer.apply_chat_template(retry["messages"], tokenize=False, add_generation_prompt=True) == \
        conversation_text(tokenizer, turns, chat=True)  # the local eval's retry text

    doc = results(out, "student")
    assert doc["po_tui"]["generation"]["prompt_format"] == "student"
    assert doc["po_tui"]["generation"]["system_prompt"] == "none"
    assert doc["po_tui"]["generation"]["repetition_penalty"] == 1.0
    assert doc["po_tui"]["generation"]["max_new_tokens"] == 1200
    assert doc["total_samples"] == len(val_rows) and stdout.strip().endswith(".json")


def test_the_teacher_tag_still_gets_the_teacher_prompt(prepped, val_rows, tmp_path):
    out = tmp_path / "eval"
    with FakeOpenAI(po_responder) as server:
        rc, _, err = run_cli(eval_argv(prepped / "val.jsonl", out, server.url + "/v1/", "teacher"))
        requests = list(server.requests)
    assert rc == 0, err
    assert len(requests) == len(val_rows)
    by_prompt = {row["messages"][0]["content"]: row for row in val_rows}
    for r in requests:
        assert r.path == "/v1/chat/completions"
        system, user = r.body["messages"]
        assert system == {"role": "system", "content": teacher_system_prompt()}
        assert [user] == by_prompt[user["content"]]["messages"][:-1]
        # a teacher provider keeps its own token limit and sampling defaults, as before
        assert not {"max_tokens", "repetition_penalty", "repeat_penalty"} & set(r.body)
    doc = results(out, "teacher")
    assert doc["po_tui"]["generation"]["prompt_format"] == "teacher"
    assert doc["po_tui"]["generation"]["system_prompt"] == "teacher"
    assert doc["po_tui"]["generation"]["repetition_penalty"] is None
    assert doc["po_tui"]["generation"]["max_new_tokens"] is None


@pytest.mark.parametrize(
    "tag, extra, system",
    [
        ("baseline", [], False),
        ("student-vllm", [], False),
        ("qwen-teacher", [], True),
        ("mymodel", ["--prompt-format", "student"], False),
        ("student", ["--prompt-format", "teacher"], True),
        ("teacher", ["--system-prompt", "none"], False),  # the older spelling still works
        ("student", ["--system-prompt", "teacher"], True),
    ],
)
def test_the_tag_decides_the_prompt_and_the_flag_overrides_it(prepped, tmp_path, tag, extra, system):
    out = tmp_path / "eval"
    with FakeOpenAI(po_responder) as server:
        rc, _, err = run_cli([*eval_argv(prepped / "val.jsonl", out, server.url, tag, *extra), "--max-samples", "1"])
        [request] = list(server.requests)
    assert rc == 0, err
    roles = [m["role"] for m in request.body["messages"]]
    assert roles == (["system", "user"] if system else ["user"])


def test_a_partial_eval_made_with_the_other_prompt_is_not_resumed(prepped, tmp_path):
    """The prompt is part of the fingerprint: two prompts never mix in one results file."""
    out = tmp_path / "eval"
    cases = out / "student.cases.jsonl"
    with FakeOpenAI(po_responder) as server:
        rc, _, err = run_cli([*eval_argv(prepped / "val.jsonl", out, server.url, "student", "--prompt-format", "teacher"),
                              "--max-samples", "1"])
        assert rc == 0, err
        before = cases.read_bytes()
        rc, _, err = run_cli([*eval_argv(prepped / "val.jsonl", out, server.url, "student"), "--max-samples", "1"])
    assert rc == 2 and "system_prompt 'teacher' -> 'none'" in err and len(err.strip().splitlines()) == 1
    assert cases.read_bytes() == before


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--provider", "openai", "--model", "m", "--base-url", "localhost:8000/v1"], "expected an http(s) URL"),
        (["--provider", "openai", "--model", "m", "--base-url", "ftp://host/v1"], "expected an http(s) URL"),
        (["--provider", "openai", "--model", "m", "--base-url", "http://h/v1", "--prompt-format", "student",
          "--system-prompt", "teacher"], "contradicts"),
        (["--base-model", "unused", "--prompt-format", "teacher"], "--prompt-format teacher is for providers"),
    ],
)
def test_bad_serving_flags_are_one_line_and_write_nothing(prepped, tmp_path, extra, expect):
    out = tmp_path / "eval"
    rc, stdout, err = run_cli(["eval", "--dataset", str(prepped / "val.jsonl"), "--tag", "student", "--out", str(out), *extra])
    assert rc == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
    assert expect in err and "Traceback" not in err
    assert not out.exists()


def test_student_tags():
    assert all(is_student_tag(t) for t in ("student", "baseline", "Student", "student-vllm", "baseline_q4", "student2",
                                           "student.ollama"))
    assert not any(is_student_tag(t) for t in ("teacher", "students", "baselines", "my-student", "gemini", "qwen"))


@pytest.mark.parametrize(
    "base, url",
    [
        ("http://localhost:8000", "http://localhost:8000/v1/chat/completions"),
        ("http://localhost:8000/", "http://localhost:8000/v1/chat/completions"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1/chat/completions"),
        ("http://localhost:11434/v1/", "http://localhost:11434/v1/chat/completions"),
        ("http://h:8080/v1/chat/completions", "http://h:8080/v1/chat/completions"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/",
         "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"),
        ("https://x.example/openai?api-version=1", "https://x.example/openai/chat/completions?api-version=1"),
    ],
)
def test_api_url_accepts_a_root_a_bare_host_or_the_endpoint(base, url):
    assert api_url(base) == url
    assert api_url(base, "/models") == url.replace("/chat/completions", "/models")
