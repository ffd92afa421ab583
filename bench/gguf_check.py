"""Opt-in check, outside `make test`: does llama.cpp run our GGUF exports as PEFT runs the adapter?

Builds the tiny Qwen2 model and LoRA adapters with random, non-zero weights (a plain one, and one
with use_rslora + rank/alpha patterns, whose scale `export gguf` folds into lora_b), then for each:

1. `po-tui export gguf` (the LoRA adapter, f32 and f16) and llama.cpp's own convert_hf_to_gguf.py
   for the base (f32); `llama-completion -m base.gguf --lora adapter.gguf` greedy, against PEFT's
   greedy continuation of the same prompt (the student's training prompt, chat template applied);
2. `po-tui export gguf --merged` (f32, f16, and --quantize Q8_0) through the same llama.cpp, run
   without an adapter, against the same PEFT continuation;
3. the base alone, which must differ (else the adapter would not be under test).

Texts are compared (llama.cpp prints text, not ids): the same characters from the same vocabulary.
f32 rows must match exactly; f16 and Q8_0 rows are reported (tiny random models have close
logits, so a rounding can flip a greedy choice).

The tiny model's tokenizer is our own BPE, whose pre-tokenizer hash llama.cpp's converter does not
know; it is Qwen2's pre-tokenizer (engine/stages/tiny_model.py), so the converter is run through a
small wrapper that answers "qwen2" for it, and goes straight to the BPE vocabulary (Qwen2's
converter tries sentencepiece first, which po-tui's venv lacks and the tiny model does not use;
po-tui's own check for that package is relaxed here for the same reason). Nothing else is patched.

Needs a llama.cpp checkout with `build/bin/llama-completion` and `build/bin/llama-quantize`, e.g.
the one inside the llama-cpp-python source package:

    pip download --no-deps --no-binary :all: llama-cpp-python -d /tmp/lcpp
    tar xzf /tmp/lcpp/llama_cpp_python-*.tar.gz -C /tmp/lcpp
    cd /tmp/lcpp/llama_cpp_python-*/vendor/llama.cpp
    cmake -B build -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF
    cmake --build build -j --target llama-completion llama-quantize
    cd -; .venv/bin/python bench/gguf_check.py --llama-cpp /tmp/lcpp/llama_cpp_python-*/vendor/llama.cpp

Exit 0 when every f32 row matches; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.cli import main as po_tui
from engine.core.prompts import encode_prompt, render_student_prompt, use_chat_template
from engine.stages.concepts import generate_concepts
from engine.stages.export import add_legacy_rope_keys
from engine.stages.tiny_model import make_tiny_model

WRAPPER = """\
# bench/gguf_check.py: llama.cpp's converter, with the tiny tokenizer's pre-tokenizer named (it is Qwen2's).
import runpy, sys
from pathlib import Path
root = Path({root!r})
sys.path.insert(0, str(root))
sys.path.insert(1, str(root / "gguf-py"))
import conversion.base as base
import conversion.qwen as qwen
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
# Qwen2's vocabulary step tries sentencepiece first (absent here; the tiny model has no tokenizer.model).
qwen.Qwen2Model.set_vocab = lambda self: self._set_vocab_gpt2()
sys.argv[0] = str(root / "convert_hf_to_gguf.py")
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def cli(argv: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = po_tui(argv)
    if rc != 0:
        raise SystemExit(f"po-tui {' '.join(argv)} failed ({rc}): {err.getvalue().strip()}")
    return out.getvalue()


def wrapped_llama_cpp(real: Path, work: Path) -> Path:
    """A folder that looks like llama.cpp to `--llama-cpp`: the wrapper converter, the real quantizer."""
    fake = work / "llama.cpp-wrapped"
    (fake / "build" / "bin").mkdir(parents=True, exist_ok=True)
    (fake / "convert_hf_to_gguf.py").write_text(WRAPPER.format(root=str(real)))
    target = fake / "build" / "bin" / "llama-quantize"
    if not target.exists():
        target.symlink_to(real / "build" / "bin" / "llama-quantize")
    return fake


def make_adapter(base: Path, out: Path, seed: int, **lora) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32, local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, target_modules="all-linear", **lora))
    peft_model.save_pretrained(str(out))
    return out


def peft_greedy(base: Path, adapter: Path | None, prompts: list[list[int]], tokenizer, n: int) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32, local_files_only=True)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    texts = []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids])
            y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=n,
                               pad_token_id=tokenizer.pad_token_id)
            texts.append(tokenizer.decode(y[0, len(ids):].tolist(), skip_special_tokens=True).rstrip("\n"))
    return texts


def llama_greedy(llama_cpp: Path, model: Path, lora: Path | None, prompt: str, n: int, threads: int) -> str:
    argv = [str(llama_cpp / "build" / "bin" / "llama-completion"), "-m", str(model), "-p", prompt, "-n", str(n),
            "--temp", "0", "--top-k", "1", "-s", "0", "-no-cnv", "--no-display-prompt", "--simple-io",
            "--no-warmup", "-t", str(threads), "-c", "1024"]
    if lora is not None:
        argv += ["--lora", str(lora)]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:1])} failed ({done.returncode}): {done.stderr.strip().splitlines()[-3:]}")
    return done.stdout.rstrip("\n")  # the tool ends its output with newlines of its own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-cpp", required=True, type=Path, help="llama.cpp checkout with build/bin binaries")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temp folder, removed)")
    args = parser.parse_args()
    real = args.llama_cpp.resolve()
    for need in ("convert_hf_to_gguf.py", "build/bin/llama-completion", "build/bin/llama-quantize"):
        if not (real / need).exists():
            raise SystemExit(f"{real / need}: missing (see the docstring for the build)")

    work = args.work or Path(tempfile.mkdtemp(prefix="gguf-check-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _check(args, real, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def _check(args: argparse.Namespace, real: Path, work: Path) -> int:
    from transformers import AutoTokenizer

    from engine.stages import llama_cpp

    llama_cpp.CONVERTER_MODULES = tuple(m for m in llama_cpp.CONVERTER_MODULES if m != "sentencepiece")

    tiny = make_tiny_model(work / "tiny", seed=0)
    add_legacy_rope_keys(tiny / "config.json")  # older converters read only the top-level rope_theta
    tokenizer = AutoTokenizer.from_pretrained(str(tiny), local_files_only=True)
    chat = use_chat_template(tokenizer)
    rows = generate_concepts(args.prompts, 11)
    texts = [render_student_prompt(r["concept"], r["requirements_yaml"]) for r in rows]
    ids = [encode_prompt(tokenizer, t, chat=chat) for t in texts]
    prompt_texts = [tokenizer.decode(i, skip_special_tokens=False) for i in ids]

    wrapped = wrapped_llama_cpp(real, work)
    base_gguf = work / "base-f32.gguf"
    subprocess.run([sys.executable, str(wrapped / "convert_hf_to_gguf.py"), str(tiny), "--outfile", str(base_gguf),
                    "--outtype", "f32"], check=True, capture_output=True)

    adapters = {
        "plain r8": make_adapter(tiny, work / "adapter-plain", seed=1, r=8, lora_alpha=16),
        "rslora+patterns": make_adapter(tiny, work / "adapter-rs", seed=2, r=8, lora_alpha=16, use_rslora=True,
                                        rank_pattern={"q_proj": 4}, alpha_pattern={"down_proj": 40}),
    }
    rows_out: list[tuple[str, str, int, int, bool, int]] = []
    failed = False
    base_llama = [llama_greedy(real, base_gguf, None, p, args.tokens, args.threads) for p in prompt_texts]
    for label, adapter in adapters.items():
        want = peft_greedy(tiny, adapter, ids, tokenizer, args.tokens)
        runs = {}
        for outtype in ("f32", "f16"):
            lora = work / f"{adapter.name}-{outtype}.gguf"
            cli(["export", "gguf", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(lora), "--outtype", outtype])
            runs[f"base f32 + LoRA gguf {outtype}"] = (outtype == "f32", [
                llama_greedy(real, base_gguf, lora, p, args.tokens, args.threads) for p in prompt_texts])
        for outtype, quant in (("f32", None), ("f16", None), ("f16", "Q8_0")):
            merged = work / f"{adapter.name}-merged-{quant or outtype}.gguf"
            argv = ["export", "gguf", "--merged", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(merged),
                    "--outtype", outtype, "--llama-cpp", str(wrapped)]
            cli(argv + (["--quantize", quant] if quant else []))
            runs[f"merged gguf {quant or outtype}"] = (outtype == "f32", [
                llama_greedy(real, merged, None, p, args.tokens, args.threads) for p in prompt_texts])
        for name, (strict, got) in runs.items():
            same = sum(g == w for g, w in zip(got, want, strict=True))
            prefix = min(len(os.path.commonprefix([g, w])) for g, w in zip(got, want, strict=True))
            rows_out.append((label, name, same, len(want), strict, prefix))
            failed |= strict and same != len(want)
        differs = sum(b != w for b, w in zip(base_llama, want, strict=True))
        rows_out.append((label, "base alone differs from PEFT", differs, len(want), True, -1))
        failed |= differs != len(want)
        if failed and not args.work:
            for g, w in zip(runs["base f32 + LoRA gguf f32"][1], want, strict=True):
                print(f"  llama.cpp: {g!r}\n  peft:      {w!r}", file=sys.stderr)

    print(f"{'adapter':<18} {'llama.cpp run':<34} {'equal to PEFT greedy':<28} shortest common prefix")
    for label, name, same, n, strict, prefix in rows_out:
        mark = "" if strict else " (reported)"
        shown = f"{prefix} chars" if prefix >= 0 else ""
        print(f"{label:<18} {name:<34} {f'{same}/{n} prompts, {args.tokens} tokens':<28} {shown}{mark}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
