"""`po-tui export merge|ollama|config` on the tiny Qwen2 model and a LoRA with non-zero weights.

(`export gguf` and the Ollama routes' choices of FROM/ADAPTER: tests/test_export_gguf.py.)"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from engine.cli import main  # noqa: E402
from engine.core.prompts import encode_prompt, prompt_text_for_model, render_student_prompt, use_chat_template  # noqa: E402
from engine.errors import InputError  # noqa: E402
from engine.stages import export as export_stage  # noqa: E402
from engine.stages.concepts import generate_concepts  # noqa: E402
from engine.stages.export import consumer_config, merge_adapter, ollama_format  # noqa: E402
from engine.stages.tiny_model import make_tiny_model  # noqa: E402

GREEDY = dict(do_sample=False, max_new_tokens=24)

# peft and transformers 5 announce their own deprecations while loading; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

# Qwen2.5-Instruct's chat template without its tool-calling branch: a default system message
# when the conversation has none.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def render_go(template: str, *, system: str, prompt: str) -> str:
    """The subset of Go's text/template our TEMPLATEs use: if/else/end on .System, two fields."""

    def branch(m: re.Match) -> str:
        return m.group(1) if system else (m.group(2) or "")

    text = re.sub(r"\{\{ if \.System \}\}(.*?)(?:\{\{ else \}\}(.*?))?\{\{ end \}\}", branch, template, flags=re.S)
    assert "{{ if" not in text and "{{ else" not in text and "{{ end" not in text
    return text.replace("{{ .System }}", system).replace("{{ .Prompt }}", prompt)


# --- fixtures (built once: tiny model, adapter, merged model) ----------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def tiny(work) -> Path:
    return make_tiny_model(work / "tiny", seed=0)


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny), local_files_only=True)


@pytest.fixture(scope="module")
def adapter(work, tiny) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32, local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = get_peft_model(
            base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        )
    out = work / "adapter"
    model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def merged(work, tiny, adapter) -> tuple[Path, str, str]:
    out = work / "out" / "merged"
    rc, stdout, stderr = run_cli(
        ["export", "merge", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out), "--dtype", "float32"]
    )
    assert rc == 0, stderr
    return out, stdout, stderr


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[list[int]]:
    chat = use_chat_template(tokenizer)
    assert chat
    rows = generate_concepts(2, 7)
    return [encode_prompt(tokenizer, render_student_prompt(r["concept"], r["requirements_yaml"]), chat=chat) for r in rows]


def _load(path: Path, adapter: Path | None = None):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval()


def _greedy(model, prompts, pad_id) -> tuple[list[list[int]], list]:
    """Greedy continuations and, per prompt, the logits of every generated step."""
    outs, logits = [], []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids])
            y = model.generate(
                input_ids=x, attention_mask=torch.ones_like(x), pad_token_id=pad_id,
                return_dict_in_generate=True, output_logits=True, **GREEDY,
            )
            outs.append(y.sequences[0, len(ids):].tolist())
            logits.append(torch.stack([step[0] for step in y.logits]))
    return outs, logits


# --- merge ------------------------------------------------------------------------------------


def test_merge_writes_a_standalone_model_with_its_tokenizer_and_record(merged, tiny, adapter):
    out, stdout, stderr = merged
    assert stdout.strip() == str(out)
    assert stderr.strip().splitlines()[-1].startswith(f"po-tui export merge: {out}")
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "po_tui_export.json"} <= names
    assert "adapter_config.json" not in names
    # transformers 5 saves only rope_parameters; Ollama's converter reads the top-level rope_theta.
    config = json.loads((out / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 10000.0
    info = json.loads((out / "po_tui_export.json").read_text())
    assert info["base_model"] == str(tiny)
    assert info["adapter"] == str(adapter.resolve())
    assert info["dtype"] == "float32"
    # Nothing half-written or temporary left beside the output.
    assert [p.name for p in out.parent.iterdir()] == ["merged"]

    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert keys and not any("lora" in k for k in keys)


def test_merged_model_generates_what_the_adapter_does_and_not_what_the_base_does(
    merged, tiny, adapter, tokenizer, prompts
):
    out, _, _ = merged
    pad = tokenizer.pad_token_id
    base, base_logits = _greedy(_load(tiny), prompts, pad)
    lora, lora_logits = _greedy(_load(tiny, adapter), prompts, pad)
    folded, merged_logits = _greedy(_load(out), prompts, pad)

    assert all(len(seq) > 0 for seq in folded)
    assert folded == lora
    assert all(f != b for f, b in zip(folded, base, strict=True))
    for a, b, c in zip(merged_logits, lora_logits, base_logits, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-4)
        # The first step sees the same prompt in both: there the adapter alone makes the difference.
        assert not torch.allclose(a[0], c[0], atol=1e-2)


def test_a_failed_merge_leaves_nothing_behind(work, tiny, adapter, monkeypatch):
    def boom(model, folder):
        (Path(folder) / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(export_stage, "_save_model", boom)
    out = work / "failed" / "merged"
    with pytest.raises(OSError, match="disk full"):
        merge_adapter(adapter, str(tiny), out, dtype="float32")
    assert list(out.parent.iterdir()) == []


# --- bad input: one line, exit 2, nothing written ------------------------------------------------


def _bad(tmp_path: Path, argv: list[str], expect: str) -> str:
    rc, stdout, stderr = run_cli(argv)
    assert rc == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("po-tui export: error: ") and expect in stderr
    return stderr


def test_merge_bad_input_is_one_line_and_writes_nothing(tmp_path, tiny, adapter):
    out = tmp_path / "out"
    not_adapter = tmp_path / "not-adapter"
    not_adapter.mkdir()
    cases = [
        (["--adapter", str(tmp_path / "missing"), "--base-model", str(tiny)], "adapter directory not found"),
        (["--adapter", str(not_adapter), "--base-model", str(tiny)], "no adapter_config.json"),
        (["--adapter", str(adapter), "--base-model", str(tmp_path / "no-such-model")], "--base-model"),
        (["--adapter", str(adapter), "--base-model", "po-tui-nobody/no-such-model"], "unknown model"),
        (["--adapter", str(adapter), "--base-model", str(not_adapter)], "no config.json"),
    ]
    for args, expect in cases:
        _bad(tmp_path, ["export", "merge", *args, "--out", str(out)], expect)
        assert not out.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["not-adapter"]

    # An unrelated, non-empty folder is never replaced.
    (out).mkdir()
    (out / "keep.txt").write_text("mine")
    _bad(tmp_path, ["export", "merge", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out)], "refusing")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as usage:
        main(["export"])
    assert usage.value.code == 2 and len(err.getvalue().strip().splitlines()) == 1


# --- Ollama -------------------------------------------------------------------------------------


def test_ollama_modelfile_and_command(tmp_path, tiny, adapter):
    out = tmp_path / "ollama"
    rc, stdout, stderr = run_cli(
        ["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--name", "po-student-v1",
         "--from", "qwen2.5:0.5b-instruct", "--out", str(out)]
    )
    assert rc == 0, stderr
    modelfile = out / "Modelfile"
    assert stdout == f"ollama create po-student-v1 -f {modelfile}\nollama run po-student-v1\n"
    text = modelfile.read_text()
    lines = text.splitlines()
    # A Qwen2 base: Ollama cannot convert the safetensors adapter, so the GGUF adapter sits beside it.
    assert lines[0] == "FROM qwen2.5:0.5b-instruct"
    assert lines[1] == "ADAPTER ./adapter.gguf"
    assert str(adapter) not in text
    template = (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert f'TEMPLATE """{template}"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in lines
    assert 'PARAMETER stop "<|endoftext|>"' in lines
    assert "PARAMETER temperature 0.4" in lines
    assert "PARAMETER num_ctx 4096" in lines
    assert "PARAMETER repeat_penalty 1" in lines  # Ollama defaults to 1.1; the student was evaluated without
    assert "SYSTEM" not in text
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "adapter.gguf"]  # no temp file left

    # --from replaces what follows FROM; --temperature / --num-ctx land as parameters.
    rc, stdout, _ = run_cli(
        ["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--from", "qwen2.5:7b-instruct-q8_0",
         "--name", "po-student-v2", "--out", str(out), "--temperature", "0.7", "--num-ctx", "8192"]
    )
    assert rc == 0
    lines = modelfile.read_text().splitlines()
    assert lines[0] == "FROM qwen2.5:7b-instruct-q8_0"
    assert "PARAMETER temperature 0.7" in lines and "PARAMETER num_ctx 8192" in lines
    assert stdout == f"ollama create po-student-v2 -f {modelfile}\nollama run po-student-v2\n"


def test_ollama_template_reproduces_the_training_prompt(tokenizer):
    fmt = ollama_format(tokenizer)
    template, stops = fmt.template, fmt.stops
    assert stops[:2] == ["<|im_end|>", "<|endoftext|>"]
    prompt = render_student_prompt("A bike-sharing app", "- id: R1\n  text: riders unlock bikes")
    expected = prompt_text_for_model(tokenizer, prompt, chat=True)
    assert render_go(template, system="", prompt=prompt) == expected
    with_system = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        tokenize=False, add_generation_prompt=True,
    )
    assert render_go(template, system="Be brief.", prompt=prompt) == with_system


def test_a_default_system_message_becomes_the_modelfile_system(tokenizer):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path, local_files_only=True)
    tok.chat_template = QWEN25_TEMPLATE
    fmt = ollama_format(tok)
    assert fmt.template == (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert fmt.system == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    # Ollama sends SYSTEM when the caller gives no system prompt: exactly the training input.
    prompt = "Write the VISION."
    assert render_go(fmt.template, system=fmt.system, prompt=prompt) == prompt_text_for_model(tok, prompt, chat=True)
    assert 'SYSTEM """You are Qwen' in export_stage.render_modelfile(
        from_ref="qwen2.5:7b", adapter=Path("/a"), fmt=fmt, temperature=0.4, num_ctx=4096
    )


def test_plain_layout_when_trained_without_a_chat_template(tmp_path, tiny, adapter, tokenizer):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path, local_files_only=True)
    tok.chat_template = None
    fmt = ollama_format(tok)
    template, stops = fmt.template, fmt.stops
    assert template == "{{ .Prompt }}\n\n"
    assert render_go(template, system="", prompt="P") == prompt_text_for_model(tok, "P", chat=False)
    assert "<|im_end|>" in stops

    # Training recorded a plain prompt: the Modelfile follows it even though the tokenizer has a template.
    plain_adapter = tmp_path / "plain-adapter"
    shutil.copytree(adapter, plain_adapter)
    (plain_adapter / "po_tui_train.json").write_text(json.dumps({"prompt_format": {"chat_template": False}}))
    rc, _, stderr = run_cli(
        ["export", "ollama", "--adapter", str(plain_adapter), "--base-model", str(tiny), "--out", str(tmp_path / "o"),
         "--from", "qwen2.5:0.5b-instruct"]
    )
    assert rc == 0
    assert 'TEMPLATE """{{ .Prompt }}\n\n"""' in (tmp_path / "o" / "Modelfile").read_text()
    assert "no chat template" in stderr


def test_ollama_bad_input(tmp_path, tiny, adapter):
    out = tmp_path / "o"
    _bad(tmp_path, ["export", "ollama", "--adapter", str(tmp_path / "nope"), "--base-model", str(tiny), "--out", str(out)], "--adapter")
    export = ["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out)]
    _bad(tmp_path, [*export, "--name", "bad name"], "--name")
    _bad(tmp_path, [*export, "--num-ctx", "0"], "--num-ctx")
    assert not out.exists()


# --- consumer config -----------------------------------------------------------------------------


def test_export_config_prints_the_roles_block():
    rc, stdout, stderr = run_cli(["export", "config", "--name", "po-student-v1"])
    assert rc == 0 and stderr == ""
    assert yaml.safe_load(stdout) == {
        "roles": {
            "product_owner": {"provider": "ollama", "model": "po-student-v1", "temperature": 0.4, "max_tokens": 4096}
        }
    }
    assert stdout.splitlines()[:3] == ["roles:", "  product_owner:", "    provider: ollama"]
    custom = yaml.safe_load(consumer_config("po-student-v2", temperature=0.2, max_tokens=2048))
    assert custom["roles"]["product_owner"] == {
        "provider": "ollama", "model": "po-student-v2", "temperature": 0.2, "max_tokens": 2048,
    }
    with pytest.raises(InputError):
        consumer_config("po student", temperature=0.4)
