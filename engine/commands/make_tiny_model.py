"""`po-tui make-tiny-model --out DIR`: a tiny Qwen2-shaped model and tokenizer, built offline.

Model hubs are unreachable here, so tests and the demo train and generate with this one. Sizes
are checked before anything is built, so bad input costs no time and leaves no folder behind.
"""

from __future__ import annotations

import argparse
import sys
import time

from engine.commands import argtypes
from engine.errors import InputError
from engine.runlog.job import add_job_args, job_events
from engine.stages.teacher.settings import SYNTHETIC_STYLES
from engine.stages.tiny_model import check_sizes, make_tiny_model, read_info


def register(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "make-tiny-model",
        parents=[common],
        help="build a tiny local Qwen2-style model and tokenizer (offline, for tests and the demo)",
        description=(
            "Train a byte-level BPE tokenizer on synthetic student prompts and answers and save "
            "it with a randomly initialised Qwen2ForCausalLM in DIR, loadable with "
            "AutoTokenizer / AutoModelForCausalLM. The same options give byte-identical files. "
            "DIR must be new, empty, or an earlier tiny model (which is replaced)."
        ),
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="random seed (default: 0)")
    p.add_argument("--hidden", type=int, default=64, metavar="N", help="hidden size (default: 64)")
    p.add_argument("--layers", type=int, default=2, metavar="N", help="decoder layers (default: 2)")
    p.add_argument("--heads", type=int, default=4, metavar="N", help="attention heads (default: 4)")
    p.add_argument(
        "--kv-heads", type=int, default=2, metavar="N",
        help="key/value heads, must divide --heads (default: 2)",
    )
    p.add_argument(
        "--intermediate", type=int, default=None, metavar="N",
        help="MLP size (default: 4 x --hidden)",
    )
    p.add_argument(
        "--vocab-size", type=int, default=2048, metavar="N",
        help="BPE vocabulary size to train (default: 2048)",
    )
    p.add_argument(
        "--corpus-size", type=int, default=400, metavar="N",
        help="concepts whose prompt and answer train the tokenizer (default: 400)",
    )
    p.add_argument(
        "--style", choices=SYNTHETIC_STYLES, default="full",
        help="the synthetic answers in the tokenizer's corpus: full prose or the demo's compact ones (default: full)",
    )
    p.add_argument(
        "--init-range", type=float, default=0.3, metavar="X",
        help="std of the random weights (default: 0.3; 0.02 with --modules-to-save embed_tokens in training)",
    )
    add_job_args(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    sizes = dict(
        hidden=args.hidden, layers=args.layers, heads=args.heads, kv_heads=args.kv_heads,
        intermediate=args.intermediate, vocab_size=args.vocab_size, corpus_size=args.corpus_size,
    )
    check_sizes(**sizes)
    if not 0.0 < args.init_range <= 1.0:  # also refuses nan
        raise InputError(f"must be in (0, 1], got {args.init_range}", field="--init-range")
    start = time.monotonic()
    with job_events(args, "make-tiny-model") as events:
        path = make_tiny_model(args.out, seed=args.seed, style=args.style, init_range=args.init_range, **sizes)
        info = read_info(path)
        weights = path / "model.safetensors"
        events.artifact(str(weights), "model")
        events.summary.update(
            parameters=info["parameters"], vocab_size=info["vocab_size"], seed=args.seed
        )
    seconds = time.monotonic() - start
    sys.stderr.write(
        f"po-tui make-tiny-model: {path} ({info['parameters']:,} parameters, vocab "
        f"{info['vocab_size']}, seed {args.seed}) in {seconds:.1f}s\n"
    )
    return 0
