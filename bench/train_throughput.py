"""Training throughput and peak memory: po-tui's recipe against the replaced one, on the same data.

    # CPU, the tiny model (what docs/BENCHMARKS.md records for this machine)
    .venv/bin/python bench/train_throughput.py --records 48 --batch-size 4 --steps 8

    # GPU, a 7B-shaped Qwen2 with random weights (no download): LoRA bf16 and QLoRA 4-bit
    .venv/bin/python bench/train_throughput.py --shape qwen2.5-7b --random-weights \
        --quant none 4bit --batch-size 4 --steps 10 --gradient-checkpointing

Recipes:
- `masked-dynamic` (po-tui train): loss on the answer tokens only, each batch padded to its
  longest example (`engine.stages.train.data` and DataCollatorForSeq2Seq).
- `replaced` (the seeds' script): prompt + answer as one text, every sample padded to
  --max-seq-len, loss on every non-padding token (DataCollatorForLanguageModeling).

Both run the same Trainer, LoRA settings, batch size and examples; each (recipe, quantisation)
runs in its own child process so peak memory is its own (ru_maxrss on CPU, max_memory_allocated
on CUDA). Timing skips --warmup-steps; tokens are non-padding input tokens (the Trainer's
`num_input_tokens_seen`), so both recipes are credited with the same useful work per example.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Qwen2.5-7B-Instruct's config.json dimensions; tiny-random exercises the same path on a CPU.
SHAPES = {
    "qwen2.5-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768, rope_theta=1e6,
                       rms_norm_eps=1e-6, tie_word_embeddings=False),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                         rms_norm_eps=1e-6, tie_word_embeddings=True),
    "tiny-random": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=2048, max_position_embeddings=4096, rope_theta=1e6,
                        rms_norm_eps=1e-6, tie_word_embeddings=False),
}


def build_data(path: Path, n: int, seed: int) -> None:
    from engine.core.prompts import render_student_prompt
    from engine.providers.po_writer import write_answer
    from engine.stages.concepts import generate_concepts

    with open(path, "w", encoding="utf-8") as fh:
        for row in generate_concepts(n, seed):
            answer = write_answer(row["concept"], row["requirements_yaml"], random.Random(f"{seed}:{row['concept_id']}"))
            fh.write(json.dumps({"prompt": render_student_prompt(row["concept"], row["requirements_yaml"]), "response": answer}) + "\n")


def build_random_model(shape: str, out: Path, tokenizer_dir: Path) -> Path:
    """A Qwen2 of the given shape with random weights, saved as a local model directory.

    Built on the GPU when there is one (fast init), saved once in bf16 so the quantised runs can
    load it through bitsandbytes like a downloaded model. The tokenizer is the tiny one: its ids
    are valid in any larger vocabulary; sequence lengths are those of the tiny tokenizer.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    if (out / "config.json").exists():
        return out
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(**SHAPES[shape], bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def replaced_examples(pairs, tokenizer, max_seq_len: int, chat: bool) -> list[dict]:
    """The seeds' preprocessing: one text, padded to max length, labels = inputs (pad masked later)."""
    from engine.core.prompts import prompt_text_for_model

    rows = []
    for p in pairs:
        text = prompt_text_for_model(tokenizer, p.prompt, chat=chat) + p.response + tokenizer.eos_token
        enc = tokenizer(text, add_special_tokens=False, padding="max_length", truncation=True, max_length=max_seq_len)
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return rows


def child(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, Trainer, TrainerCallback

    from engine.core.prompts import use_chat_template
    from engine.stages.train.data import ListDataset, encode_pairs, read_pairs
    from engine.stages.train.runner import check_inputs, load_base, quiet_libraries, training_arguments, with_lora
    from engine.stages.train.settings import TrainSettings

    quiet_libraries()
    total_steps = args.warmup_steps + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        s = TrainSettings(
            data=args.data, base_model=args.model, out=tmp, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
            lora_dropout=0.05, batch_size=args.batch_size, max_steps=total_steps, lr=1e-4, max_seq_len=args.max_seq_len,
            load_4bit=args.child_quant == "4bit", load_8bit=args.child_quant == "8bit",
            gradient_checkpointing=args.gradient_checkpointing, logging_steps=1, seed=0,
        )
        plan = check_inputs(s)
        tok = AutoTokenizer.from_pretrained(args.model)
        chat = use_chat_template(tok)
        pairs = read_pairs(args.data)
        if args.child_recipe == "masked-dynamic":
            enc = encode_pairs(pairs, tok, max_seq_len=args.max_seq_len, chat=chat)
            examples, collator = enc.examples, DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
            supervised = sum(sum(1 for x in e["labels"] if x != -100) for e in examples)
        else:
            examples, collator = replaced_examples(pairs, tok, args.max_seq_len, chat), DataCollatorForLanguageModeling(tok, mlm=False)
            supervised = sum(sum(e["attention_mask"]) for e in examples)
        real = sum(sum(e["attention_mask"]) for e in examples)
        cuda = plan.device == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        model = with_lora(load_base(s, plan), s)

        marks: dict[int, tuple[float, int]] = {}

        class Clock(TrainerCallback):
            def on_step_end(self, a, state, control, **kw):
                if cuda:
                    torch.cuda.synchronize()
                marks[state.global_step] = (time.perf_counter(), state.num_input_tokens_seen)

        args_ = training_arguments(s, plan, has_eval=False, save_strategy="no", logging_strategy="no", logging_first_step=False)
        trainer = Trainer(model=model, args=args_, train_dataset=ListDataset(examples), data_collator=collator, callbacks=[Clock()])
        trainer.train()
        (t0, n0), (t1, n1) = marks[args.warmup_steps], marks[total_steps]
        seconds = t1 - t0
        peak = (torch.cuda.max_memory_allocated() / 2**30) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return {
            "recipe": args.child_recipe,
            "quant": args.child_quant,
            "device": plan.device,
            "dtype": plan.dtype,
            "steps_timed": args.steps,
            "s_per_step": seconds / args.steps,
            "examples_per_s": args.steps * args.batch_size / seconds,
            "tokens_per_s": (n1 - n0) / seconds,
            "peak_gib": peak,
            "peak_kind": "cuda max_memory_allocated" if cuda else "process max RSS",
            "tokens_per_example": real / len(examples),
            "supervised_per_example": supervised / len(examples),
        }


def run_child(args: argparse.Namespace, recipe: str, quant: str) -> dict:
    cmd = [sys.executable, __file__, "--child-recipe", recipe, "--child-quant", quant, "--model", args.model,
           "--data", args.data, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
           "--warmup-steps", str(args.warmup_steps), "--max-seq-len", str(args.max_seq_len), "--lora-r", str(args.lora_r)]
    if args.gradient_checkpointing:
        cmd.append("--gradient-checkpointing")
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"{recipe}/{quant} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    base = {r["quant"]: r for r in rows if r["recipe"] == "replaced"}
    lines = [
        "| recipe | quant | tokens/example | supervised/example | s/step | examples/s | tokens/s | peak GiB | speed vs replaced |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ref = base.get(r["quant"])
        ratio = f"{r['examples_per_s'] / ref['examples_per_s']:.2f}x" if ref else "-"
        lines.append(
            f"| {r['recipe']} | {r['quant']} | {r['tokens_per_example']:.0f} | {r['supervised_per_example']:.0f} | "
            f"{r['s_per_step']:.3f} | {r['examples_per_s']:.2f} | {r['tokens_per_s']:,.0f} | {r['peak_gib']:.2f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=("tiny", *SHAPES), default="tiny", help="tiny: po-tui make-tiny-model")
    ap.add_argument("--random-weights", action="store_true", help="required for the named shapes (nothing is downloaded)")
    ap.add_argument("--model", help="an existing local model directory instead of --shape")
    ap.add_argument("--data", help="a prompt/response JSONL (default: synthetic records)")
    ap.add_argument("--records", type=int, default=48)
    ap.add_argument("--recipes", nargs="+", default=["masked-dynamic", "replaced"], choices=("masked-dynamic", "replaced"))
    ap.add_argument("--quant", nargs="+", default=["none"], choices=("none", "4bit", "8bit"))
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8, help="timed optimizer steps")
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--max-seq-len", type=int, default=2048)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--workdir", help="keep built models here (default: a temporary directory)")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--child-recipe", help=argparse.SUPPRESS)
    ap.add_argument("--child-quant", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child_recipe:
        print(json.dumps(child(args)))
        return
    if args.shape not in ("tiny",) and not args.random_weights and not args.model:
        ap.error(f"--shape {args.shape} needs --random-weights (there is no download)")

    import torch

    from engine.stages.tiny_model import make_tiny_model

    work = Path(args.workdir or tempfile.mkdtemp(prefix="po-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.model:
        tiny = work / "tiny"
        if not (tiny / "config.json").exists():
            make_tiny_model(tiny, seed=0)
        args.model = str(tiny if args.shape == "tiny" else build_random_model(args.shape, work / args.shape, tiny))
    if not args.data:
        args.data = str(work / "records.jsonl")
        build_data(Path(args.data), args.records, seed=11)
    needed = (args.warmup_steps + args.steps) * args.batch_size
    if sum(1 for _ in open(args.data, encoding="utf-8")) < needed:
        print(f"note: fewer records than {needed} examples: later steps reuse them (a new epoch)", file=sys.stderr)

    rows = []
    for quant in args.quant:
        for recipe in args.recipes:
            rows.append(run_child(args, recipe, quant))
            print(f"{recipe}/{quant}: {rows[-1]['examples_per_s']:.2f} examples/s, peak {rows[-1]['peak_gib']:.2f} GiB", file=sys.stderr)
    hw = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"model {args.shape if args.shape != 'tiny' or not args.model else args.model}, {hw}, torch {torch.__version__}, "
          f"batch {args.batch_size}, max_seq_len {args.max_seq_len}, {args.steps} timed steps after {args.warmup_steps}\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"hardware": hw, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
