"""What Ollama can build a student on: its library name for a Hugging Face base, and the bases whose
safetensors LoRA adapters it converts itself.

Why these choices:
- A Modelfile's `FROM` must be a GGUF file, a model folder or a name in Ollama's library; a
  Hugging Face id (`Qwen/Qwen2.5-7B-Instruct`) is none of those (Ollama reads it as a registry
  name and fails to pull it). The Qwen2.5 instruct family has library builds of the same weights,
  `qwen2.5:7b-instruct` (and `qwen2.5-coder:7b-instruct`), so those are mapped by default; any
  other base needs `--from`, since guessing a name that does not exist or holds other weights
  would apply the adapter to the wrong model.
- The library's default tags are 4-bit quantizations (Q4_K_M) of those weights; the LoRA still
  applies, over slightly different numbers. `--from qwen2.5:7b-instruct-fp16` (or `-q8_0`) picks a
  closer build.
- Ollama converts a safetensors `ADAPTER` folder only when the base's architecture is `llama` or
  `gemma2` (convert/convert.go, ConvertAdapter); every other architecture, qwen2 included, fails
  with "unsupported architecture". The GGUF adapter (`po-tui export gguf`) works for any base
  llama.cpp runs, since Ollama hands it to llama.cpp as `--lora`.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# Ollama model names: host/namespace/model:tag, letters, digits, '.', '_', '-'.
OLLAMA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*(:[A-Za-z0-9][A-Za-z0-9._-]*)?$")

# transformers architecture -> the GGUF architecture Ollama's library model has, for the bases whose
# safetensors adapters Ollama converts (convert/convert.go: "llama", "gemma2").
OLLAMA_SAFETENSORS_ADAPTER_ARCHS = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Gemma2ForCausalLM": "gemma2",
}

# Sizes the Ollama library publishes instruct builds of.
_QWEN25_SIZES = {"0.5", "1.5", "3", "7", "14", "32", "72"}
_QWEN25_CODER_SIZES = {"0.5", "1.5", "3", "7", "14", "32"}
_QWEN25 = re.compile(r"^qwen2\.5-(coder-)?(\d+(?:\.\d+)?)b-instruct$", re.IGNORECASE)


def ollama_library_name(base_model: str | None) -> str | None:
    """The Ollama library model built from the same weights as `base_model`, or None if unknown.

    `base_model` is a Hugging Face id or a local folder named like one (`.../Qwen2.5-7B-Instruct`):
    only the last path component counts.
    """
    if not base_model:
        return None
    leaf = PurePosixPath(str(base_model).replace("\\", "/").rstrip("/")).name
    m = _QWEN25.match(leaf)
    if not m:
        return None
    coder, size = bool(m.group(1)), m.group(2)
    if size not in (_QWEN25_CODER_SIZES if coder else _QWEN25_SIZES):
        return None
    return f"qwen2.5{'-coder' if coder else ''}:{size}b-instruct"
