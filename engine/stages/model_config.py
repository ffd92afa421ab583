"""A base model's `config.json` as a plain dict: what the GGUF and Ollama exports need to know about
the base (its architecture, layer count, head counts, tied embeddings) without loading a weight.

Why a dict read from the file rather than `AutoConfig`: the exports must write what llama.cpp and
Ollama will read, and those read the JSON file (transformers 5 renames keys on load, e.g.
`rope_theta` into `rope_parameters`). A local folder is read directly; a Hugging Face id only from
the local cache, never the hub (`check_base_model` has already said it is there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.store.inputfile import read_json


def base_config(base_model: str, *, field: str = "--base-model") -> dict[str, Any]:
    """The base's config.json: `base_model` is a local model folder or a cached Hugging Face id."""
    path = Path(base_model).expanduser()
    if path.is_dir():
        config_file = path / "config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(base_model, "config.json")
        if not isinstance(cached, str):
            raise InputError(
                f"no config.json for {base_model!r} in the Hugging Face cache (download it first, or pass a path)",
                field=field,
            )
        config_file = Path(cached)
    data = read_json(config_file, field=field)
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", path=config_file, field=field)
    return data


def architecture(config: dict[str, Any]) -> str:
    """The transformers class the base was saved as (`Qwen2ForCausalLM`), or '' when unrecorded."""
    archs = config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        return archs[0]
    return ""


def ties_embeddings(config: dict[str, Any]) -> bool:
    """Whether the output head reuses the token embeddings.

    Absent means untied: the default of the config classes of every architecture the exports
    support (Qwen2, Qwen3, Llama, Mistral); Qwen2.5 0.5B-3B write `true`, 7B and up `false`.
    """
    return bool(config.get("tie_word_embeddings", False))


def legacy_rope_keys(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the top-level RoPE keys transformers 4 wrote, taken from `rope_parameters`.

    transformers 5 saves `rope_parameters: {rope_theta, rope_type, ...}` only; converters that read
    `rope_theta` / `rope_scaling` at the top level (Ollama's, older llama.cpp) would see none. Keys
    already present are kept; a default RoPE gets no `rope_scaling` (Ollama rejects unknown types).
    """
    params = config.get("rope_parameters")
    if not isinstance(params, dict):
        return config
    out = dict(config)
    if "rope_theta" in params and out.get("rope_theta") is None:
        out["rope_theta"] = params["rope_theta"]
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in (None, "default") and not out.get("rope_scaling"):
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
        scaling["type"] = scaling["rope_type"] = rope_type
        out["rope_scaling"] = scaling
    return out
