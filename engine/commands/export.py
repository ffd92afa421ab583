"""`po-tui export merge|ollama|config`: hand the trained student to whoever runs it.

- `merge`: fold the LoRA adapter into its base and save a standalone model (safetensors) and
  tokenizer, e.g. to convert to GGUF or serve with any transformers-compatible runtime.
- `ollama`: write a Modelfile (FROM base, ADAPTER, the chat template as TEMPLATE, stop tokens,
  temperature, context) and print the `ollama create` command.
- `config`: print the `roles:` block for the consuming pipeline's config.yaml.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.commands.export_config import register_config
from engine.core.inert import one_line
from engine.runlog.job import add_job_args, job_events
from engine.store.lock import output_lock
from engine.stages.export import (
    CHAT_MODES,
    DEFAULT_DTYPE,
    DEFAULT_NUM_CTX,
    DEFAULT_TEMPERATURE,
    DTYPES,
    check_adapter,
    check_base_model,
    check_dtype,
    check_merge_out,
    merge_adapter,
    ollama_create_command,
    write_modelfile,
)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        parents=[common],
        help="merge the adapter, write an Ollama Modelfile, or print the consumer config",
        description=(
            "Export a trained student: `merge` folds the LoRA into its base model, `ollama` writes a "
            "Modelfile for `ollama create`, `config` prints the block for the consuming pipeline."
        ),
    )
    actions = p.add_subparsers(dest="export_command", metavar="ACTION", required=True)

    m = actions.add_parser(
        "merge",
        parents=[common],
        help="merge the LoRA adapter into the base model and save it (safetensors + tokenizer)",
        description=(
            "Load the base model (a local folder or the Hugging Face cache, offline) in --dtype, apply the "
            "adapter, merge it into the weights and save the result with the tokenizer and "
            "po_tui_export.json in DIR. DIR must be new, empty, or an earlier export (which is replaced); "
            "it appears only once everything is written."
        ),
    )
    m.add_argument("--adapter", required=True, metavar="DIR", help="the adapter folder `po-tui train` wrote")
    m.add_argument("--base-model", required=True, metavar="ID_OR_PATH", help="the base it was trained on")
    m.add_argument("--out", required=True, metavar="DIR", help="output folder for the merged model")
    m.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE, help="weights dtype (default: %(default)s)")
    add_job_args(m)
    m.set_defaults(func=run_merge)

    o = actions.add_parser(
        "ollama",
        parents=[common],
        help="write an Ollama Modelfile for the adapter and print the `ollama create` command",
        description=(
            "Write DIR/Modelfile: FROM the base (for Ollama a GGUF file, an Ollama model name or a model "
            "folder it can import; --from overrides what follows FROM), ADAPTER the adapter folder, the "
            "tokenizer's chat template translated to an Ollama TEMPLATE (the plain prompt layout when the "
            "student was trained without one), its stop tokens, temperature and context size. Ollama "
            "applies safetensors adapters only for architectures it supports; otherwise run `export merge`, "
            "convert the merged folder to GGUF and create the model FROM that file with no ADAPTER line "
            "(the LoRA is already in its weights)."
        ),
    )
    o.add_argument("--adapter", required=True, metavar="DIR", help="the adapter folder `po-tui train` wrote")
    o.add_argument(
        "--base-model", required=True, metavar="ID_OR_PATH",
        help="the base model (written after FROM unless --from; its tokenizer if the adapter has none)",
    )
    o.add_argument("--name", default="po-student-v1", help="Ollama model name (default: %(default)s)")
    o.add_argument("--out", required=True, metavar="DIR", help="folder for the Modelfile")
    o.add_argument(
        "--from", dest="from_ref", metavar="REF",
        help="what to write after FROM instead of --base-model (a GGUF file or an Ollama model name)",
    )
    o.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE, help="default: %(default)s")
    o.add_argument("--num-ctx", type=int, default=DEFAULT_NUM_CTX, metavar="N", help="context size (default: %(default)s)")
    o.add_argument(
        "--chat-template", choices=CHAT_MODES, default="auto",
        help="TEMPLATE from the chat template: auto = as training recorded, else when the tokenizer has one",
    )
    o.set_defaults(func=run_ollama)

    register_config(actions, common)
    return p


def _warner(action: str):
    def warn(message: str) -> None:
        sys.stderr.write(f"po-tui export {action}: note: {message}\n")

    return warn


def run_merge(args: argparse.Namespace) -> int:
    # Every check before the event log or a model: bad input is one line and leaves nothing behind.
    check_adapter(args.adapter)
    check_base_model(args.base_model)
    check_dtype(args.dtype)
    check_merge_out(args.out)
    start = time.monotonic()
    # One merge into a folder at a time; the lock sits beside the folder, which must stay new or
    # empty until the merged model replaces it whole. Taken before the event log is opened.
    with output_lock(Path(args.out).expanduser(), stage="export merge", beside=True), job_events(args, "export-merge") as events:
        path = merge_adapter(args.adapter, args.base_model, args.out, dtype=args.dtype, warn=_warner("merge"))
        events.artifact(str(path), "model")
        events.summary.update(base_model=args.base_model, dtype=args.dtype)
    sys.stderr.write(
        f"po-tui export merge: {path} ({args.dtype}, base {args.base_model}) in {time.monotonic() - start:.1f}s\n"
    )
    sys.stdout.write(f"{path}\n")
    return 0


def run_ollama(args: argparse.Namespace) -> int:
    with output_lock(Path(args.out).expanduser(), stage="export ollama"):
        return _write_ollama(args)


def _write_ollama(args: argparse.Namespace) -> int:
    path = write_modelfile(
        args.adapter,
        args.base_model,
        args.out,
        name=args.name,
        from_ref=args.from_ref,
        temperature=args.temperature,
        num_ctx=args.num_ctx,
        chat_template=args.chat_template,
        warn=_warner("ollama"),
    )
    sys.stderr.write(f"po-tui export ollama: wrote {one_line(path)}\n")
    sys.stdout.write(ollama_create_command(args.name, path) + "\n")
    return 0
