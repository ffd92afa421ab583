"""Drive the user's llama.cpp to turn a merged model folder into one GGUF file, optionally quantized.

Why these choices:
- A full GGUF (the LoRA folded into the weights) is what runs everywhere: llama.cpp, Ollama
  (`FROM ./model.gguf`), LM Studio. Writing one means llama.cpp's own `convert_hf_to_gguf.py` (it
  knows every architecture's tensor layout, tokenizer and metadata) and its `llama-quantize`
  binary for the k-quants; re-implementing either would be a second, drifting copy. So they are
  found (`--llama-cpp DIR`, a llama.cpp checkout or install, else PATH) and run, never bundled.
- Everything is found before a weight is merged: a missing converter, or a missing quantizer
  when `--quantize` asks for one, is one line naming what is missing and where it was looked for.
- The converter is a Python script: it runs under this interpreter, or `--python` (e.g. the
  virtual environment llama.cpp's requirements went into), with its own `gguf-py` from the
  checkout first, as the script arranges. Its imports are checked first (torch, numpy,
  transformers, sentencepiece: Qwen2's vocabulary step imports sentencepiece before it looks for
  a tokenizer.model), so a missing package is one line before the merge, not a traceback after
  it. Subprocesses get an argv list, no shell.
- A tool that fails ends the command with its exit status and the last line it printed;
  the intermediate files live in a hidden work folder beside the output and are removed, and the
  output appears only when complete (`atomic_write_via`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from engine.core.inert import one_line
from engine.errors import InputError, StageFailed
from engine.store.atomic import atomic_write_via

CONVERTER_NAMES = ("convert_hf_to_gguf.py", "convert-hf-to-gguf.py")
QUANTIZER_NAMES = ("llama-quantize", "quantize")
QUANTIZER_DIRS = (".", "build/bin", "bin", "build")
# llama-quantize's own spelling of the types offered (tools/quantize/quantize.cpp QUANT_OPTIONS).
QUANT_TYPES = {"q4_k_m": "Q4_K_M", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K", "q8_0": "Q8_0"}
CONVERT_OUTTYPES = ("f16", "f32", "bf16")

Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


# What convert_hf_to_gguf.py imports from the environment (its requirements file), besides gguf-py.
CONVERTER_MODULES = ("torch", "numpy", "transformers", "sentencepiece")
_FIND_SPECS = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"


@dataclass(frozen=True)
class LlamaCpp:
    """Where the converter (and, when needed, the quantizer) are, and the Python that runs the converter."""

    converter: Path
    quantizer: Path | None
    python: str = sys.executable


def check_python(python: str | None) -> str:
    """The interpreter for the converter, with every package it imports, or the one-line refusal."""
    if python is None:
        import importlib.util

        missing = [m for m in CONVERTER_MODULES if importlib.util.find_spec(m) is None]
        where = "this Python"
        exe = sys.executable
    else:
        found = shutil.which(python) if os.sep not in python else (python if _executable(Path(python)) else None)
        if found is None:
            raise InputError("no such Python interpreter (or not executable)", path=python, field="--python")
        exe = str(Path(found).absolute())
        try:
            done = subprocess.run(
                [exe, "-c", _FIND_SPECS, *CONVERTER_MODULES], stdin=subprocess.DEVNULL, capture_output=True,
                text=True, errors="replace", timeout=120, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InputError(f"cannot run it ({type(exc).__name__})", path=python, field="--python") from exc
        if done.returncode != 0:
            raise InputError(f"cannot run it (exit status {done.returncode})", path=python, field="--python")
        missing = done.stdout.split()
        where = exe
    if missing:
        raise InputError(
            f"llama.cpp's converter needs the Python package(s) {', '.join(missing)}, missing in {where}: "
            f"pip install {' '.join(missing)}, or pass --python with the interpreter llama.cpp's requirements are in",
            field="--python",
        )
    return exe


def check_quantize(value: str | None) -> str | None:
    """llama-quantize's name for the requested type (case-insensitive), or None for no quantization."""
    if value is None:
        return None
    canonical = QUANT_TYPES.get(value.lower())
    if canonical is None:
        raise InputError(
            f"must be one of {', '.join(QUANT_TYPES.values())} (any case), got {value!r}", field="--quantize"
        )
    return canonical


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_llama_cpp(directory: str | Path | None, *, need_quantizer: bool, python: str | None = None) -> LlamaCpp:
    """The converter script, its Python and (if `need_quantizer`) llama-quantize, or the one-line refusal."""
    tools = _find_tools(directory, need_quantizer=need_quantizer)
    return LlamaCpp(tools.converter, tools.quantizer, check_python(python))


def _find_tools(directory: str | Path | None, *, need_quantizer: bool) -> LlamaCpp:
    if directory is not None:
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise InputError("not a directory (a llama.cpp checkout or install)", path=root, field="--llama-cpp")
        converter = next((root / n for n in CONVERTER_NAMES if (root / n).is_file()), None)
        if converter is None:
            raise InputError(
                f"llama.cpp's {CONVERTER_NAMES[0]} is not in it (pass the llama.cpp checkout's top folder)",
                path=root, field="--llama-cpp",
            )
        quantizer = None
        if need_quantizer:
            places = [root / d / n for d in QUANTIZER_DIRS for n in QUANTIZER_NAMES]
            quantizer = next((p for p in places if _executable(p)), None)
            if quantizer is None:
                found = shutil.which(QUANTIZER_NAMES[0])
                quantizer = Path(found) if found else None
            if quantizer is None:
                raise InputError(
                    f"--quantize needs llama.cpp's {QUANTIZER_NAMES[0]}, which is neither in "
                    f"{', '.join(str(root / d) for d in QUANTIZER_DIRS)} nor on PATH "
                    f"(build it: cmake -B build && cmake --build build --target {QUANTIZER_NAMES[0]})",
                    path=root, field="--llama-cpp",
                )
        return LlamaCpp(converter.resolve(), quantizer.resolve() if quantizer else None)

    found = next((shutil.which(n) for n in CONVERTER_NAMES if shutil.which(n)), None)
    if found is None:
        raise InputError(
            f"llama.cpp's {CONVERTER_NAMES[0]} is not on PATH: pass --llama-cpp DIR "
            "(a llama.cpp checkout, https://github.com/ggml-org/llama.cpp)",
            field="--llama-cpp",
        )
    quantizer = None
    if need_quantizer:
        q = shutil.which(QUANTIZER_NAMES[0])
        if q is None:
            raise InputError(
                f"--quantize needs llama.cpp's {QUANTIZER_NAMES[0]}, which is not on PATH: pass --llama-cpp DIR "
                "(a llama.cpp checkout with build/bin/llama-quantize)",
                field="--llama-cpp",
            )
        quantizer = Path(q)
    return LlamaCpp(Path(found).resolve(), quantizer.resolve() if quantizer else None)


def convert_argv(tools: LlamaCpp, model_dir: Path, outfile: Path, outtype: str) -> list[str]:
    """PYTHON convert_hf_to_gguf.py MODEL_DIR --outfile OUT --outtype f16."""
    if outtype not in CONVERT_OUTTYPES:
        raise InputError(f"must be one of {', '.join(CONVERT_OUTTYPES)}, got {outtype!r}", field="--outtype")
    return [tools.python, str(tools.converter), str(model_dir), "--outfile", str(outfile), "--outtype", outtype]


def quantize_argv(tools: LlamaCpp, infile: Path, outfile: Path, qtype: str) -> list[str]:
    """llama-quantize IN OUT TYPE."""
    if tools.quantizer is None:
        raise InputError(f"no {QUANTIZER_NAMES[0]} was found", field="--llama-cpp")
    return [str(tools.quantizer), str(infile), str(outfile), qtype]


def _run(argv: Sequence[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", check=False,
    )


def run_tool(argv: Sequence[str], what: str, *, run: Run = _run) -> None:
    """Run one llama.cpp step; its failure is one line with the exit status and its last output line."""
    try:
        done = run(argv)
    except OSError as exc:
        raise StageFailed(f"{what}: cannot start {argv[0]}: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        lines = [line for line in (done.stdout or "").splitlines() if line.strip()]
        last = one_line(lines[-1], 300) if lines else "no output"
        raise StageFailed(f"{what} exited with status {done.returncode}: {last}")


def build_gguf(
    tools: LlamaCpp,
    model_dir: Path,
    out: Path,
    work: Path,
    *,
    outtype: str = "f16",
    quantize: str | None = None,
    note: Callable[[str], None] = lambda _m: None,
    run: Run = _run,
) -> Path:
    """Convert `model_dir` (a transformers model folder) to `out`, quantized when asked.

    `work` is an existing scratch folder on the same filesystem as `out` (the caller removes it).
    """
    if quantize is None:
        note(f"converting with {tools.converter} ({outtype})")
        atomic_write_via(out, lambda tmp: run_tool(convert_argv(tools, model_dir, tmp, outtype), tools.converter.name, run=run))
        return out
    full = work / f"model-{outtype}.gguf"
    note(f"converting with {tools.converter} ({outtype})")
    run_tool(convert_argv(tools, model_dir, full, outtype), tools.converter.name, run=run)
    if not full.is_file():
        raise StageFailed(f"{tools.converter.name} exited 0 but wrote no {full.name}")
    note(f"quantizing to {quantize} with {tools.quantizer}")
    atomic_write_via(out, lambda tmp: run_tool(quantize_argv(tools, full, tmp, quantize), QUANTIZER_NAMES[0], run=run))
    return out
