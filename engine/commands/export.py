"""`po-tui export merge|gguf|ollama|config`: hand the trained student to whoever runs it.

- `merge`: fold the LoRA adapter into its base and save a standalone model (safetensors) and
  tokenizer, e.g. to serve with any transformers-compatible runtime.
- `gguf` (engine/commands/export_gguf.py): the LoRA as a GGUF LoRA adapter (llama.cpp `--lora`,
  Ollama `ADAPTER`); with `--merged`, a full GGUF model through the user's llama.cpp.
- `ollama`: write a Modelfile (FROM an Ollama base plus the GGUF adapter, or FROM a merged GGUF;
  the chat template as TEMPLATE, stop tokens, temperature, context) and print the `ollama create`
  and `ollama run` commands.
- `config`: print the `roles:` block for the consuming pipeline's config.yaml.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.commands.export_config import register_config
from engine.commands.export_gguf import register_gguf
from engine.core.inert import one_line
from engine.runlog.job import add_job_args, job_events
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
    ollama_run_command,
    write_modelfile,
)
from engine.stages.gguf_adapter import DEFAULT_OUTTYPE, OUTTYPES
from engine.stages.ollama_routes import ADAPTER_FORMATS
from engine.store.lock import output_lock


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        parents=[common],
        help="merge the adapter, write GGUF files or an Ollama Modelfile, or print the consumer config",
        description=(
            "Export a trained student: `merge` folds the LoRA into its base model, `gguf` writes it as a "
            "GGUF LoRA adapter (or, --merged, a full GGUF through llama.cpp), `ollama` writes a Modelfile "
            "for `ollama create`, `config` prints the block for the consuming pipeline."
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
    m.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE,
                   help="weights dtype (default: %(default)s, what Qwen2 was trained in; float16 overflows in its activations)")
    add_job_args(m)
    m.set_defaults(func=run_merge)

    register_gguf(actions, common)

    o = actions.add_parser(
        "ollama",
        parents=[common],
        help="write an Ollama Modelfile for the student and print the `ollama create` / `ollama run` commands",
        description=(
            "Write DIR/Modelfile. By default: FROM the Ollama library build of the base (Qwen/Qwen2.5-7B-Instruct -> "
            "qwen2.5:7b-instruct; --from names another Ollama model or a GGUF of the base) and ADAPTER "
            "./adapter.gguf, the LoRA as a GGUF adapter written into DIR. With --merged-gguf FILE (from "
            "`export gguf --merged`): FROM that file and no ADAPTER line. Ollama converts safetensors adapters "
            "only for llama and gemma2 bases: --adapter-format safetensors writes the adapter folder there. "
            "Always: the tokenizer's chat template translated to an Ollama TEMPLATE (the plain prompt layout "
            "when the student was trained without one), its stop tokens, temperature and context size."
        ),
    )
    o.add_argument("--adapter", required=True, metavar="DIR", help="the adapter folder `po-tui train` wrote")
    o.add_argument(
        "--base-model", required=True, metavar="ID_OR_PATH",
        help="the base it was trained on (its config, the default FROM, its tokenizer if the adapter has none)",
    )
    o.add_argument("--name", default="po-student-v1", help="Ollama model name (default: %(default)s)")
    o.add_argument("--out", required=True, metavar="DIR", help="folder for the Modelfile (and adapter.gguf)")
    o.add_argument(
        "--from", dest="from_ref", metavar="REF",
        help="the Ollama model (or a GGUF file of the base) to put the adapter on, instead of the default mapping",
    )
    o.add_argument(
        "--merged-gguf", metavar="FILE",
        help="a full GGUF with the LoRA merged in (po-tui export gguf --merged): FROM it, no ADAPTER",
    )
    o.add_argument(
        "--adapter-format", choices=ADAPTER_FORMATS, default="auto",
        help="auto: GGUF where it maps the base, else safetensors where Ollama converts it (llama, gemma2)",
    )
    o.add_argument(
        "--outtype", choices=OUTTYPES, default=DEFAULT_OUTTYPE, help="GGUF adapter tensor type (default: %(default)s)"
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
    result = write_modelfile(
        args.adapter,
        args.base_model,
        args.out,
        name=args.name,
        from_ref=args.from_ref,
        merged_gguf=args.merged_gguf,
        adapter_format=args.adapter_format,
        outtype=args.outtype,
        temperature=args.temperature,
        num_ctx=args.num_ctx,
        chat_template=args.chat_template,
        warn=_warner("ollama"),
    )
    also = f" and {one_line(result.adapter_file)}" if result.adapter_file else ""
    adapter = f", ADAPTER {one_line(result.adapter)}" if result.adapter else ""
    sys.stderr.write(f"po-tui export ollama: wrote {one_line(result.modelfile)}{also} (FROM {one_line(result.from_ref)}{adapter})\n")
    sys.stdout.write(ollama_create_command(args.name, result.modelfile) + "\n")
    sys.stdout.write(ollama_run_command(args.name) + "\n")
    return 0
