"""`po-tui export gguf`: the student as a GGUF LoRA adapter, or (`--merged`) a full GGUF model.

Registered by engine/commands/export.py as one of its actions; the work is in
engine/stages/gguf_export.py (and gguf_adapter.py, llama_cpp.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.core.inert import one_line
from engine.errors import InputError
from engine.runlog.job import add_job_args, job_events
from engine.stages.export import check_adapter, check_base_model
from engine.stages.gguf_adapter import DEFAULT_OUTTYPE, OUTTYPES
from engine.stages.gguf_export import check_gguf_merged_options, export_gguf_adapter, export_merged_gguf
from engine.stages.llama_cpp import QUANT_TYPES
from engine.store.lock import output_lock


def register_gguf(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = actions.add_parser(
        "gguf",
        parents=[common],
        help="write the LoRA as a GGUF LoRA adapter, or (--merged) a full GGUF model through llama.cpp",
        description=(
            "Without --merged: write the PEFT LoRA adapter as a GGUF LoRA adapter FILE, laid out as llama.cpp's "
            "convert_lora_to_gguf.py writes it (llama-server/llama-cli --lora FILE, Ollama ADAPTER FILE); only "
            "the base's config.json is read (Qwen2, Qwen3, Llama, Mistral bases). An adapter that also trains whole "
            "modules (modules_to_save, e.g. the embeddings) cannot be a LoRA file: use --merged. "
            "With --merged: merge the adapter into the base (as `export merge`), convert the merged folder with "
            "llama.cpp's convert_hf_to_gguf.py and, with --quantize, llama-quantize; both come from --llama-cpp "
            "DIR (a llama.cpp checkout with its build) or PATH. The converter runs under this Python."
        ),
    )
    g.add_argument("--adapter", required=True, metavar="DIR", help="the adapter folder `po-tui train` wrote")
    g.add_argument("--base-model", required=True, metavar="ID_OR_PATH", help="the base it was trained on")
    g.add_argument("--out", required=True, metavar="FILE", help="the .gguf file to write (replaced when it exists)")
    g.add_argument("--outtype", choices=OUTTYPES, default=DEFAULT_OUTTYPE, help="tensor type (default: %(default)s)")
    g.add_argument("--merged", action="store_true", help="a full model with the LoRA merged in, via llama.cpp")
    g.add_argument(
        "--quantize", metavar="TYPE",
        help=f"with --merged: quantize with llama-quantize ({', '.join(QUANT_TYPES.values())}; any case)",
    )
    g.add_argument(
        "--llama-cpp", metavar="DIR",
        help="with --merged: the llama.cpp checkout (convert_hf_to_gguf.py, build/bin/llama-quantize); default: PATH",
    )
    g.add_argument(
        "--python", metavar="PATH",
        help="with --merged: the Python that runs convert_hf_to_gguf.py (default: po-tui's; it needs torch, numpy, "
        "transformers, sentencepiece)",
    )
    add_job_args(g)
    g.set_defaults(func=run_gguf)
    return g


def _warn(message: str) -> None:
    sys.stderr.write(f"po-tui export gguf: note: {message}\n")


def run_gguf(args: argparse.Namespace) -> int:
    if not args.merged and (args.quantize or args.llama_cpp or args.python):
        flag = "--quantize" if args.quantize else "--llama-cpp" if args.llama_cpp else "--python"
        raise InputError("only with --merged (a LoRA adapter file is not converted or quantized by llama.cpp)", field=flag)
    # Every check (the llama.cpp tools included) before the event log or a model.
    if args.merged:
        check_gguf_merged_options(
            args.adapter, args.base_model, args.out, outtype=args.outtype, quantize=args.quantize,
            llama_cpp=args.llama_cpp, python=args.python,
        )
    else:
        check_adapter(args.adapter)
        check_base_model(args.base_model)
    start = time.monotonic()
    out = Path(args.out).expanduser()
    # One writer per output file: the lock sits beside it (`.FILE.po-tui.lock`).
    with output_lock(out, stage="export gguf", beside=True), job_events(args, "export-gguf") as events:
        if args.merged:
            path = export_merged_gguf(
                args.adapter, args.base_model, out, outtype=args.outtype, quantize=args.quantize,
                llama_cpp=args.llama_cpp, python=args.python, warn=_warn,
            )
        else:
            path = export_gguf_adapter(args.adapter, args.base_model, out, outtype=args.outtype, warn=_warn)
        events.artifact(str(path), "model" if args.merged else "adapter")
        events.summary.update(base_model=args.base_model, outtype=args.outtype, quantize=args.quantize, merged=args.merged)
    kind = f"full model, {(args.quantize or args.outtype)}" if args.merged else f"LoRA adapter, {args.outtype}"
    sys.stderr.write(
        f"po-tui export gguf: {one_line(path)} ({kind}, base {args.base_model}) in {time.monotonic() - start:.1f}s\n"
    )
    sys.stdout.write(f"{path}\n")
    return 0
