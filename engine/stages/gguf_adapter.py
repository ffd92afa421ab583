"""A PEFT LoRA adapter as a GGUF LoRA adapter, for llama.cpp (`--lora`) and Ollama (`ADAPTER x.gguf`).

Why these choices:
- The file is laid out as llama.cpp's own `convert_lora_to_gguf.py` writes it, since that is what
  `llama_adapter_lora_init` reads: `general.architecture` = the base's llama.cpp architecture,
  `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha` (float32), one
  `<gguf name>.lora_a` / `.lora_b` pair per adapted weight, named through `gguf.TensorNameMap`
  (`model.layers.1.self_attn.q_proj` -> `blk.1.attn_q.weight.lora_a`). In torch order lora_a is
  [rank, in] and lora_b [out, rank] (GGUF stores the dimensions reversed: ne = [in, rank] and
  [rank, out]); for the token embeddings lora_a is transposed ([vocab, rank]), as llama.cpp's
  `llm_build_inp_embd` gathers rows of it. Llama-family bases get lora_b's rows permuted for q
  and k, as the converter permutes the base's q/k weights. 2-D tensors are f16 (default) or f32.
- llama.cpp scales every pair by alpha / rank, rank read from the tensor. PEFT scales by
  alpha / rank, alpha / sqrt(rank) with `use_rslora`, and per module with `rank_pattern` /
  `alpha_pattern`. Wherever the two differ, the difference is folded into lora_b, so the
  adapter computes exactly what PEFT does (the converter ignores rsLoRA and the patterns).
- Refused in one line, before anything is written, because llama.cpp cannot apply them or would
  apply them wrongly: full tensors beside the LoRA (`modules_to_save`, e.g. trained embeddings:
  the converter refuses them too; a merged model carries them), LoRA variants with other maths
  (DoRA, bias, fan_in_fan_out, ...), a LoRA on the embeddings or output head of a base that ties
  them (llama.cpp shares one tensor between the two, so the pair would be applied to both),
  architectures this writer has no mapping for, and an adapter whose shapes do not fit the base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.inert import one_line
from engine.errors import InputError
from engine.stages.model_config import architecture, base_config, ties_embeddings
from engine.store.atomic import atomic_write_via
from engine.store.inputfile import read_json

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_WEIGHTS_BIN = "adapter_model.bin"  # PEFT's format before safetensors; llama.cpp's converter reads it too
OUTTYPES = ("f16", "f32")
DEFAULT_OUTTYPE = "f16"
ADVICE_MERGED = "use a merged model instead (po-tui export gguf --merged; for Ollama then export ollama --merged-gguf FILE)"


@dataclass(frozen=True)
class ArchSpec:
    """How one transformers architecture maps onto llama.cpp."""

    gguf_arch: str  # gguf.MODEL_ARCH member name
    permute_qk: bool  # llama.cpp's LlamaModel permutes q/k rows for its RoPE layout


# The base architectures whose LoRA tensors need nothing but the name map (and, for Llama, the q/k
# permutation): the classes convert_hf_to_gguf.py registers for them do nothing else to q/k/v/o,
# gate/up/down or the embeddings.
ARCHITECTURES: dict[str, ArchSpec] = {
    "Qwen2ForCausalLM": ArchSpec("QWEN2", False),
    "Qwen3ForCausalLM": ArchSpec("QWEN3", False),
    "LlamaForCausalLM": ArchSpec("LLAMA", True),
    "MistralForCausalLM": ArchSpec("LLAMA", True),
}

# adapter_config.json keys of LoRA variants whose maths llama.cpp's plain `x + s * B(A(x))` is not.
_VARIANTS = (
    "use_dora", "lora_bias", "fan_in_fan_out", "use_qalora", "use_bdlora", "alora_invocation_tokens",
    "trainable_token_indices", "target_parameters", "layer_replication", "arrow_config", "kasa_config",
    "monteclora_config", "velora_config",
)

_PREFIX = "base_model.model."
_SUFFIXES = {
    ".lora_A.weight": "A",
    ".lora_B.weight": "B",
    ".lora_embedding_A": "A",
    ".lora_embedding_B": "B",
}


@dataclass
class GgufTensor:
    """One tensor to write: its GGUF name, its data in torch order (float32) and where it came from."""

    name: str
    data: Any  # numpy float32 array
    source: str


@dataclass
class AdapterPlan:
    """Everything the file will hold, computed and checked before it is written."""

    arch: str  # llama.cpp architecture name, e.g. "qwen2"
    alpha: float
    tensors: list[GgufTensor]
    rank: int
    modules: int
    notes: list[str] = field(default_factory=list)


def check_outtype(outtype: str) -> str:
    if outtype not in OUTTYPES:
        raise InputError(f"must be one of {', '.join(OUTTYPES)}, got {outtype!r}", field="--outtype")
    return outtype


def arch_spec(config: dict[str, Any], base_model: str) -> ArchSpec:
    """The mapping for the base's architecture, or the one-line refusal."""
    arch = architecture(config)
    spec = ARCHITECTURES.get(arch)
    if spec is None:
        raise InputError(
            f"base architecture {arch or 'unrecorded'} has no GGUF LoRA mapping here "
            f"(supported: {', '.join(ARCHITECTURES)}); {ADVICE_MERGED}",
            path=base_model, field="--base-model",
        )
    return spec


def _falsy(value: Any) -> bool:
    return value in (None, False, "none", "", 0) or value == [] or value == {}


def check_lora_config(config: dict[str, Any], adapter: Path) -> None:
    """Refuse what a GGUF LoRA adapter cannot express, naming the adapter_config.json key."""
    where = adapter / ADAPTER_CONFIG
    peft_type = config.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise InputError(f"peft_type {peft_type!r}: only LoRA adapters convert to GGUF", path=where, field="peft_type")
    for key in _VARIANTS:
        if not _falsy(config.get(key)):
            raise InputError(
                f"{key} = {config.get(key)!r}: llama.cpp applies plain LoRA only; {ADVICE_MERGED}", path=where, field=key
            )
    if config.get("bias", "none") != "none":
        raise InputError(f"bias = {config['bias']!r}: a GGUF LoRA adapter carries no biases; {ADVICE_MERGED}", path=where, field="bias")
    saved = config.get("modules_to_save")
    if not _falsy(saved):
        names = ", ".join(sorted({str(m).rsplit(".", 1)[-1] for m in saved})) if isinstance(saved, list) else str(saved)
        raise InputError(
            f"the adapter also trains whole modules ({names}); a GGUF LoRA adapter cannot carry full "
            f"tensors (llama.cpp's converter refuses them too): {ADVICE_MERGED}",
            path=where, field="modules_to_save",
        )
    alpha = config.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0 or not math.isfinite(alpha):
        raise InputError(f"must be a positive number, got {alpha!r}", path=where, field="lora_alpha")


def _pattern_value(pattern: Any, module: str, default: float) -> float:
    """PEFT's own rank_pattern / alpha_pattern lookup for one module."""
    if not isinstance(pattern, dict) or not pattern:
        return default
    from peft.utils.other import get_pattern_key

    key = get_pattern_key(list(pattern.keys()), module)
    return float(pattern.get(key, default))


def peft_scaling(config: dict[str, Any], module: str) -> tuple[float, int]:
    """(the scale PEFT multiplies this module's B(A(x)) by, the rank it expects)."""
    r = int(_pattern_value(config.get("rank_pattern"), module, float(config.get("r", 8))))
    alpha = _pattern_value(config.get("alpha_pattern"), module, float(config["lora_alpha"]))
    if r < 1:
        raise InputError(f"rank {r} for {module}", field="r")
    return (alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r), r


def adapter_weights(adapter: Path) -> Path:
    """The adapter's weights file: adapter_model.safetensors, else the older adapter_model.bin."""
    for name in (ADAPTER_WEIGHTS, ADAPTER_WEIGHTS_BIN):
        if (adapter / name).is_file():
            return adapter / name
    raise InputError(f"no {ADAPTER_WEIGHTS} (nor {ADAPTER_WEIGHTS_BIN})", path=adapter, field="--adapter")


def _read_pairs(adapter: Path) -> dict[str, dict[str, Any]]:
    """{HF module name: {"A": tensor, "B": tensor, "embedding": bool}} from the adapter weights."""
    weights = adapter_weights(adapter)
    try:
        if weights.name == ADAPTER_WEIGHTS:
            from safetensors.torch import load_file

            state = load_file(str(weights), device="cpu")
        else:
            import torch

            state = torch.load(str(weights), map_location="cpu", weights_only=True)  # tensors only, no code
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: whatever the reader raises
        raise InputError(f"cannot read it ({type(exc).__name__}: {one_line(exc, 200)})", path=weights, field="--adapter") from exc
    if not isinstance(state, dict):
        raise InputError("holds no tensor dictionary", path=weights, field="--adapter")
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in state.items():
        name = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
        for suffix, part in _SUFFIXES.items():
            if name.endswith(suffix):
                module = name[: -len(suffix)]
                entry = pairs.setdefault(module, {"embedding": False})
                entry[part] = tensor
                entry["embedding"] = entry["embedding"] or "embedding" in suffix
                break
        else:
            if name.endswith(".base_layer.weight"):
                continue  # an untouched base weight PEFT saved beside the pair; the converter skips it too
            hint = " (a whole module: modules_to_save, or embeddings saved for added tokens)" if "lora_" not in name else ""
            raise InputError(
                f"tensor {key!r} is not a LoRA A/B weight{hint}; a GGUF LoRA adapter cannot carry it: {ADVICE_MERGED}",
                path=weights, field="--adapter",
            )
    if not pairs:
        raise InputError("holds no LoRA weights", path=weights, field="--adapter")
    for module, entry in pairs.items():
        missing = [p for p in ("A", "B") if p not in entry]
        if missing:
            raise InputError(f"{module} has no lora_{missing[0]} weight", path=weights, field="--adapter")
    return pairs


def _dims(config: dict[str, Any]) -> dict[str, int]:
    hidden = int(config.get("hidden_size", 0))
    heads = int(config.get("num_attention_heads", 0)) or 1
    kv = int(config.get("num_key_value_heads", heads)) or heads
    head_dim = int(config.get("head_dim") or (hidden // heads))
    return {
        "hidden": hidden, "heads": heads, "kv_heads": kv, "head_dim": head_dim,
        "intermediate": int(config.get("intermediate_size", 0)), "vocab": int(config.get("vocab_size", 0)),
        "layers": int(config.get("num_hidden_layers", 0)),
    }


def expected_shape(module: str, d: dict[str, int]) -> tuple[int, int] | None:
    """[out, in] of the base weight the module names (torch order), None for an unknown module."""
    leaf = module.rsplit(".", 1)[-1]
    q, kv = d["heads"] * d["head_dim"], d["kv_heads"] * d["head_dim"]
    table = {
        "q_proj": (q, d["hidden"]), "k_proj": (kv, d["hidden"]), "v_proj": (kv, d["hidden"]),
        "o_proj": (d["hidden"], q), "gate_proj": (d["intermediate"], d["hidden"]),
        "up_proj": (d["intermediate"], d["hidden"]), "down_proj": (d["hidden"], d["intermediate"]),
        "embed_tokens": (d["vocab"], d["hidden"]), "lm_head": (d["vocab"], d["hidden"]),
    }
    return table.get(leaf)


def _permute(weights: Any, n_head: int, n_head_kv: int | None) -> Any:
    """convert_hf_to_gguf.py's LlamaModel.permute, applied to lora_b's rows (the q/k output rows)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def plan_gguf_adapter(adapter: Path, base_model: str) -> AdapterPlan:
    """Read and check the adapter against the base, and compute every tensor the file will hold."""
    import gguf
    import torch

    config = read_json(adapter / ADAPTER_CONFIG, field="--adapter")
    if not isinstance(config, dict):
        raise InputError("expected a JSON object", path=adapter / ADAPTER_CONFIG, field="--adapter")
    check_lora_config(config, adapter)
    base = base_config(base_model)
    spec = arch_spec(base, base_model)
    model_arch = getattr(gguf.MODEL_ARCH, spec.gguf_arch)
    d = _dims(base)
    names = gguf.get_tensor_name_map(model_arch, d["layers"])
    tied = ties_embeddings(base)
    alpha = float(config["lora_alpha"])
    weights = adapter_weights(adapter)

    tensors: list[GgufTensor] = []
    notes: list[str] = []
    ranks: set[int] = set()
    folded = 0
    for module, entry in sorted(_read_pairs(adapter).items()):
        a = entry["A"].to(torch.float32)
        b = entry["B"].to(torch.float32)
        embedding = entry["embedding"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise InputError(
                f"{module}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not form a LoRA pair",
                path=weights, field="--adapter",
            )
        rank = int(a.shape[0])
        ranks.add(rank)
        leaf = module.rsplit(".", 1)[-1]
        gguf_name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if gguf_name is None:
            raise InputError(
                f"{module} has no llama.cpp tensor in a {d['layers']}-layer {architecture(base)} "
                f"(wrong base model?); {ADVICE_MERGED}",
                path=weights, field="--adapter",
            )
        if leaf in ("embed_tokens", "lm_head") and tied:
            raise InputError(
                f"a LoRA on {leaf}, but the base ties its embeddings and output head: llama.cpp would apply "
                f"it to both; {ADVICE_MERGED}",
                path=weights, field="--adapter",
            )
        # Shapes in PEFT's layout: a Linear's A is [r, in], B [out, r]; an Embedding's A is
        # [r, vocab], B [hidden, r] (its delta is (B @ A).T).
        got = (int(b.shape[0]), int(a.shape[1])) if not embedding else (int(a.shape[1]), int(b.shape[0]))
        want = expected_shape(module, d)
        if want is not None and got != want:
            raise InputError(
                f"{module}: the adapter is {got[0]} x {got[1]}, the base's weight {want[0]} x {want[1]} "
                f"(trained on another base?)",
                path=weights, field="--adapter",
            )

        peft_scale, peft_rank = peft_scaling(config, module)
        if peft_rank != rank:
            raise InputError(
                f"{module}: rank {rank} in the weights, {peft_rank} in {ADAPTER_CONFIG}", path=weights, field="--adapter"
            )
        factor = peft_scale / (alpha / rank)
        if factor != 1.0:
            b = (b.to(torch.float64) * factor).to(torch.float32)
            folded += 1
        if spec.permute_qk and leaf == "q_proj":
            b = _permute(b, d["heads"], d["heads"])
        elif spec.permute_qk and leaf == "k_proj":
            b = _permute(b, d["heads"], d["kv_heads"])
        lora_a = a.T.contiguous() if embedding else a
        tensors.append(GgufTensor(gguf_name + ".lora_a", lora_a.numpy(), module))
        tensors.append(GgufTensor(gguf_name + ".lora_b", b.contiguous().numpy(), module))
    if folded:
        notes.append(
            f"PEFT's scale differs from llama.cpp's alpha/rank for {folded} module(s) "
            "(use_rslora or alpha/rank patterns): folded into lora_b"
        )
    arch_name = gguf.MODEL_ARCH_NAMES[model_arch]
    return AdapterPlan(arch_name, alpha, tensors, max(ranks), len(tensors) // 2, notes)


def _numpy_for(outtype: str, data: Any, name: str) -> Any:
    import numpy as np

    out = data.astype(np.float16 if outtype == "f16" else np.float32)
    if not np.isfinite(out).all():
        raise InputError(f"{name} does not fit float16 (values beyond 65504); use --outtype f32", field="--outtype")
    return out


def write_gguf_adapter(
    adapter: str | Path,
    base_model: str,
    out: str | Path,
    *,
    outtype: str = DEFAULT_OUTTYPE,
    name: str | None = None,
) -> AdapterPlan:
    """Write the adapter as a GGUF LoRA adapter file at `out` (atomically); returns what was written.

    The caller has checked `adapter` (a PEFT folder), `base_model` (local or cached) and `out`.
    """
    import gguf

    adapter = Path(adapter)
    outtype = check_outtype(outtype)
    plan = plan_gguf_adapter(adapter, base_model)
    arrays = [(t.name, _numpy_for(outtype, t.data, t.name)) for t in plan.tensors]
    raw = gguf.GGMLQuantizationType.F16 if outtype == "f16" else gguf.GGMLQuantizationType.F32

    def write(tmp: Path) -> None:
        writer = gguf.GGUFWriter(path=None, arch=plan.arch)
        # Key order as llama.cpp's converter writes them: type, adapter type, name, base model, alpha, version.
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_name(name or adapter.name)
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, str(base_model))  # which base to load it over
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, plan.alpha)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for tensor_name, data in arrays:
            writer.add_tensor(tensor_name, data, raw_dtype=raw)
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    atomic_write_via(out, write)
    return plan
