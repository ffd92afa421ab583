"""`po-tui export gguf` (LoRA adapter and --merged through llama.cpp) and the Ollama routes built on it.

Train-free: tiny models and PEFT adapters with random, non-zero A and B. The GGUF files are read
back with `gguf.GGUFReader` and checked tensor by tensor against the adapter, in llama.cpp's terms
(names, ne order, lora_a/lora_b layout, alpha/rank scaling).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")

from engine.cli import main  # noqa: E402
from engine.stages.ollama_names import ollama_library_name  # noqa: E402
from engine.stages.tiny_model import make_tiny_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

# llama.cpp's names for the Hugging Face Qwen2/Llama module names (gguf-py constants.py TENSOR_NAMES,
# tensor_mapping.py), written out here so the test does not check the code against itself.
LLAMA_CPP_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def refused(argv: list[str], expect: str) -> str:
    rc, stdout, stderr = run_cli(argv)
    assert rc == 2, stderr
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("po-tui export: error: ") and expect in stderr, stderr
    return stderr


def expected_name(module: str) -> str:
    """`model.layers.1.self_attn.q_proj` -> `blk.1.attn_q.weight`, by the table above."""
    parts = module.split(".")
    assert parts[:2] == ["model", "layers"], module
    return f"blk.{parts[2]}.{LLAMA_CPP_NAMES['.'.join(parts[3:])]}.weight"


def read_gguf(path: Path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(str(path))
    fields = {name: f for name, f in reader.fields.items() if not name.startswith("GGUF.")}
    tensors = {t.name: t for t in reader.tensors}
    return fields, tensors


def lora_modules(model) -> dict[str, object]:
    """{module name without the peft prefix: the LoRA layer} of a PeftModel."""
    out = {}
    for name, module in model.named_modules():
        if any("default" in getattr(module, attr, {}) for attr in ("lora_A", "lora_embedding_A")):
            out[name.removeprefix("base_model.model.")] = module
    return out


def make_adapter(base: Path, out: Path, seed: int = 1, *, save_embedding_layers: bool | str = "auto", **lora) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32, local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lora.setdefault("target_modules", "all-linear")
        peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **lora))
    peft_model.save_pretrained(str(out), save_embedding_layers=save_embedding_layers)
    return out


# --- fixtures: one tiny Qwen2 (tied), one tiny Llama (untied), adapters -------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="module")
def tiny(work) -> Path:
    # Named like the Hugging Face repo, so the Ollama mapping applies to the local folder.
    return make_tiny_model(work / "Qwen2.5-7B-Instruct", seed=0, corpus_size=30, vocab_size=600)


@pytest.fixture(scope="module")
def adapter(work, tiny) -> Path:
    return make_adapter(tiny, work / "adapter", r=8, lora_alpha=16)


@pytest.fixture(scope="module")
def llama(work, tiny) -> Path:
    """A tiny untied Llama (so q/k are permuted and the embeddings/head are separate tensors)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = LlamaForCausalLM(config)
    out = work / "tiny-llama"
    model.save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, out / name)
    return out


# --- the GGUF LoRA adapter ----------------------------------------------------------------------


@pytest.mark.parametrize("outtype", ["f16", "f32"])
def test_gguf_adapter_reads_back_equal_to_the_peft_adapter(work, tiny, adapter, outtype):
    from safetensors.torch import load_file

    out = work / f"adapter-{outtype}.gguf"
    rc, stdout, stderr = run_cli(
        ["export", "gguf", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out), "--outtype", outtype]
    )
    assert rc == 0, stderr
    assert stdout == f"{out}\n"
    assert f"po-tui export gguf: {out} (LoRA adapter, {outtype}" in stderr
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []  # no temp left

    fields, tensors = read_gguf(out)
    assert fields["general.architecture"].contents() == "qwen2"
    assert fields["general.type"].contents() == "adapter"
    assert fields["adapter.type"].contents() == "lora"
    assert fields["adapter.lora.alpha"].types == [gguf.GGUFValueType.FLOAT32]
    assert fields["adapter.lora.alpha"].contents() == 16.0
    assert fields["general.quantization_version"].contents() == gguf.GGML_QUANT_VERSION
    assert fields["general.base_model.count"].contents() == 1
    assert fields["general.base_model.0.name"].contents() == str(tiny)

    state = load_file(str(adapter / "adapter_model.safetensors"))
    pairs = {}
    for key, value in state.items():
        module, part = key.removeprefix("base_model.model.").rsplit(".lora_", 1)
        pairs.setdefault(module, {})[part[0]] = value
    assert len(pairs) == 2 * 7  # 2 layers, all-linear: q k v o gate up down
    assert set(tensors) == {expected_name(m) + s for m in pairs for s in (".lora_a", ".lora_b")}

    qtype = gguf.GGMLQuantizationType.F16 if outtype == "f16" else gguf.GGMLQuantizationType.F32
    for module, ab in pairs.items():
        a, b = ab["A"].numpy(), ab["B"].numpy()
        assert np.abs(b).max() > 0.01  # a real, non-zero B
        ta, tb = tensors[expected_name(module) + ".lora_a"], tensors[expected_name(module) + ".lora_b"]
        # GGUF shape is ggml's ne (innermost first): lora_a [in, rank], lora_b [rank, out].
        assert list(ta.shape) == [a.shape[1], a.shape[0]] and list(tb.shape) == [b.shape[1], b.shape[0]]
        assert ta.data.shape == a.shape and tb.data.shape == b.shape  # torch order when read back
        assert ta.tensor_type == qtype and tb.tensor_type == qtype
        if outtype == "f32":
            assert np.array_equal(ta.data, a) and np.array_equal(tb.data, b)
        else:
            assert np.allclose(ta.data.astype(np.float32), a, rtol=1e-3, atol=1e-4)
            assert np.allclose(tb.data.astype(np.float32), b, rtol=1e-3, atol=1e-4)


def test_an_adapter_saved_as_bin_converts_the_same_and_a_damaged_one_is_one_line(work, tiny, adapter, tmp_path):
    from safetensors.torch import load_file

    legacy = tmp_path / "legacy-adapter"
    legacy.mkdir()
    shutil.copy(adapter / "adapter_config.json", legacy)
    torch.save(load_file(str(adapter / "adapter_model.safetensors")), legacy / "adapter_model.bin")
    outs = {}
    for name, folder in (("safetensors", adapter), ("bin", legacy)):
        outs[name] = tmp_path / f"{name}.gguf"
        rc, _, stderr = run_cli(["export", "gguf", "--adapter", str(folder), "--base-model", str(tiny),
                                 "--out", str(outs[name]), "--outtype", "f32"])
        assert rc == 0, stderr
    a, b = read_gguf(outs["safetensors"])[1], read_gguf(outs["bin"])[1]
    assert a.keys() == b.keys() and all(np.array_equal(a[k].data, b[k].data) for k in a)

    (legacy / "adapter_model.bin").write_bytes(b"\x80\x02 not a checkpoint")
    err = refused(["export", "gguf", "--adapter", str(legacy), "--base-model", str(tiny), "--out", str(tmp_path / "x.gguf")],
                  "adapter_model.bin: --adapter: cannot read it")
    assert "Traceback" not in err and not (tmp_path / "x.gguf").exists()


def test_qwen2_names_follow_llama_cpp(work, tiny, adapter):
    out = work / "names.gguf"
    rc, _, stderr = run_cli(["export", "gguf", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out)])
    assert rc == 0, stderr
    names = set(read_gguf(out)[1])
    for name in (
        "blk.1.attn_q.weight.lora_a", "blk.1.attn_q.weight.lora_b", "blk.0.attn_k.weight.lora_a",
        "blk.1.attn_v.weight.lora_b", "blk.0.attn_output.weight.lora_a", "blk.1.ffn_gate.weight.lora_a",
        "blk.1.ffn_up.weight.lora_b", "blk.0.ffn_down.weight.lora_a",
    ):
        assert name in names
    assert not any("q_proj" in n or "lora_A" in n or n.startswith("model.") for n in names)


def _llama_cpp_delta(tensors: dict, name: str, alpha: float) -> np.ndarray:
    """What llama.cpp adds to a weight (torch order [out, in]): alpha/rank * B @ A, rank from B."""
    a, b = tensors[name + ".lora_a"].data.astype(np.float64), tensors[name + ".lora_b"].data.astype(np.float64)
    return (alpha / b.shape[1]) * (b @ a)


def test_rslora_and_rank_patterns_fold_into_the_scale_llama_cpp_uses(work, tiny):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = make_adapter(
        tiny, work / "adapter-rslora", seed=5, r=8, lora_alpha=16, use_rslora=True,
        rank_pattern={"q_proj": 4}, alpha_pattern={"down_proj": 40},
    )
    out = work / "rslora.gguf"
    rc, _, stderr = run_cli(
        ["export", "gguf", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out), "--outtype", "f32"]
    )
    assert rc == 0, stderr
    assert "folded into lora_b" in stderr
    fields, tensors = read_gguf(out)
    alpha = float(fields["adapter.lora.alpha"].contents())

    base = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(adapter))
    modules = lora_modules(model)
    assert len(modules) == 14
    for name, layer in modules.items():
        want = layer.get_delta_weight("default").detach().double().numpy()
        got = _llama_cpp_delta(tensors, expected_name(name), alpha)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-7), name
    # The rank pattern really is in the file (rank read from the tensors, as llama.cpp does).
    assert tensors["blk.0.attn_q.weight.lora_b"].data.shape[1] == 4


def test_llama_permutes_q_and_k_and_lays_out_embeddings_as_llama_cpp_reads_them(work, llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = make_adapter(
        llama, work / "adapter-llama", seed=7, r=4, lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "embed_tokens", "lm_head"],
        save_embedding_layers=False,  # else PEFT also saves the (unchanged) full embeddings: refused below
    )
    out = work / "llama.gguf"
    rc, _, stderr = run_cli(
        ["export", "gguf", "--adapter", str(adapter), "--base-model", str(llama), "--out", str(out), "--outtype", "f32"]
    )
    assert rc == 0, stderr
    fields, tensors = read_gguf(out)
    assert fields["general.architecture"].contents() == "llama"
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(llama), dtype=torch.float32, local_files_only=True), str(adapter)
    )
    modules = lora_modules(model)

    def permute(w: np.ndarray, n_head: int) -> np.ndarray:
        # convert_hf_to_gguf.py's LlamaModel.permute of the full weight rows.
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    for layer in (0, 1):
        for proj, heads in (("q_proj", 4), ("k_proj", 2), ("v_proj", None)):
            want = modules[f"model.layers.{layer}.self_attn.{proj}"].get_delta_weight("default").double().numpy()
            if heads:
                want = permute(want, heads)
            got = _llama_cpp_delta(tensors, expected_name(f"model.layers.{layer}.self_attn.{proj}"), 8.0)
            assert np.allclose(got, want, rtol=1e-5, atol=1e-7), (layer, proj)

    # Token embeddings: llama.cpp gathers rows of lora_a ([vocab, rank] in torch order) and
    # multiplies by lora_b ([hidden, rank]); its ne must be [rank, vocab] and [rank, hidden].
    ta, tb = tensors["token_embd.weight.lora_a"], tensors["token_embd.weight.lora_b"]
    assert list(ta.shape) == [4, 600] and list(tb.shape) == [4, 64]
    emb = modules["model.embed_tokens"].get_delta_weight("default").double().numpy()  # [vocab, hidden]
    tokens = [0, 5, 599]
    rows = ta.data.astype(np.float64)[tokens]  # get_rows
    got = (8.0 / 4) * rows @ tb.data.astype(np.float64).T
    assert np.allclose(got, emb[tokens], rtol=1e-5, atol=1e-7)
    # An untied head is its own tensor, `output.weight`, adapted like any linear weight.
    head = modules["lm_head"].get_delta_weight("default").double().numpy()
    assert np.allclose(_llama_cpp_delta(tensors, "output.weight", 8.0), head, rtol=1e-5, atol=1e-7)


def test_what_a_gguf_lora_cannot_carry_is_refused_in_one_line(work, tiny, tmp_path):
    out = tmp_path / "x.gguf"

    def gguf_refused(adapter: Path, expect: str, base: Path = tiny) -> None:
        refused(["export", "gguf", "--adapter", str(adapter), "--base-model", str(base), "--out", str(out)], expect)
        assert not out.exists() and list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())

    # Whole modules beside the LoRA (the demo's trained tied embeddings): only a merged model has them.
    saved = make_adapter(tiny, work / "adapter-mts", r=4, lora_alpha=8, modules_to_save=["embed_tokens"],
                         ensure_weight_tying=True)
    err = refused(["export", "gguf", "--adapter", str(saved), "--base-model", str(tiny), "--out", str(out)], "modules_to_save")
    assert "--merged" in err and "embed_tokens" in err
    assert not out.exists()
    # Same adapter with the config edited to hide it: the full tensor itself is refused.
    hidden = work / "adapter-mts-hidden"
    shutil.copytree(saved, hidden, dirs_exist_ok=True)
    cfg = json.loads((hidden / "adapter_config.json").read_text())
    cfg["modules_to_save"] = None
    (hidden / "adapter_config.json").write_text(json.dumps(cfg))
    gguf_refused(hidden, "is not a LoRA A/B weight")

    dora = make_adapter(tiny, work / "adapter-dora", r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj"])
    gguf_refused(dora, "use_dora")

    # A LoRA on the embeddings of a base that ties them to the output head.
    with pytest.warns(UserWarning, match="tie_word_embeddings"):  # PEFT warns about it too
        emb = make_adapter(tiny, work / "adapter-emb", r=4, lora_alpha=8, target_modules=["embed_tokens"],
                           save_embedding_layers=False)
    gguf_refused(emb, "ties its embeddings")

    # An architecture without a mapping, and an adapter for another size of base.
    other = work / "other-arch"
    shutil.copytree(tiny, other, dirs_exist_ok=True)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "architectures": ["PhiForCausalLM"]}))
    plain = make_adapter(tiny, work / "adapter-plain", r=4, lora_alpha=8)
    gguf_refused(plain, "PhiForCausalLM has no GGUF LoRA mapping", base=other)
    bigger = work / "bigger"
    shutil.copytree(tiny, bigger, dirs_exist_ok=True)
    (bigger / "config.json").write_text(json.dumps({**cfg, "hidden_size": 128}))
    gguf_refused(plain, "trained on another base?", base=bigger)
    deeper = work / "shallower"
    shutil.copytree(tiny, deeper, dirs_exist_ok=True)
    (deeper / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 1}))
    gguf_refused(plain, "wrong base model?", base=deeper)

    # llama.cpp options belong to --merged.
    refused(["export", "gguf", "--adapter", str(plain), "--base-model", str(tiny), "--out", str(out), "--quantize", "q8_0"],
            "--quantize: only with --merged")
    assert list(tmp_path.iterdir()) == []


# --- --merged: driving llama.cpp ----------------------------------------------------------------

CONVERTER_STUB = """\
import json, sys
from pathlib import Path
args = sys.argv[1:]
log = Path(__file__).with_name("calls.jsonl")
model = Path(args[0])
config = json.loads((model / "config.json").read_text())
with log.open("a") as fh:
    fh.write(json.dumps({"argv": [sys.executable, __file__] + args, "files": sorted(p.name for p in model.iterdir()),
                         "rope_theta": config.get("rope_theta")}) + "\\n")
if "fail" in Path(__file__).parent.name:
    print("INFO: loading model")
    print("NotImplementedError: Architecture 'X' not supported!")
    sys.exit(3)
Path(args[args.index("--outfile") + 1]).write_bytes(b"GGUF converted " + args[args.index("--outtype") + 1].encode())
"""

QUANTIZER_STUB = """#!{python}
import json, sys
from pathlib import Path
log = Path(__file__).resolve().parents[2] / "calls.jsonl"
with log.open("a") as fh:
    fh.write(json.dumps({{"argv": sys.argv}}) + "\\n")
Path(sys.argv[2]).write_bytes(Path(sys.argv[1]).read_bytes() + b" quantized " + sys.argv[3].encode())
"""


def fake_llama_cpp(root: Path, *, quantizer: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / "convert_hf_to_gguf.py").write_text(CONVERTER_STUB)
    if quantizer:
        (root / "build" / "bin").mkdir(parents=True)
        q = root / "build" / "bin" / "llama-quantize"
        q.write_text(QUANTIZER_STUB.format(python=sys.executable))
        q.chmod(0o755)
    return root


def calls(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "calls.jsonl").read_text().splitlines()]


@pytest.fixture
def converter_needs(monkeypatch):
    """The packages the converter is checked for: ones this venv has (it need not have sentencepiece)."""
    from engine.stages import llama_cpp

    monkeypatch.setattr(llama_cpp, "CONVERTER_MODULES", ("numpy", "torch"))
    return llama_cpp


def test_merged_gguf_runs_the_converter_then_the_quantizer(work, tiny, adapter, tmp_path, converter_needs):
    llama_cpp = fake_llama_cpp(tmp_path / "llama.cpp")
    out = tmp_path / "models" / "student.gguf"
    rc, stdout, stderr = run_cli(
        ["export", "gguf", "--merged", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out),
         "--quantize", "q4_k_m", "--llama-cpp", str(llama_cpp)]
    )
    assert rc == 0, stderr
    assert stdout == f"{out}\n"
    assert out.read_bytes() == b"GGUF converted f16 quantized Q4_K_M"
    convert, quantize = calls(llama_cpp)
    argv = convert["argv"]
    assert argv[:2] == [sys.executable, str(llama_cpp / "convert_hf_to_gguf.py")]
    merged_dir, f16 = Path(argv[2]), Path(argv[4])
    assert argv[3:] == ["--outfile", str(f16), "--outtype", "f16"]
    # The converter was given a merged model folder, with the top-level rope_theta it reads.
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(convert["files"])
    assert convert["rope_theta"] == 10000.0
    assert merged_dir.parent == f16.parent and merged_dir.parent.parent == out.parent
    q = quantize["argv"]
    assert q[0] == str(llama_cpp / "build" / "bin" / "llama-quantize")
    assert q[1] == str(f16) and Path(q[2]).parent == out.parent and q[3] == "Q4_K_M"
    # Work folder, intermediate file and temp output gone; only the result (and no lock) remains.
    assert [p.name for p in out.parent.iterdir()] == ["student.gguf"]

    # Without --quantize: only the converter, writing (through a temp file) the output itself.
    plain = tmp_path / "models" / "student-f32.gguf"
    rc, _, stderr = run_cli(
        ["export", "gguf", "--merged", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(plain),
         "--outtype", "f32", "--llama-cpp", str(llama_cpp)]
    )
    assert rc == 0, stderr
    assert plain.read_bytes() == b"GGUF converted f32"
    assert len(calls(llama_cpp)) == 3 and calls(llama_cpp)[2]["argv"][-1] == "f32"
    assert sorted(p.name for p in plain.parent.iterdir()) == ["student-f32.gguf", "student.gguf"]

    # --python: the converter runs under that interpreter (found on PATH or by path).
    rc, _, stderr = run_cli(
        ["export", "gguf", "--merged", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(plain),
         "--llama-cpp", str(llama_cpp), "--python", sys.executable]
    )
    assert rc == 0, stderr
    assert calls(llama_cpp)[3]["argv"][0] == str(Path(sys.executable).absolute())


def test_merged_gguf_names_what_is_missing_and_a_failing_tool(work, tiny, adapter, tmp_path, monkeypatch, converter_needs):
    out = tmp_path / "out" / "m.gguf"
    base = ["export", "gguf", "--merged", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out)]
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    refused(base, "convert_hf_to_gguf.py is not on PATH: pass --llama-cpp DIR")
    refused([*base, "--llama-cpp", str(empty)], "convert_hf_to_gguf.py is not in it")
    refused([*base, "--llama-cpp", str(tmp_path / "nowhere")], "not a directory")
    no_quant = fake_llama_cpp(tmp_path / "llama.cpp-noq", quantizer=False)
    err = refused([*base, "--llama-cpp", str(no_quant), "--quantize", "Q8_0"], "needs llama.cpp's llama-quantize")
    assert "build/bin" in err
    refused([*base, "--llama-cpp", str(no_quant), "--quantize", "q3_k_s"], "--quantize")
    # A package the converter imports, missing here or in --python's interpreter; a --python that is not one.
    monkeypatch.setattr(converter_needs, "CONVERTER_MODULES", ("numpy", "po_tui_no_such_module"))
    refused([*base, "--llama-cpp", str(no_quant)], "needs the Python package(s) po_tui_no_such_module, missing in this Python")
    refused([*base, "--llama-cpp", str(no_quant), "--python", sys.executable],
            f"po_tui_no_such_module, missing in {Path(sys.executable).absolute()}")
    monkeypatch.setattr(converter_needs, "CONVERTER_MODULES", ("numpy",))
    refused([*base, "--llama-cpp", str(no_quant), "--python", str(tmp_path / "no-python")], "--python: no such Python")
    refused(["export", "gguf", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out),
             "--python", sys.executable], "--python: only with --merged")
    assert not out.parent.exists() and not (no_quant / "calls.jsonl").exists()

    # Found on PATH instead of --llama-cpp.
    on_path = fake_llama_cpp(tmp_path / "bin-dir")
    (on_path / "convert_hf_to_gguf.py").chmod(0o755)
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{on_path / 'build' / 'bin'}")
    rc, _, stderr = run_cli([*base, "--quantize", "q8_0"])
    assert rc == 0, stderr
    assert out.read_bytes().endswith(b"quantized Q8_0")
    out.unlink()

    # A converter that fails: exit 1, its last line, nothing left behind.
    failing = fake_llama_cpp(tmp_path / "fail-llama.cpp")
    rc, stdout, stderr = run_cli([*base, "--llama-cpp", str(failing)])
    assert rc == 1 and stdout == ""
    assert stderr.strip().splitlines()[-1] == (
        "po-tui export: failed: convert_hf_to_gguf.py exited with status 3: "
        "NotImplementedError: Architecture 'X' not supported!"
    )
    assert list(out.parent.iterdir()) == []


# --- Ollama -------------------------------------------------------------------------------------


def test_ollama_library_names_for_the_qwen25_family():
    assert ollama_library_name("Qwen/Qwen2.5-7B-Instruct") == "qwen2.5:7b-instruct"
    assert ollama_library_name("Qwen/Qwen2.5-0.5B-Instruct") == "qwen2.5:0.5b-instruct"
    assert ollama_library_name("/models/qwen2.5-72b-instruct/") == "qwen2.5:72b-instruct"
    assert ollama_library_name("Qwen/Qwen2.5-Coder-14B-Instruct") == "qwen2.5-coder:14b-instruct"
    for other in ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-Coder-72B-Instruct", "Qwen/Qwen2.5-9B-Instruct",
                  "meta-llama/Llama-3.2-1B-Instruct", "", None):
        assert ollama_library_name(other) is None


def test_ollama_qwen2_base_gets_the_gguf_adapter_over_the_library_model(work, tiny, adapter, tmp_path):
    out = tmp_path / "ollama"
    rc, stdout, stderr = run_cli(
        ["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--name", "po-student-v1", "--out", str(out)]
    )
    assert rc == 0, stderr
    modelfile = out / "Modelfile"
    assert stdout == f"ollama create po-student-v1 -f {modelfile}\nollama run po-student-v1\n"
    lines = modelfile.read_text().splitlines()
    assert lines[:2] == ["FROM qwen2.5:7b-instruct", "ADAPTER ./adapter.gguf"]
    assert sum(line.startswith("ADAPTER") for line in lines) == 1  # never the safetensors folder
    assert "quantized" in stderr  # the note about the library tag
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "adapter.gguf"]
    fields, tensors = read_gguf(out / "adapter.gguf")
    assert fields["general.architecture"].contents() == "qwen2" and fields["general.type"].contents() == "adapter"
    assert len(tensors) == 28

    # --from another build; --adapter-format safetensors is refused for qwen2 (Ollama cannot convert it).
    rc, _, stderr = run_cli(["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out),
                             "--from", "qwen2.5:7b-instruct-q8_0"])
    assert rc == 0, stderr
    assert modelfile.read_text().splitlines()[0] == "FROM qwen2.5:7b-instruct-q8_0"
    refused(["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(tmp_path / "s"),
             "--adapter-format", "safetensors"], "only for llama and gemma2")
    # A base Ollama has no library name for, and no --from: one line saying what to pass.
    anon = work / "anon-qwen"
    if not anon.exists():
        shutil.copytree(tiny, anon)
    anon_adapter = work / "adapter-anon"
    if not anon_adapter.exists():
        shutil.copytree(adapter, anon_adapter)
        cfg = json.loads((anon_adapter / "adapter_config.json").read_text())
        (anon_adapter / "adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": str(anon)}))
    refused(["export", "ollama", "--adapter", str(anon_adapter), "--base-model", str(anon), "--out", str(tmp_path / "n")],
            "--from: no Ollama library model is known")
    assert not (tmp_path / "n").exists() and not (tmp_path / "s").exists()


def _model_gguf(path: Path, kind: str = "model") -> Path:
    writer = gguf.GGUFWriter(path=None, arch="qwen2")
    writer.add_type(kind)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_ollama_merged_gguf_has_no_adapter_line(work, tiny, adapter, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    merged = _model_gguf(out / "model.gguf")
    saved = work / "adapter-mts"
    if not saved.exists():
        make_adapter(tiny, saved, r=4, lora_alpha=8, modules_to_save=["embed_tokens"], ensure_weight_tying=True)
    # An adapter that trains whole modules has no LoRA route: the refusal points at --merged-gguf.
    refused(["export", "ollama", "--adapter", str(saved), "--base-model", str(tiny), "--out", str(out)], "--merged-gguf")
    rc, stdout, stderr = run_cli(
        ["export", "ollama", "--adapter", str(saved), "--base-model", str(tiny), "--out", str(out), "--merged-gguf", str(merged),
         "--name", "po-student-v2"]
    )
    assert rc == 0, stderr
    text = (out / "Modelfile").read_text()
    assert text.splitlines()[0] == "FROM ./model.gguf"
    assert "ADAPTER" not in text and 'TEMPLATE """' in text
    assert stdout.splitlines() == [f"ollama create po-student-v2 -f {out / 'Modelfile'}", "ollama run po-student-v2"]
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "model.gguf"]

    # A GGUF elsewhere is named by its absolute path; an adapter GGUF or --from with it are refused.
    elsewhere = _model_gguf(tmp_path / "elsewhere.gguf")
    rc, _, _ = run_cli(["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out),
                        "--merged-gguf", str(elsewhere)])
    assert rc == 0 and (out / "Modelfile").read_text().splitlines()[0] == f"FROM {elsewhere.resolve()}"
    lora = _model_gguf(tmp_path / "lora.gguf", kind="adapter")
    refused(["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out),
             "--merged-gguf", str(lora)], "is a LoRA adapter GGUF")
    refused(["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out),
             "--merged-gguf", str(elsewhere), "--from", "qwen2.5:7b-instruct"], "pass one")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    refused(["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out),
             "--merged-gguf", str(tmp_path / "junk.gguf")], "not a GGUF file")


def test_ollama_llama_base_may_use_the_safetensors_adapter(work, llama, tmp_path):
    adapter = work / "adapter-llama-all"
    if not adapter.exists():
        make_adapter(llama, adapter, r=4, lora_alpha=8)
    out = tmp_path / "o"
    common = ["export", "ollama", "--adapter", str(adapter), "--base-model", str(llama), "--out", str(out)]
    # The default is still the GGUF adapter, which any llama.cpp architecture takes.
    rc, _, stderr = run_cli([*common, "--from", "llama3.2:1b"])
    assert rc == 0, stderr
    assert (out / "Modelfile").read_text().splitlines()[:2] == ["FROM llama3.2:1b", "ADAPTER ./adapter.gguf"]
    rc, _, stderr = run_cli([*common, "--from", "llama3.2:1b", "--adapter-format", "safetensors"])
    assert rc == 0, stderr
    assert (out / "Modelfile").read_text().splitlines()[:2] == ["FROM llama3.2:1b", f"ADAPTER {adapter.resolve()}"]
    # FROM the local folder: transformers 5 saved it without the top-level rope_theta Ollama reads.
    err = refused([*common, "--adapter-format", "safetensors"], "no top-level rope_theta")
    assert "config.json" in err


def test_ollama_from_must_be_something_ollama_loads(work, tiny, adapter, tmp_path):
    common = ["export", "ollama", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(tmp_path / "o")]
    refused([*common, "--from", "./no-such.gguf"], "no such file or folder")
    refused([*common, "--from", "not a name"], "not a GGUF file, a model folder or an Ollama model name")
    assert not (tmp_path / "o").exists()


def test_merge_writes_the_top_level_rope_theta_ollama_reads(work, tiny, adapter):
    from engine.stages.export import legacy_rope_keys

    out = work / "merged-rope"
    rc, _, stderr = run_cli(["export", "merge", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out)])
    assert rc == 0, stderr
    config = json.loads((out / "config.json").read_text())
    base = json.loads((tiny / "config.json").read_text())
    assert "rope_theta" not in base  # transformers 5 writes rope_parameters only
    assert config["rope_theta"] == base["rope_parameters"]["rope_theta"] == 10000.0
    assert "rope_scaling" not in config or not config["rope_scaling"]  # default RoPE: none
    # A scaled RoPE also gets the transformers-4 `rope_scaling` Ollama's converters read.
    yarn = legacy_rope_keys({"rope_parameters": {"rope_theta": 1e6, "rope_type": "yarn", "factor": 4.0,
                                                 "original_max_position_embeddings": 32768}})
    assert yarn["rope_theta"] == 1e6
    assert yarn["rope_scaling"] == {"type": "yarn", "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert legacy_rope_keys({"rope_theta": 5.0, "rope_parameters": {"rope_theta": 7.0}})["rope_theta"] == 5.0
    assert not math.isnan(config["rope_theta"])
