"""GPU readiness in one command: the CUDA paths of train, eval and merge, run for real in minutes.

    # on a GPU box: Qwen2.5-7B-shaped random weights (0.5B-shaped for the merge), under 10 minutes
    .venv/bin/python bench/gpu_check.py --workdir /tmp/po-gpu-check --json gpu_check.json

    # every step on the tiny shapes on the CPU (under a minute; `make test` runs it)
    .venv/bin/python bench/gpu_check.py --dry-run

Nothing is downloaded: the models are Qwen2 configurations with random weights, built on the GPU
and saved in bf16 so every step loads them from disk like a real base (`build_random_model` of
bench/train_throughput.py), with the tiny tokenizer (its ids are valid in the larger vocabulary).
Each step goes through the product's own code -- the `po-tui train`, `po-tui eval` and
`po-tui export merge` commands in-process, or the eval stage's `LocalModel` -- and on a GPU runs
in its own process, so its peak memory (`torch.cuda.max_memory_allocated`) is its own:

- device: the card, its memory, native bf16, the library versions.
- build: the 7B- and 0.5B-shaped models, training records, evaluation concepts.
- lora_train / qlora_train: two optimizer steps at the seeds' settings (r 32 all-linear, alpha
  64, batch 4, 2,048 tokens at most) on the 16-bit or nf4 base; peak memory beside the estimate
  of bench/gpu_memory.py for the same tokens.
- checkpoint_resume: `--resume` continues lora_train's step-2 checkpoint to step 3.
- eval_4bit: the QLoRA student evaluated with `--load-4bit` (8 cases, batch 8).
- oom_split: an evaluation at batch 16 whose first batch runs freely; from then on the process's
  memory is capped (`torch.cuda.set_per_process_memory_fraction`) at what six sequences need, so
  the next batch of 16 runs out of memory and must be split -- and the split must stop at a
  batch that fits, not at 1 (it would, if the failed batch's memory were still held). On the CPU
  the out-of-memory error is raised for batches above 4 instead.
- agreement_bf16 / agreement_fp32: greedy answers at batch 8 against batch 1 (16 prompts, 32
  tokens). In bf16 kernels chosen per batch shape may flip near-tied tokens (transformers issue
  25921): the rate is reported, not judged. In fp32 every answer must agree.
- merge: a LoRA trained on the 0.5B shape, merged with `export merge`'s defaults: bf16 weights,
  and the config keys Ollama's and llama.cpp's converters read at the top level (`rope_theta`,
  which transformers 5 moves into `rope_parameters`, and the dimensions), equal to the base's.

It prints one table (stdout) and writes the rows as JSON (--json, default WORKDIR/gpu_check.json);
the exit status is 0 when every step passed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

RESULT_MARK = "GPU_CHECK_RESULT "
# The tiny stand-ins of a dry run: the 0.5B shape ties its embeddings, so its stand-in does too.
TINY, TINY_TIED = "tiny-random", "tiny-random-tied"
# What the converters read from config.json at the top level: Ollama's (convert/convert_qwen2.go,
# ModelParameters) and llama.cpp's convert_hf_to_gguf.py for Qwen2.
CONVERTER_KEYS = ("architectures", "vocab_size", "max_position_embeddings", "hidden_size", "num_hidden_layers",
                  "intermediate_size", "num_attention_heads", "num_key_value_heads", "rope_theta", "rms_norm_eps",
                  "tie_word_embeddings")
OLLAMA_ROPE_SCALING = ("", "default", "yarn", "mrope")  # any other type makes Ollama's converter panic
TRAIN_STEPS = 2
EVAL_CASES, OOM_CASES, OOM_BATCH = 8, 32, 16
# The cap after the first batch: room for this many of its sequences (the later, longer prompts
# need a little more each), so batches of 16 and 8 cannot fit and 4 can. The CPU's simulated
# error hits batches above SIMULATED_FIT.
CAP_SEQUENCES, SIMULATED_FIT = 6, 4
AGREE_PROMPTS, AGREE_TOKENS, AGREE_BATCH = 16, 32, 8


@dataclass
class Context:
    """Paths and choices every step reads (written to WORKDIR/context.json for the child processes)."""

    work: str
    big_shape: str
    small_shape: str
    dry_run: bool

    def path(self, *parts: str) -> Path:
        return Path(self.work).joinpath(*parts)

    @property
    def big(self) -> Path:
        return self.path("models", self.big_shape)

    @property
    def small(self) -> Path:
        return self.path("models", self.small_shape)

    @property
    def data(self) -> Path:
        return self.path("train.jsonl")

    @property
    def concepts(self) -> Path:
        return self.path("concepts.jsonl")


# --- helpers ------------------------------------------------------------------------------------


def result(ok: bool, detail: str, **data: Any) -> dict[str, Any]:
    return {"status": "pass" if ok else "fail", "detail": detail, "data": data}


def cli(argv: list[str]) -> tuple[int, str]:
    """`po-tui ARGV` in this process: (exit status, what it wrote to stderr)."""
    from engine.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, err.getvalue()


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def fresh(path: Path) -> Path:
    """A step's own folder, emptied: rerunning the check in the same workdir starts the step over."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def register_tiny_shapes() -> None:
    from train_throughput import SHAPES

    SHAPES.setdefault(TINY_TIED, {**SHAPES[TINY], "tie_word_embeddings": True})


def train_argv(ctx: Context, base: Path, out: Path, *extra: str, steps: int = TRAIN_STEPS) -> list[str]:
    """`po-tui train` at the seeds' settings (r 32, alpha 64, batch 4, lr 1e-4, 2,048 tokens)."""
    return ["train", "--data", str(ctx.data), "--base-model", str(base), "--out", str(out), "--lora-r", "32",
            "--lora-alpha", "64", "--lora-dropout", "0.05", "--batch-size", "4", "--lr", "1e-4", "--max-seq-len", "2048",
            "--max-steps", str(steps), "--save-steps", "2", "--logging-steps", "1", "--seed", "0", *extra]


def train_info(out: Path) -> dict[str, Any]:
    path = out / "po_tui_train.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def longest_batch_tokens(ctx: Context, batch: int = 4) -> int:
    """batch x the longest training example, in the base's tokens: what one padded step holds at most."""
    from transformers import AutoTokenizer

    from engine.core.prompts import use_chat_template
    from engine.stages.train.data import encode_pairs, read_pairs

    tok = AutoTokenizer.from_pretrained(str(ctx.big))
    enc = encode_pairs(read_pairs(ctx.data), tok, max_seq_len=2048, chat=use_chat_template(tok))
    return batch * max(len(e["input_ids"]) for e in enc.examples)


def results_doc(out: Path, tag: str) -> dict[str, Any]:
    files = sorted(out.glob(f"{tag}_*.json"))
    return json.loads(files[-1].read_text()) if files else {}


def batch_sizes(doc: dict[str, Any]) -> list[int]:
    return [a["batch_size"] for r in doc.get("results", []) for a in r.get("attempt_log", [])]


# --- steps --------------------------------------------------------------------------------------


def step_device(ctx: Context) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    try:
        import bitsandbytes

        bnb = bitsandbytes.__version__
    except ImportError:
        bnb = None
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                "bitsandbytes": bnb}
    if not torch.cuda.is_available():
        if ctx.dry_run:
            return result(True, f"CPU ({os.cpu_count()} cores): dry run on the tiny shapes", cuda=False, **versions)
        return result(False, "no CUDA device (pass --dry-run to run every step on the CPU)", cuda=False, **versions)
    p = torch.cuda.get_device_properties(0)
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    detail = (f"{p.name}, {p.total_memory / 2**30:.1f} GiB, sm{p.major}{p.minor}, "
              f"{'bf16' if bf16 else 'no native bf16: fp16'}, {torch.cuda.device_count()} device(s)")
    if bnb is None:
        return result(False, detail + "; bitsandbytes missing (QLoRA and 4-bit eval need it)", cuda=True, **versions)
    return result(True, detail, cuda=True, name=p.name, total_gib=round(p.total_memory / 2**30, 2),
                  capability=f"{p.major}.{p.minor}", native_bf16=bf16, devices=torch.cuda.device_count(), **versions)


def step_build(ctx: Context) -> dict[str, Any]:
    import torch
    from train_throughput import build_data, build_random_model

    from engine.stages.concepts import generate_concepts
    from engine.stages.tiny_model import make_tiny_model
    from engine.store.atomic import atomic_write_jsonl

    register_tiny_shapes()
    torch.manual_seed(0)  # the same random weights every run
    tiny = ctx.path("models", "tokenizer")
    if not (tiny / "config.json").exists():
        make_tiny_model(tiny, seed=0)
    sizes, described = {}, []
    for shape, folder in ((ctx.big_shape, ctx.big), (ctx.small_shape, ctx.small)):
        build_random_model(shape, folder, tiny)  # bf16 on a GPU, fp32 on the CPU
        sizes[shape] = round(sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2**30, 3)
        dtype = json.loads((folder / "config.json").read_text()).get("dtype")
        described.append(f"{shape} {sizes[shape]:.2f} GiB {dtype}")
    build_data(ctx.data, 16, seed=11)
    atomic_write_jsonl(ctx.concepts, generate_concepts(OOM_CASES, 9))
    return result(True, ", ".join(described) + f", 16 records, {OOM_CASES} concepts", weights_gib=sizes)


def _train_step(ctx: Context, name: str, *extra: str) -> dict[str, Any]:
    from gpu_memory import Dims, estimate_gib

    out = fresh(ctx.path(name))
    rc, err = cli(train_argv(ctx, ctx.big, out / "adapter", *extra))
    info = train_info(out / "adapter")
    if rc != 0 or not info:
        return result(False, f"po-tui train exited {rc}: {last_line(err)}")
    loss, hp = info["loss"], info["hyperparameters"]
    tokens = longest_batch_tokens(ctx)
    qlora = "--load-4bit" in extra
    checkpointing = bool(hp.get("gradient_checkpointing"))
    estimate = estimate_gib(Dims.of(ctx.big_shape), qlora=qlora, batch=4, seq=tokens // 4, checkpointing=checkpointing)
    ok = info["steps"] == TRAIN_STEPS and finite(loss["first"]) and finite(loss["final"]) \
        and (out / "adapter" / "checkpoints" / f"checkpoint-{TRAIN_STEPS}" / "trainer_state.json").is_file()
    runtime = info.get("train_runtime_s") or 0.0
    detail = (f"{info['steps']} steps, loss {loss['first']:.3f} -> {loss['final']:.3f}, {runtime / max(1, info['steps']):.2f} s/step, "
              f"{info.get('compute_dtype')}, checkpointing {'on' if checkpointing else 'off'}, "
              f"{tokens:,} tokens/step at most; estimate {estimate:.1f} GiB")
    return result(ok, detail, steps=info["steps"], loss=loss, compute_dtype=info.get("compute_dtype"),
                  gradient_checkpointing=checkpointing, max_tokens_per_step=tokens, estimate_gib=round(estimate, 2),
                  s_per_step=runtime / max(1, info["steps"]), hardware=info.get("hardware"))


def step_lora_train(ctx: Context) -> dict[str, Any]:
    return _train_step(ctx, "lora_train")


def step_qlora_train(ctx: Context) -> dict[str, Any]:
    return _train_step(ctx, "qlora_train", "--load-4bit")


def step_checkpoint_resume(ctx: Context) -> dict[str, Any]:
    out = ctx.path("lora_train", "adapter")
    rc, err = cli(train_argv(ctx, ctx.big, out, "--resume", steps=TRAIN_STEPS + 1))
    info = train_info(out)
    if rc != 0 or not info:
        return result(False, f"po-tui train --resume exited {rc}: {last_line(err)}")
    resumed = str(info.get("resumed_from") or "")
    ok = resumed.endswith(f"checkpoint-{TRAIN_STEPS}") and info["steps"] == TRAIN_STEPS + 1 and finite(info["loss"]["final"])
    return result(ok, f"resumed from {Path(resumed).name or 'nothing'} to step {info['steps']}, "
                      f"loss {info['loss']['final']:.3f}", resumed_from=resumed, steps=info["steps"])


def step_eval_4bit(ctx: Context) -> dict[str, Any]:
    out = fresh(ctx.path("eval_4bit"))
    rc, err = cli(["eval", "--dataset", str(ctx.concepts), "--base-model", str(ctx.big), "--adapter",
                   str(ctx.path("qlora_train", "adapter")), "--tag", "student", "--out", str(out), "--load-4bit",
                   "--max-samples", str(EVAL_CASES), "--batch-size", "8", "--max-new-tokens", "32", "--retries", "0"])
    doc = results_doc(out, "student")
    if rc != 0 or not doc:
        return result(False, f"po-tui eval exited {rc}: {last_line(err)}")
    gen, speed = doc["po_tui"]["generation"], doc["po_tui"]["speed"]
    device = "cuda" if cuda() else "cpu"
    ok = doc["total_samples"] == EVAL_CASES and gen["load_4bit"] is True and gen.get("device") == device
    return result(ok, f"{doc['total_samples']} cases on {gen.get('device')} ({gen.get('dtype')} compute, nf4), "
                      f"{speed['s_per_sample']:.2f} s/case, {speed['output_tokens_per_s']:,.0f} output tokens/s",
                  cases=doc["total_samples"], device=gen.get("device"), dtype=gen.get("dtype"), speed=speed)


def step_oom_split(ctx: Context) -> dict[str, Any]:
    """An evaluation at batch 16 whose memory is capped after its first batch (see the docstring)."""
    import torch

    from engine.stages.eval import local

    on_cuda = torch.cuda.is_available()
    original_batch, original_generate = local.LocalModel._decode_batch, local.LocalModel.generate_ids
    seen: dict[str, Any] = {"batches": 0, "cap_gib": None}

    def capped_batch(self, batch, config, on_done):  # noqa: ANN001 - LocalModel._decode_batch's
        seen["batches"] += 1
        if seen["batches"] == 1 and on_cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            seen["base"] = torch.cuda.memory_allocated()
        if seen["batches"] == 2:
            per_sequence = seen.get("per_sequence", 0)
            if on_cuda:
                local.release_memory()
                cap = torch.cuda.memory_reserved() + CAP_SEQUENCES * per_sequence
                total = torch.cuda.get_device_properties(0).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total))
                seen["cap_gib"] = round(cap / 2**30, 2)
        original_batch(self, batch, config, on_done)
        if seen["batches"] == 1 and on_cuda:
            seen["per_sequence"] = (torch.cuda.max_memory_allocated() - seen["base"]) / len(batch)

    def simulated_generate(self, prompts, config, *, seed=None):  # noqa: ANN001 - LocalModel.generate_ids's
        if seen["batches"] >= 2 and len(prompts) > SIMULATED_FIT:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated on the CPU by bench/gpu_check.py)")
        return original_generate(self, prompts, config, seed=seed)

    out = fresh(ctx.path("oom_split"))
    local.LocalModel._decode_batch = capped_batch
    if not on_cuda:
        local.LocalModel.generate_ids = simulated_generate
    try:
        rc, err = cli(["eval", "--dataset", str(ctx.concepts), "--base-model", str(ctx.big), "--tag", "baseline",
                       "--out", str(out), "--max-samples", str(OOM_CASES), "--batch-size", str(OOM_BATCH),
                       "--max-new-tokens", "32", "--retries", "0"])
    finally:
        local.LocalModel._decode_batch, local.LocalModel.generate_ids = original_batch, original_generate
        if on_cuda:
            torch.cuda.set_per_process_memory_fraction(1.0)
    doc = results_doc(out, "baseline")
    if rc != 0 or not doc:
        return result(False, f"po-tui eval exited {rc}: {last_line(err)}", cap_gib=seen["cap_gib"])
    splits = doc["po_tui"]["generation"].get("oom_splits", 0)
    sizes = batch_sizes(doc)
    after = sorted(set(sizes) - {OOM_BATCH}) or [OOM_BATCH]
    ok = doc["total_samples"] == OOM_CASES and splits >= 1 and min(sizes) >= 2
    how = f"capped at {seen['cap_gib']} GiB after batch 1" if on_cuda else f"out of memory simulated above batch {SIMULATED_FIT}"
    detail = (f"{how}: {splits} split(s), then batches of {'/'.join(map(str, after))}, smallest {min(sizes)}; "
              f"{doc['total_samples']}/{OOM_CASES} cases")
    if splits == 0:
        detail += " (the cap never bit: nothing was exercised)"
    return result(ok, detail, oom_splits=splits, batch_sizes=sorted(set(sizes)), cap_gib=seen["cap_gib"],
                  per_sequence_mib=round(seen.get("per_sequence", 0) / 2**20, 1))


def _agreement(ctx: Context, dtype: str) -> dict[str, Any]:
    from argparse import Namespace

    import eval_throughput as bench

    model_dir, note = ctx.big, ""
    if dtype == "float32" and cuda():
        import torch

        free, _ = torch.cuda.mem_get_info()
        need = 2.2 * sum(f.stat().st_size for f in ctx.big.glob("*.safetensors"))  # fp32 is twice the bf16 files
        if free < need:
            model_dir, note = ctx.small, f" ({ctx.small_shape}: fp32 {ctx.big_shape} needs {need / 2**30:.0f} GiB)"
    model = bench.load(model_dir, Namespace(load_4bit=False, dtype=dtype))
    encoded = bench.prompts(model, AGREE_PROMPTS)
    config = model.generation_config(max_new_tokens=AGREE_TOKENS, temperature=0.0, top_p=1.0, repetition_penalty=1.0,
                                     min_new_tokens=AGREE_TOKENS)
    single_s, single = bench.decode_all(model, encoded, 1, config)
    batched_s, batched = bench.decode_all(model, encoded, AGREE_BATCH, config)
    answers, tokens = bench.agreement(batched, single)
    strict = dtype == "float32"
    detail = (f"batch {AGREE_BATCH} vs 1 on {model.device}: {answers:.0%} of answers identical, {tokens:.1%} of tokens "
              f"before a difference; {single_s / batched_s:.1f}x faster{note}")
    if not strict:
        detail += " (reported, not judged: transformers #25921)"
    return result(answers == 1.0 or not strict, detail, answers=answers, tokens=tokens, device=model.device,
                  model=str(model_dir), speedup=single_s / batched_s)


def step_agreement_bf16(ctx: Context) -> dict[str, Any]:
    return _agreement(ctx, "bfloat16")


def step_agreement_fp32(ctx: Context) -> dict[str, Any]:
    return _agreement(ctx, "float32")


def step_merge(ctx: Context) -> dict[str, Any]:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    out = fresh(ctx.path("merge"))
    rc, err = cli(train_argv(ctx, ctx.small, out / "adapter", steps=1))
    if rc != 0:
        return result(False, f"po-tui train (0.5B shape) exited {rc}: {last_line(err)}")
    merged = out / "merged"
    rc, err = cli(["export", "merge", "--adapter", str(out / "adapter"), "--base-model", str(ctx.small), "--out", str(merged)])
    if rc != 0:
        return result(False, f"po-tui export merge exited {rc}: {last_line(err)}")
    base = json.loads((ctx.small / "config.json").read_text())
    config = json.loads((merged / "config.json").read_text())
    theta = (base.get("rope_parameters") or {}).get("rope_theta", base.get("rope_theta"))
    expected = {k: base.get(k) for k in CONVERTER_KEYS} | {"rope_theta": theta}
    problems = [f"{k} {config.get(k)!r} (base {v!r})" for k, v in expected.items() if config.get(k) != v or v is None]
    scaling = config.get("rope_scaling")
    if isinstance(scaling, dict) and scaling.get("type", scaling.get("rope_type", "")) not in OLLAMA_ROPE_SCALING:
        problems.append(f"rope_scaling type {scaling.get('type')!r}")
    dtypes: set[str] = set()
    for file in merged.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as fh:
            dtypes |= {str(fh.get_tensor(name).dtype).replace("torch.", "") for name in fh.keys()}
    if dtypes != {"bfloat16"}:
        problems.append(f"weights {sorted(dtypes)} (default should be bfloat16)")
    model = AutoModelForCausalLM.from_pretrained(str(merged), local_files_only=True,
                                                 device_map={"": 0} if cuda() else None)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([[1, 2, 3, 4]], device=model.device)).logits
    if not torch.isfinite(logits).all():
        problems.append("the merged model's logits are not finite")
    detail = (f"{', '.join(sorted(dtypes))} weights; top-level rope_theta {config.get('rope_theta')} and "
              f"{len(CONVERTER_KEYS) - 1} more converter keys as the base's; logits finite")
    return result(not problems, "; ".join(problems) if problems else detail, dtypes=sorted(dtypes),
                  config={k: config.get(k) for k in CONVERTER_KEYS})


Step = Callable[[Context], dict[str, Any]]
STEPS: list[tuple[str, Step, tuple[str, ...]]] = [
    ("device", step_device, ()),
    ("build", step_build, ("device",)),
    ("lora_train", step_lora_train, ("build",)),
    ("checkpoint_resume", step_checkpoint_resume, ("lora_train",)),
    ("qlora_train", step_qlora_train, ("build",)),
    ("eval_4bit", step_eval_4bit, ("qlora_train",)),
    ("oom_split", step_oom_split, ("build",)),
    ("agreement_bf16", step_agreement_bf16, ("build",)),
    ("agreement_fp32", step_agreement_fp32, ("build",)),
    ("merge", step_merge, ("build",)),
]


# --- running ------------------------------------------------------------------------------------


def measured(name: str, ctx: Context) -> dict[str, Any]:
    """Run one step here: its result plus seconds and (on CUDA) peak allocated memory."""
    import torch

    from engine.stages.train.runner import quiet_libraries

    quiet_libraries()
    register_tiny_shapes()
    step = next(fn for n, fn, _ in STEPS if n == name)
    on_cuda = torch.cuda.is_available()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        row = step(ctx)
    except Exception as exc:  # noqa: BLE001 - a step that crashes is a failed step, with its reason
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        row = result(False, f"{type(exc).__name__}: {first}")
    row["seconds"] = round(time.perf_counter() - started, 2)
    row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_cuda else None
    return row


def in_child(name: str, ctx_file: Path, timeout: float) -> dict[str, Any]:
    """The step in its own process: its memory, its CUDA context, its crash are its own."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TOKENIZERS_PARALLELISM": "false"}
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--context", str(ctx_file)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**result(False, f"timed out after {timeout:.0f}s"), "seconds": round(time.perf_counter() - started, 2),
                "peak_gib": None}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    return {**result(False, f"exited {proc.returncode}: {last_line(proc.stderr)}"),
            "seconds": round(time.perf_counter() - started, 2), "peak_gib": None}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| step | result | seconds | peak GiB | detail |", "|---|---|---:|---:|---|"]
    for r in rows:
        peak = "-" if r.get("peak_gib") is None else f"{r['peak_gib']:.2f}"
        seconds = "-" if r.get("seconds") is None else f"{r['seconds']:.1f}"
        detail = str(r["detail"]).replace("|", "/")
        lines.append(f"| {r['step']} | {r['status']} | {seconds} | {peak} | {detail} |")
    return "\n".join(lines)


def run_all(ctx: Context, *, isolate: bool, timeout: float, only: set[str] | None = None) -> list[dict[str, Any]]:
    ctx_file = ctx.path("context.json")
    ctx_file.write_text(json.dumps(asdict(ctx)))
    status: dict[str, str] = {}
    rows = []
    for name, _fn, needs in STEPS:
        blocked = [n for n in needs if status.get(n) != "pass"]
        if only is not None and name not in only and name not in ("device", "build"):
            status[name] = "skip"
            continue
        if blocked:
            row = {**result(False, f"not run: needs {', '.join(blocked)}"), "status": "skip", "seconds": None, "peak_gib": None}
        else:
            row = in_child(name, ctx_file, timeout) if isolate else measured(name, ctx)
        row = {"step": name, **row}
        status[name] = row["status"]
        rows.append(row)
        peak = "" if row.get("peak_gib") is None else f", peak {row['peak_gib']:.2f} GiB"
        print(f"gpu_check: {name}: {row['status']} ({row.get('seconds') or 0:.1f}s{peak}) {row['detail']}", file=sys.stderr)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", "--cpu", dest="dry_run", action="store_true",
                    help="every step on the tiny shapes on the CPU, in this process (CUDA hidden)")
    ap.add_argument("--shape", default=None, help="the large model's shape (default: qwen2.5-7b; dry run: tiny-random)")
    ap.add_argument("--merge-shape", default=None, help="the merged model's shape (default: qwen2.5-0.5b)")
    ap.add_argument("--steps", nargs="+", metavar="STEP", help="run only these (device and build always run)")
    ap.add_argument("--workdir", help="models and outputs (default: a temporary directory, kept)")
    ap.add_argument("--json", help="write the rows here (default: WORKDIR/gpu_check.json)")
    ap.add_argument("--step-timeout", type=float, default=420.0, help="seconds one step may take on a GPU")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--context", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        ctx = Context(**json.loads(Path(args.context).read_text()))
        print(RESULT_MARK + json.dumps(measured(args.child, ctx)), flush=True)
        return 0

    from train_throughput import SHAPES

    big = args.shape or (TINY if args.dry_run else "qwen2.5-7b")
    small = args.merge_shape or (TINY_TIED if args.dry_run else "qwen2.5-0.5b")
    for flag, shape in (("--shape", big), ("--merge-shape", small)):
        if shape not in (*SHAPES, TINY_TIED):
            ap.error(f"{flag}: unknown shape {shape!r} (one of {', '.join((*SHAPES, TINY_TIED))})")
    unknown = set(args.steps or ()) - {n for n, _, _ in STEPS}
    if unknown:
        ap.error(f"--steps: unknown {', '.join(sorted(unknown))} (one of {', '.join(n for n, _, _ in STEPS)})")
    if args.dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: the CPU even on a GPU box
    work = Path(args.workdir or tempfile.mkdtemp(prefix="po-gpu-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(str(work), big, small, args.dry_run)
    if args.dry_run:
        import torch

        torch.set_num_threads(1)  # tiny shapes: per-op overhead, which more threads only add to
    started = time.perf_counter()
    rows = run_all(ctx, isolate=not args.dry_run, timeout=args.step_timeout,
                   only=set(args.steps) if args.steps else None)
    device = rows[0]["data"] if rows else {}
    passed = all(r["status"] == "pass" for r in rows)
    where = device.get("name") or "CPU (dry run)"
    print(f"gpu_check on {where}: {big} (merge: {small}); torch {device.get('torch')}, transformers "
          f"{device.get('transformers')}, peft {device.get('peft')}, bitsandbytes {device.get('bitsandbytes')}; "
          f"{time.perf_counter() - started:.0f}s in all\n")
    print(table(rows))
    out = Path(args.json) if args.json else work / "gpu_check.json"
    out.write_text(json.dumps({"device": device, "shape": big, "merge_shape": small, "dry_run": args.dry_run,
                               "seconds": round(time.perf_counter() - started, 1), "passed": passed, "steps": rows},
                              indent=2, default=str))
    print(f"gpu_check: {'every step passed' if passed else 'FAILED'}; rows in {out}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
