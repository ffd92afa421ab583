"""Which Modelfile `po-tui export ollama` can write for a student, and the checks on what it names.

Why these choices (the module docstring of engine/stages/export.py says why these routes):
- A GGUF LoRA adapter over an Ollama model works for every base llama.cpp runs (Ollama hands
  it to llama.cpp as `--lora`); so it is the default wherever engine/stages/gguf_adapter.py maps
  the base. A safetensors `ADAPTER` folder is written only where Ollama converts it itself
  (llama, gemma2), and only on request or where no GGUF mapping exists. An adapter that cannot be
  a LoRA file (whole trained modules, DoRA, ...) has the merged-GGUF route only.
- `FROM` must be something Ollama loads. A path is checked now rather than by `ollama create`:
  a GGUF must be readable (and, for `--merged-gguf`, a full model, not an adapter); a model folder
  must carry the top-level `rope_theta` Ollama's converter reads, since transformers 5 saves only
  `rope_parameters` and Ollama would silently run it with a RoPE base of 0.
- Paths inside the export folder are written `./relative`: Ollama resolves Modelfile paths
  against the Modelfile's folder, so the folder can be moved or copied to another machine whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.stages.gguf_adapter import ARCHITECTURES, check_lora_config
from engine.stages.model_config import architecture, base_config, legacy_rope_keys
from engine.stages.ollama_names import OLLAMA_NAME, OLLAMA_SAFETENSORS_ADAPTER_ARCHS, ollama_library_name
from engine.store.inputfile import read_json

ADAPTER_FORMATS = ("auto", "gguf", "safetensors")
GGUF_ADAPTER_FILE = "adapter.gguf"  # written beside the Modelfile, named `ADAPTER ./adapter.gguf`
ADVICE_MERGED_GGUF = "build a merged GGUF (po-tui export gguf --merged) and pass it with --merged-gguf"
# A FROM that is meant as a file or folder, not a library name.
_PATHLIKE = re.compile(r"^(\.{1,2}/|/|~)|\.gguf$", re.IGNORECASE)


@dataclass
class OllamaExport:
    """What `write_modelfile` wrote: the Modelfile, and what its FROM and ADAPTER lines say."""

    modelfile: Path
    route: str  # "gguf-adapter", "safetensors-adapter" or "merged-gguf"
    from_ref: str
    adapter: str | None
    adapter_file: Path | None = None  # the GGUF adapter written beside the Modelfile


def in_folder(path: Path, folder: Path) -> str:
    """`./rel` when `path` lies in `folder` (Ollama reads Modelfile paths relative to it), else absolute."""
    path, folder = path.resolve(), folder.resolve()
    try:
        return "./" + path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def check_model_folder_rope(folder: Path, field: str) -> None:
    """A model folder Ollama would convert must carry the top-level `rope_theta` its converters read."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise InputError("not a model folder (no config.json) nor a GGUF file", path=folder, field=field)
    config = read_json(config_file, field=field)
    if isinstance(config, dict) and legacy_rope_keys(config).get("rope_theta") != config.get("rope_theta"):
        raise InputError(
            "config.json has rope_parameters but no top-level rope_theta, the only key Ollama's converter "
            "reads (it would run with a RoPE base of 0): export it with po-tui export merge, which writes "
            "both, or convert it to GGUF",
            path=config_file, field=field,
        )


def from_reference(from_ref: str, *, field: str = "--from") -> str:
    """A user-given FROM: an existing GGUF file or model folder (made absolute), or an Ollama name."""
    ref = from_ref.strip()
    if not ref or "\n" in ref or "\r" in ref:
        raise InputError("must be a GGUF file, a model folder or an Ollama model name", field=field)
    path = Path(ref).expanduser()
    if path.is_dir():
        check_model_folder_rope(path, field)
        return str(path.resolve())  # a relative path would be read relative to the Modelfile
    if path.is_file():
        check_gguf_file(path, field=field)
        return str(path.resolve())
    if _PATHLIKE.search(ref):
        raise InputError("no such file or folder", path=path, field=field)
    if not OLLAMA_NAME.match(ref):
        raise InputError(
            f"not a GGUF file, a model folder or an Ollama model name: {ref!r} (e.g. qwen2.5:7b-instruct)", field=field
        )
    return ref


def check_gguf_file(path: Path, *, field: str, want: str | None = None) -> str:
    """A readable GGUF file; returns its `general.type` ('model' when unrecorded), checked against `want`."""
    import gguf  # the reader maps the file: a multi-GB model is not read in

    if not path.is_file():
        raise InputError("no such file", path=path, field=field)
    try:
        reader = gguf.GGUFReader(str(path))
        kind_field = reader.get_field(gguf.Keys.General.TYPE)
        kind = str(kind_field.contents()) if kind_field is not None else "model"
    except Exception as exc:  # noqa: BLE001 - whatever the reader trips on, it is not a usable GGUF
        raise InputError(f"not a GGUF file ({type(exc).__name__})", path=path, field=field) from exc
    if want is not None and kind != want:
        if kind == "adapter":
            raise InputError(
                "is a LoRA adapter GGUF, not a full model: build one with po-tui export gguf --merged",
                path=path, field=field,
            )
        raise InputError(f"general.type is {kind!r}, expected {want!r}", path=path, field=field)
    return kind


def adapter_route(adapter_dir: Path, lora_config: dict[str, Any], base_model: str, adapter_format: str) -> tuple[str, str]:
    """("gguf" or "safetensors", the base's architecture) for an adapter over an Ollama base.

    `base_model` has been checked (a local folder or in the Hugging Face cache).
    """
    if adapter_format not in ADAPTER_FORMATS:
        raise InputError(f"must be one of {', '.join(ADAPTER_FORMATS)}, got {adapter_format!r}", field="--adapter-format")
    check_lora_config(lora_config, adapter_dir)
    arch = architecture(base_config(base_model))
    ollama_converts = arch in OLLAMA_SAFETENSORS_ADAPTER_ARCHS
    if adapter_format == "auto":
        if arch in ARCHITECTURES:
            return "gguf", arch
        if ollama_converts:
            return "safetensors", arch
        raise InputError(
            f"Ollama cannot apply this adapter over a {arch or 'unknown'} base: the GGUF adapter maps "
            f"{', '.join(ARCHITECTURES)}, and Ollama converts safetensors adapters only for llama and gemma2 "
            f"bases; {ADVICE_MERGED_GGUF}",
            path=base_model, field="--base-model",
        )
    if adapter_format == "safetensors" and not ollama_converts:
        raise InputError(
            f"Ollama converts safetensors adapters only for llama and gemma2 bases (its convert/convert.go), "
            f"not {arch or 'this one'}: use --adapter-format gguf",
            field="--adapter-format",
        )
    if adapter_format == "gguf" and arch not in ARCHITECTURES:
        raise InputError(
            f"no GGUF LoRA mapping for a {arch or 'unknown'} base (supported: {', '.join(ARCHITECTURES)})",
            field="--adapter-format",
        )
    return adapter_format, arch


def default_from(lora_config: dict[str, Any], base_model: str, route: str) -> str:
    """The Ollama model the adapter goes over when --from is not given, or the one-line refusal."""
    trained_on = lora_config.get("base_model_name_or_path")
    name = ollama_library_name(base_model) or ollama_library_name(str(trained_on) if trained_on else None)
    if name:
        return name
    local = Path(base_model).expanduser()
    if route == "safetensors" and local.is_dir():
        check_model_folder_rope(local, "--base-model")
        return str(local.resolve())  # Ollama imports a llama/gemma2 safetensors folder itself
    raise InputError(
        f"no Ollama library model is known for {base_model!r}: pass --from with the Ollama model of the "
        f"same base (e.g. qwen2.5:7b-instruct) or a GGUF of it, or {ADVICE_MERGED_GGUF}",
        field="--from",
    )


