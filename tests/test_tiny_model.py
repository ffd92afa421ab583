"""The offline tiny model: reloads as a Qwen2 folder unchanged, is deterministic, and generates.

One full-size build is shared by the module; the determinism and CLI checks use a small corpus
so the whole file stays around ten seconds on a laptop CPU.
"""

from __future__ import annotations

import hashlib
import json
import random
import unicodedata
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.prompts import render_student_prompt
from engine.providers.po_writer import write_answer
from engine.stages.concepts import generate_concepts
from engine.stages.tiny_model import IM_END, IM_START, MARKER_FILE, PAD_TOKEN, make_tiny_model

pytestmark = pytest.mark.slow

NON_ASCII = "Gestión ñandú café — naïve façade, Straße, Zürich, 東京, 🚀 and\ttabs\r\nCRLF."
SMALL = dict(corpus_size=30, vocab_size=600)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


@pytest.fixture(scope="module")
def sample() -> tuple[str, str]:
    """A prompt and answer the tokenizer never saw (another seed than the build's corpus)."""
    row = generate_concepts(1, seed=99, start_index=7)[0]
    prompt = render_student_prompt(row["concept"], row["requirements_yaml"])
    answer = write_answer(row["concept"], row["requirements_yaml"], random.Random(1))
    return prompt, answer


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_reloads_as_a_local_qwen2_model(model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    cfg = model.config
    assert cfg.model_type == "qwen2"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (64, 2, 4)
    assert cfg.num_key_value_heads == 2 and cfg.tie_word_embeddings
    assert cfg.vocab_size == len(tokenizer) == 2048
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight

    ids = tokenizer.convert_tokens_to_ids
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token == PAD_TOKEN
    assert cfg.eos_token_id == model.generation_config.eos_token_id == ids(IM_END)
    assert cfg.pad_token_id == model.generation_config.pad_token_id == ids(PAD_TOKEN)

    info = json.loads((model_dir / MARKER_FILE).read_text(encoding="utf-8"))
    assert info["seed"] == 0 and info["vocab_size"] == 2048 and info["corpus_size"] == 400
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert (model_dir / "model.safetensors").is_file()
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_encodings_identical_before_and_after_reload(model_dir, tokenizer, sample):
    from tokenizers import Tokenizer

    trained = Tokenizer.from_file(str(model_dir / "tokenizer.json"))  # the pipeline as trained
    prompt, answer = sample
    texts = [NON_ASCII, prompt, answer, f"{IM_START}user\n{NON_ASCII}{IM_END}\n", prompt + answer]
    for text in texts:
        assert tokenizer.encode(text) == trained.encode(text).ids
    assert len(tokenizer.encode(NON_ASCII)) > 0


def test_a_tokenizer_that_changes_on_reload_is_refused(model_dir, sample):
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    from engine.stages.tiny_model import _verify_reload

    drifted = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    lowercase = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    drifted.backend_tokenizer.normalizer = lowercase
    with pytest.raises(RuntimeError, match="changes when reloaded"):
        _verify_reload(model_dir, drifted, "".join(sample))


def test_decode_encode_round_trip(tokenizer, sample):
    prompt, answer = sample
    for text in (prompt, answer, unicodedata.normalize("NFC", NON_ASCII)):
        assert tokenizer.decode(tokenizer.encode(text)) == text
    # The tokenizer learnt the task's text: an answer takes far fewer tokens than bytes.
    assert len(tokenizer.encode(answer)) < len(answer.encode("utf-8")) / 2


def test_special_tokens_are_single_tokens(tokenizer):
    for token in (PAD_TOKEN, IM_START, IM_END):
        ids = tokenizer.encode(token)
        assert ids == [tokenizer.convert_tokens_to_ids(token)]


def test_chat_template_is_chatml(tokenizer):
    user = [{"role": "user", "content": "Hola ñandú"}]
    assert tokenizer.apply_chat_template(user, tokenize=False) == (
        "<|im_start|>user\nHola ñandú<|im_end|>\n"
    )
    with_system = [{"role": "system", "content": "Be brief."}] + user
    prompt = tokenizer.apply_chat_template(with_system, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHola ñandú<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tokenizer.apply_chat_template(user, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_generation_runs(model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a vision."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    new = out.shape[1] - inputs["input_ids"].shape[1]
    assert 1 <= new <= 5


def test_deterministic_per_seed_and_cli_end_to_end(tmp_path, capsys):
    first = make_tiny_model(tmp_path / "a", seed=5, **SMALL)
    before = _digests(first)
    assert set(before) >= {"model.safetensors", "tokenizer.json", "config.json", MARKER_FILE}

    # Same options through the CLI, over the earlier tiny model (replaced in place).
    code = main([
        "make-tiny-model", "--out", str(first), "--seed", "5",
        "--corpus-size", str(SMALL["corpus_size"]), "--vocab-size", str(SMALL["vocab_size"]),
    ])
    assert code == 0
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and str(first) in line and "parameters" in line and "vocab" in line
    assert _digests(first) == before

    other = make_tiny_model(tmp_path / "b", seed=6, **SMALL)
    after = _digests(other)
    assert after["model.safetensors"] != before["model.safetensors"]
    assert after["config.json"] == before["config.json"]


@pytest.mark.parametrize(
    "args, field",
    [
        (["--hidden", "66"], "--hidden"),
        (["--kv-heads", "3"], "--kv-heads"),
        (["--layers", "0"], "--layers"),
        (["--vocab-size", "100"], "--vocab-size"),
    ],
)
def test_bad_sizes_exit_2_with_one_line(tmp_path, capsys, args, field):
    out = tmp_path / "m"
    assert main(["make-tiny-model", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err
    assert not out.exists()


def test_refuses_to_overwrite_a_folder_that_is_not_a_tiny_model(tmp_path, capsys):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine", encoding="utf-8")
    assert main(["make-tiny-model", "--out", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
