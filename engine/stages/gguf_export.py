"""`po-tui export gguf`: the student as GGUF, the file format llama.cpp and Ollama run.

- Without `--merged`: the LoRA as a GGUF LoRA adapter (engine/stages/gguf_adapter.py), a few MB
  to a few hundred, applied over the base at load time (`llama-server --lora`, Ollama `ADAPTER`).
- With `--merged`: one full model file. The adapter is merged into the base exactly as
  `export merge` does (so the folder gets the top-level `rope_theta` older converters need), then
  the user's llama.cpp converts and optionally quantizes it (engine/stages/llama_cpp.py). This is
  the route for anything a LoRA file cannot carry (whole trained modules such as the demo's
  embeddings) and for runtimes without adapter support.

Every check (adapter, base, output, quantization type, the llama.cpp tools) comes before the
first weight is read; the work folder beside the output is removed whatever happens.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.stages.export import check_adapter, check_base_model, fresh_dir, merge_adapter, no_warn
from engine.stages.gguf_adapter import check_outtype, write_gguf_adapter
from engine.stages.llama_cpp import LlamaCpp, build_gguf, check_quantize, find_llama_cpp
from engine.store.jsonl import Warn
from engine.store.outpath import check_out_file


def export_gguf_adapter(
    adapter: str | Path, base_model: str, out: str | Path, *, outtype: str = "f16", warn: Warn = no_warn
) -> Path:
    """`po-tui export gguf`: the adapter as a GGUF LoRA adapter file (engine/stages/gguf_adapter.py)."""
    adapter_dir = check_adapter(adapter)
    base = check_base_model(base_model)
    outtype = check_outtype(outtype)
    out_file = check_out_file(Path(out).expanduser())
    plan = write_gguf_adapter(adapter_dir, base, out_file, outtype=outtype)
    for note in plan.notes:
        warn(note)
    return out_file


def check_gguf_merged_options(
    adapter: str | Path,
    base_model: str,
    out: str | Path,
    *,
    outtype: str,
    quantize: str | None,
    llama_cpp: str | None,
    python: str | None = None,
) -> tuple[Path, str, Path, str | None, LlamaCpp]:
    """Every check `export gguf --merged` makes before merging: (adapter, base, out, quant type, tools)."""
    adapter_dir = check_adapter(adapter)
    base = check_base_model(base_model)
    check_outtype(outtype)
    out_file = check_out_file(Path(out).expanduser())
    qtype = check_quantize(quantize)
    tools = find_llama_cpp(llama_cpp, need_quantizer=qtype is not None, python=python)
    return adapter_dir, base, out_file, qtype, tools


def export_merged_gguf(
    adapter: str | Path,
    base_model: str,
    out: str | Path,
    *,
    outtype: str = "f16",
    quantize: str | None = None,
    llama_cpp: str | None = None,
    python: str | None = None,
    warn: Warn = no_warn,
) -> Path:
    """`po-tui export gguf --merged`: merge (as `export merge`), convert with llama.cpp, quantize.

    The merged folder and the unquantized GGUF live in a hidden work folder beside `out`, removed
    at the end, whatever happens; `out` appears only when complete (engine/stages/llama_cpp.py).
    """
    adapter_dir, _base, out_file, qtype, tools = check_gguf_merged_options(
        adapter, base_model, out, outtype=outtype, quantize=quantize, llama_cpp=llama_cpp, python=python
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    work = fresh_dir(out_file, "work")
    try:
        merged = merge_adapter(
            adapter_dir, base_model, work / "merged", dtype="float32" if outtype == "f32" else "float16", warn=warn
        )
        build_gguf(tools, merged, out_file, work, outtype=outtype, quantize=qtype, note=warn)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_file
