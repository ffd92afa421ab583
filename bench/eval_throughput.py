"""Evaluation throughput: samples/s and output tokens/s of `po-tui eval`'s batched decoding.

    # CPU, the tiny model (what docs/BENCHMARKS.md records for this machine)
    .venv/bin/python bench/eval_throughput.py --prompts 16 --max-new-tokens 256 --batch-sizes 1 4 8 16

    # GPU, a 7B-shaped Qwen2 with random weights (no download), bf16 or 4-bit
    .venv/bin/python bench/eval_throughput.py --shape qwen2.5-7b --random-weights \
        --prompts 32 --max-new-tokens 256 --batch-sizes 1 4 8 16 [--load-4bit]

What it runs is the stage's own code (`engine.stages.eval.local`): the model loaded once, the
student prompts through the chat template, sorted by length, left-padded batches, greedy
decoding with a KV cache. Every sequence generates exactly --max-new-tokens tokens
(`min_new_tokens` = `max_new_tokens`, so EOS is suppressed): a batch is only as fast as its
longest member, and equal lengths make every batch size do the same work, so the ratios measure
batching and nothing else. Each batch size decodes all prompts --repeats times after one warm-up
batch and the fastest pass counts. Its agreement with batch size 1 is reported: the share of
answers identical to batch 1's token for token, and the share of tokens before the first
difference. In fp32 every answer must agree, or the script exits 1 after the table; in bf16/fp16
on a GPU, kernels chosen per batch shape can flip a near-tied greedy token (transformers issue
25921), so there the rate is reported and does not fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from train_throughput import SHAPES, build_random_model  # noqa: E402 - the same 7B-shaped builder


def load(model_dir: Path, args: argparse.Namespace):
    from engine.stages.eval.local import LocalModel, plan_local
    from engine.stages.eval.settings import EvalSettings

    s = EvalSettings(dataset="-", out="-", tag="bench", base_model=str(model_dir), load_4bit=args.load_4bit, dtype=args.dtype)
    return LocalModel.load(s, plan_local(s))


def prompts(model, n: int) -> list[list[int]]:
    from engine.core.prompts import render_student_prompt
    from engine.stages.concepts import generate_concepts
    from engine.stages.eval.generate import USER, Turn

    rows = generate_concepts(n, 17)
    encoded = [model.encode((Turn(USER, render_student_prompt(r["concept"], r["requirements_yaml"])),)) for r in rows]
    return sorted(encoded, key=len)  # as the stage does: less padding per batch


def decode_all(model, encoded: list[list[int]], batch: int, config) -> tuple[float, list[list[int]]]:
    import torch

    outputs: list[list[int]] = []
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for start in range(0, len(encoded), batch):
        outputs += [o.ids for o in model.generate_ids(encoded[start:start + batch], config)]
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started, outputs


def agreement(outputs: list[list[int]], reference: list[list[int]]) -> tuple[float, float]:
    """(share of answers identical to the reference, share of reference tokens before the first
    difference): how far batched greedy decoding follows batch 1's."""
    same = sum(1 for o, r in zip(outputs, reference, strict=True) if o == r)
    prefix = total = 0
    for o, r in zip(outputs, reference, strict=True):
        total += len(r)
        prefix += next((i for i, (a, b) in enumerate(zip(o, r, strict=False)) if a != b), min(len(o), len(r)))
    return same / len(reference), (prefix / total if total else 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=("tiny", *SHAPES), default="tiny", help="tiny: po-tui make-tiny-model")
    ap.add_argument("--random-weights", action="store_true", help="required for the named shapes (nothing is downloaded)")
    ap.add_argument("--model", help="an existing local model directory instead of --shape")
    ap.add_argument("--prompts", type=int, default=16, help="student prompts decoded per batch size")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per batch size; the fastest counts (less noise)")
    ap.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"), default="auto")
    ap.add_argument("--load-4bit", action="store_true")
    ap.add_argument("--workdir", help="keep built models here (default: a temporary directory)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    if args.shape != "tiny" and not args.random_weights and not args.model:
        ap.error(f"--shape {args.shape} needs --random-weights (there is no download)")

    import torch

    from engine.stages.tiny_model import make_tiny_model
    from engine.stages.train.runner import hardware, quiet_libraries

    quiet_libraries()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="po-bench-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model:
        model_dir = Path(args.model)
    else:
        tiny = work / "tiny"
        if not (tiny / "config.json").exists():
            make_tiny_model(tiny, seed=0)
        model_dir = tiny if args.shape == "tiny" else build_random_model(args.shape, work / args.shape, tiny)
    model = load(model_dir, args)
    encoded = prompts(model, args.prompts)
    n_new = args.max_new_tokens
    config = model.generation_config(max_new_tokens=n_new, temperature=0.0, top_p=1.0, repetition_penalty=1.0,
                                     min_new_tokens=n_new)
    model.generate_ids(encoded[:min(2, len(encoded))], model.generation_config(
        max_new_tokens=8, temperature=0.0, top_p=1.0, repetition_penalty=1.0))  # warm-up

    rows, reference = [], None
    for batch in sorted(set(args.batch_sizes)):
        passes = [decode_all(model, encoded, batch, config) for _ in range(max(1, args.repeats))]
        seconds, outputs = min(passes, key=lambda p: p[0])
        if reference is None:
            reference = outputs if batch == 1 else decode_all(model, encoded, 1, config)[1]
        identical = outputs == reference
        answers, tokens = agreement(outputs, reference)
        assert all(len(o) == n_new for o in outputs), "min_new_tokens should force every answer to full length"
        rows.append({
            "batch_size": batch,
            "seconds": seconds,
            "samples_per_s": len(encoded) / seconds,
            "output_tokens_per_s": len(encoded) * n_new / seconds,
            "identical_to_batch_1": identical,
            "agreement": answers,
            "token_agreement": tokens,
        })
        print(f"batch {batch}: {rows[-1]['samples_per_s']:.3f} samples/s, {rows[-1]['output_tokens_per_s']:,.0f} tokens/s, "
              f"agreement with batch 1: {answers:.0%} of answers, {tokens:.1%} of tokens", file=sys.stderr)
    base = next((r for r in rows if r["batch_size"] == 1), rows[0])
    lengths = [len(p) for p in encoded]
    print(f"model {args.model or args.shape} ({model.dtype}{', 4-bit' if args.load_4bit else ''}), {hardware()}, "
          f"torch {torch.__version__}; {len(encoded)} prompts of {min(lengths)}-{max(lengths)} tokens, "
          f"{n_new} new tokens each (EOS suppressed), greedy, fastest of {max(1, args.repeats)} passes\n")
    print("| batch | wall s | samples/s | output tokens/s | vs batch 1 | answers = batch 1 | tokens before a difference |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch_size']} | {r['seconds']:.2f} | {r['samples_per_s']:.3f} | {r['output_tokens_per_s']:,.0f} | "
              f"{r['samples_per_s'] / base['samples_per_s']:.2f}x | {r['agreement']:.0%} | {r['token_agreement']:.1%} |")
    strict = model.dtype == "float32"  # bf16/fp16 kernels may legitimately flip a near-tied token
    if args.json:
        Path(args.json).write_text(json.dumps({"hardware": hardware(), "dtype": model.dtype, "strict": strict, "rows": rows}, indent=2))
    if strict and not all(r["identical_to_batch_1"] for r in rows):
        raise SystemExit("batched outputs differ from batch size 1 in float32")
    if not strict and not all(r["identical_to_batch_1"] for r in rows):
        print(f"\nnote: in {model.dtype} batched greedy answers may differ from batch 1's (transformers issue 25921): "
              "the agreement columns say how far", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
