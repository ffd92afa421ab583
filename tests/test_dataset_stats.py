"""`po-tui stats`: counts, duplicates, scores, statuses, tiers, models, tokens, CLI and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.blocks import render_response
from engine.core.metric import product_owner_metric
from engine.core.prompts import render_student_prompt
from engine.core.records import Concept, supervised_record, teacher_record
from engine.errors import InputError
from engine.stages.dataset_stats import BAR_WIDTH, dataset_stats, format_stats
from tests.po_samples import REQUIREMENTS_YAML, REVIEW, dump, review, vision

ROOT = Path(__file__).resolve().parents[1]
CONCEPT_A = "Field Service Scheduler for utilities in EMEA, targeting simple operations with emphasis on dispatch."
CONCEPT_B = "Fleet Maintenance Hub for logistics firms in LATAM, targeting corporate operations with emphasis on uptime."
REQS_B = REQUIREMENTS_YAML.replace("Field Service Scheduler", "Fleet Maintenance Hub")
A = Concept(CONCEPT_A, REQUIREMENTS_YAML, "POCON-0001", "simple")
B = Concept(CONCEPT_B, REQS_B, "POCON-0002", "corporate")
V, R = dump(vision()), dump(review())
REVIEW_NARRATIVE = REVIEW["narrative"]
BROKEN_REVIEW = "status: aligned\nsummary: [unclosed\n"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def teacher(concept, v=V, r=R, *, score=0.9, metric="po-v2", model=None):
    meta = {"model": model} if model else {}
    return teacher_record(concept, v, r, score=score, metric=metric, breakdown={}, metadata=meta)


def mixed_teacher_file(tmp_path: Path) -> Path:
    trailing = "\n".join(line + "   " for line in V.splitlines()) + "\n"
    return write_jsonl(
        tmp_path / "teacher.jsonl",
        [
            teacher(A, score=0.95, model="gemini-2.5-flash"),  # line 1
            teacher(B, r=dump(review(status="conflicts")), score=0.85, model="gemini-2.5-pro"),  # line 2
            teacher(A, v=trailing, score=0.95, model="gemini-2.5-flash"),  # line 3: duplicate of 1
            teacher(A, r=BROKEN_REVIEW, score=0.15, model="gemini-2.5-flash"),  # line 4: unparseable
            teacher(B, v=dump(vision(product_name="Fleet Hub")), r=dump(review(status="needs_adjustment")),
                    score=0.55),  # line 5: no model
        ],
    )


def test_counts_duplicates_statuses_tiers_models(tmp_path):
    d = dataset_stats(mixed_teacher_file(tmp_path))
    assert d["records"] == 5 and d["kind"] == "teacher"
    assert d["distinct_concepts"] == 2
    assert d["duplicates"] == {"count": 1, "first": [3]}
    st = d["statuses"]
    assert st["allowed"] == {"aligned": 2, "needs_adjustment": 1, "misaligned": 0}
    assert st["outside"] == {"conflicts": 1}
    assert st["invalid"] == 1 and st["missing"] == 0
    assert d["format"]["valid"] == 4 and d["format"]["reasons"] == {"invalid_review_yaml": 1}
    assert list(d["tiers"]) == ["simple", "corporate"]
    assert d["tiers"]["simple"]["count"] == 3
    assert d["tiers"]["simple"]["mean_score"] == pytest.approx((0.95 + 0.95 + 0.15) / 3)
    assert d["tiers"]["corporate"]["mean_score"] == pytest.approx((0.85 + 0.55) / 2)
    assert d["models"]["gemini-2.5-flash"]["count"] == 3
    assert d["models"]["gemini-2.5-pro"] == {"count": 1, "mean_score": 0.85}
    assert d["models"]["unknown"]["count"] == 1
    assert d["score"]["sources"] == {"recorded po-v2": 5}

    text = "\n".join(format_stats(d))
    assert "2 distinct concepts, 1 exact duplicates (lines 3)" in text
    assert re.search(r"conflicts +1  \(outside the allowed set\)", text)
    assert re.search(r"invalid +1 ", text)
    assert "format: 4 valid (80.0%), 1 format_error (invalid_review_yaml 1)" in text
    assert re.search(r"gemini-2\.5-flash +3  mean 0\.6833", text)


def test_recorded_vs_computed_scores(tmp_path):
    prompt = render_student_prompt(CONCEPT_A, REQUIREMENTS_YAML)
    weak = dump(review(recommended_actions=[], narrative="Short."))
    legacy = {  # the replaced system's teacher record: no concept_id, no metric -> po-v1
        "concept": CONCEPT_B, "requirements_yaml": REQS_B,
        "teacher_product_vision": V, "teacher_product_owner_review": R, "score": 0.7,
    }
    path = write_jsonl(
        tmp_path / "sup.jsonl",
        [supervised_record(prompt, V, R), supervised_record(prompt, V, weak), legacy,
         supervised_record(prompt, V, R, score=0.25)],
    )
    expected = [product_owner_metric(V, r, REQUIREMENTS_YAML, metric="po-v2").score for r in (R, weak)]
    d = dataset_stats(path)
    assert d["kind"] == "mixed"
    assert d["score"]["sources"] == {"computed po-v2": 2, "recorded po-v1": 2}
    assert d["score"]["n"] == 4
    assert d["score"]["mean"] == pytest.approx((sum(expected) + 0.7 + 0.25) / 4)
    assert d["score"]["min"] == 0.25 and d["score"]["max"] == pytest.approx(max(expected))
    assert "score (computed po-v2 2, recorded po-v1 2)" in format_stats(d)
    d1 = dataset_stats(path, metric="po-v1")
    assert d1["score"]["sources"] == {"computed po-v1": 2, "recorded po-v1": 2}
    with pytest.raises(InputError, match="unknown metric"):
        dataset_stats(path, metric="po-v9")


def test_histogram_bins_and_bars(tmp_path):
    scores = [0.0, 0.05, 0.1, 0.5, 0.99, 1.0, 1.0]
    path = write_jsonl(tmp_path / "t.jsonl", [teacher(A, score=s) for s in scores])
    d = dataset_stats(path)
    assert [b["count"] for b in d["score"]["histogram"]] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]
    assert d["score"]["median"] == 0.5
    rows = [line for line in format_stats(d) if line.startswith("  [")]
    assert len(rows) == 10
    assert rows[0].startswith("  [0.0, 0.1) ") and rows[-1].startswith("  [0.9, 1.0] ")
    bars = [line.count("█") for line in rows]
    assert bars == [round(BAR_WIDTH * c / 3) for c in (2, 1, 0, 0, 0, 1, 0, 0, 0, 3)]
    assert [int(line.split()[-1]) for line in rows] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]


def test_chat_format_records(tmp_path):
    prompt = render_student_prompt(CONCEPT_B, REQS_B)
    rows = [
        {"messages": [
            {"role": "system", "content": "You are a Product Owner."},
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": render_response(V, r)},
        ]}
        for r in (R, dump(review(status="misaligned")), dump(review(status="gaps")))
    ]
    d = dataset_stats(write_jsonl(tmp_path / "chat.jsonl", rows))
    assert d["kind"] == "chat" and d["records"] == 3 and d["distinct_concepts"] == 1
    assert d["duplicates"]["count"] == 0
    assert d["statuses"]["allowed"] == {"aligned": 1, "needs_adjustment": 0, "misaligned": 1}
    assert d["statuses"]["outside"] == {"gaps": 1}
    assert d["tiers"] == {"corporate": {"count": 3, "mean_score": pytest.approx(d["score"]["mean"])}}
    assert d["score"]["sources"] == {"computed po-v2": 3}
    assert d["format"]["valid"] == 3


def test_untrusted_text_never_reaches_the_terminal_raw(tmp_path):
    evil = "\x1b[2J\x1b]0;pwned\x07"
    c = Concept(CONCEPT_A, REQUIREMENTS_YAML, "POCON-0009", "simple\x1b[31m")
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [teacher(c, r=dump(review(status="aligned" + evil)), model="m\u202e" + evil),
         teacher(A, r=dump(review(status=["a", "list"])))],
    )
    d = dataset_stats(path)
    assert d["statuses"]["outside"] == {"aligned" + evil: 1} and d["statuses"]["invalid"] == 1
    lines = format_stats(d)
    assert not any(_CONTROL.search(line) for line in lines)
    assert any("'aligned\\x1b[2J" in line for line in lines)
    json.dumps(d)  # the --json form escapes them


def test_cli_text_and_json(tmp_path, capsys):
    path = mixed_teacher_file(tmp_path)
    assert main(["stats", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: 5 records (teacher)") and err == ""
    assert "review status" in out and "tokens" not in out
    assert main(["stats", str(path), "--json", "--metric", "po-v1"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["records"] == 5 and d["duplicates"]["count"] == 1 and d["score"]["metric"] == "po-v1"


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["stats", "{missing}"], "no such file"),
        (["stats", "{good}", "--max-seq-len", "64"], "needs --tokenizer"),
        (["stats", "{good}", "--tokenizer", "{missing_dir}"], "tokenizer directory not found"),
        (["stats", "{good}", "--tokenizer", "{empty_dir}"], "cannot load a tokenizer"),
        (["stats", "{bad_json}"], "malformed JSON"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, expect):
    names = {
        "missing": str(tmp_path / "nope.jsonl"),
        "good": str(mixed_teacher_file(tmp_path)),
        "missing_dir": str(tmp_path / "no-tokenizer"),
        "empty_dir": str(tmp_path / "empty"),
        "bad_json": str(tmp_path / "bad.jsonl"),
    }
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.jsonl").write_text('{"prompt": \n')
    argv = [a.format(**names) for a in argv]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and expect in err
    if "--tokenizer" in argv:
        assert argv[-1] in err


def test_cli_subprocess_missing_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "stats", str(missing)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"po-tui stats: error: {missing}: no such file"]


# --- token lengths ------------------------------------------------------------------------------

_WORDS = re.compile(r"\w+|[^\w\s]+")  # what the Whitespace pre-tokenizer splits on


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A tiny WordLevel tokenizer, built offline: every whitespace/punctuation piece is one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [CONCEPT_A, CONCEPT_B, V, R, "```yaml VISION REVIEW status aligned"],
        trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "</s>"]),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="[UNK]", pad_token="[PAD]")
    out = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(out)
    return out


def _count(text: str) -> int:
    return len(_WORDS.findall(text))


def test_token_lengths_and_truncation(tmp_path, tokenizer_dir):
    short_r = dump(review(summary=["Fits."], recommended_actions=["Ship FR001."]))
    long_r = dump(review(narrative=REVIEW_NARRATIVE + " Dispatch first, then the live map and reports."))
    rows = [teacher(A), teacher(B, r=short_r), teacher(B, r=long_r)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    prompts = [_count(render_student_prompt(c.concept, c.requirements_yaml)) for c in (A, B, B)]
    responses = [_count(render_response(r["teacher_product_vision"], r["teacher_product_owner_review"])) + 1
                 for r in rows]  # + eos
    totals = [p + r for p, r in zip(prompts, responses, strict=True)]
    assert len(set(totals)) == 3
    n = sorted(totals)[1]  # one sample above it
    d = dataset_stats(path, tokenizer=str(tokenizer_dir), max_seq_len=n)
    tk = d["tokens"]
    assert tk["prompt_source"] == "render_student_prompt" and tk["eos_token"] is True
    assert tk["prompt"]["min"] > 0 and tk["response"]["min"] > 0
    assert (tk["prompt"]["min"], tk["prompt"]["max"]) == (min(prompts), max(prompts))
    assert (tk["response"]["min"], tk["response"]["max"]) == (min(responses), max(responses))
    assert (tk["total"]["min"], tk["total"]["p50"], tk["total"]["max"]) == tuple(sorted(totals))
    assert tk["truncation"] == {"truncated": sum(t > n for t in totals), "response_cut": 1, "response_lost": 0}
    text = "\n".join(format_stats(d))
    assert f"max-seq-len {n}: 1 truncated" in text
    assert "prompt: render_student_prompt, no chat template" in text

    # a limit below every prompt: every response is lost entirely
    tiny = min(prompts) - 1
    tr = dataset_stats(path, tokenizer=str(tokenizer_dir), max_seq_len=tiny)["tokens"]["truncation"]
    assert tr == {"truncated": 3, "response_cut": 0, "response_lost": 3}


def test_chat_template_is_used_when_present(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    path = write_jsonl(tmp_path / "t.jsonl", [teacher(A)])
    tk = dataset_stats(path, tokenizer=tok)["tokens"]
    assert tk["prompt_source"] == "chat_template"
    rendered = f"<|user|> {render_student_prompt(CONCEPT_A, REQUIREMENTS_YAML)} <|assistant|>"
    assert tk["prompt"]["max"] == _count(rendered)


def test_cli_with_tokenizer(tmp_path, tokenizer_dir, capsys):
    path = write_jsonl(tmp_path / "t.jsonl", [teacher(A), teacher(B)])
    assert main(["stats", str(path), "--tokenizer", str(tokenizer_dir), "--max-seq-len", "100000"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"prompt +\d+ +\d+ +\d+ +\d+ +\d+", out)
    assert "max-seq-len 100000: 0 truncated" in out


# --- the reference dataset ----------------------------------------------------------------------


@pytest.mark.reference
def test_reference_supervised_file(reference):
    d = dataset_stats(reference / "artifacts" / "distillation" / "po_teacher_supervised.jsonl")
    assert d["records"] == 359
    assert d["duplicates"]["count"] == 2
    assert d["statuses"]["outside"] == {"conflicts": 10}
    assert d["distinct_concepts"] == 177
    assert d["kind"] == "supervised" and d["score"]["sources"] == {"computed po-v2": 359}
    assert sum(b["count"] for b in d["score"]["histogram"]) == 359
