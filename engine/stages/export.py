"""Export a trained student: merge the LoRA into its base, write GGUF files and an Ollama
Modelfile, print the consumer's config block.

Why these choices:
- Everything is checked (adapter folder, base model, output folder, options, the llama.cpp tools
  a step needs) before torch, transformers or peft load a weight, so bad input is one line and
  costs no time.
- `merge_adapter` writes into a hidden folder beside `out` and renames it at the end, so a failed
  merge never leaves half a model where a consumer would pick it up. Its config.json also gets the
  top-level `rope_theta` (and `rope_scaling` for a non-default RoPE) that transformers 5 moved into
  `rope_parameters`: Ollama's and older llama.cpp converters read only the top-level keys, and
  Ollama's reads them unchecked (a missing `rope_theta` becomes a RoPE base of 0: garbage output).
- The Ollama TEMPLATE is not parsed from the Jinja chat template (that would be a Jinja
  interpreter); it is derived by *rendering* the template with marker strings and cutting the
  text around them. Whatever the template writes around a system and a user message is exactly
  what the student saw in training (`engine.core.prompts.prompt_text_for_model`), so the Go
  template reproduces that input. A template that injects a default system message (Qwen2.5:
  "You are Qwen, ...") gets it as the Modelfile's `SYSTEM`, which Ollama sends when the caller
  gives none, so the rendered prompt is the training prompt either way.
- Ollama's `FROM` must name something Ollama can load: a GGUF file, an Ollama library name
  (`qwen2.5:7b-instruct`) or a model folder it imports; a Hugging Face id is none of them. And it
  converts safetensors `ADAPTER`s only for llama and gemma2 bases. So the Modelfile is one of:
  `FROM <library model>` + `ADAPTER ./adapter.gguf` (the GGUF LoRA, written beside it: any base
  llama.cpp runs), `FROM <merged GGUF>` with no ADAPTER (the LoRA is in its weights; also the
  only route for an adapter that trains whole modules), or, for llama/gemma2 bases on request, the
  safetensors adapter folder. Anything else is refused in one line (engine/stages/ollama_routes.py).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import secrets
import shlex
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from engine.core.prompts import PLAIN_SEPARATOR, use_chat_template
from engine.errors import InputError
from engine.stages.gguf_adapter import check_outtype, write_gguf_adapter
from engine.stages.model_config import legacy_rope_keys
from engine.stages.ollama_names import OLLAMA_NAME
from engine.stages.ollama_routes import (
    GGUF_ADAPTER_FILE,
    OllamaExport,
    adapter_route,
    check_gguf_file,
    default_from,
    from_reference,
    in_folder,
)
from engine.store.atomic import atomic_write_json, atomic_write_text, fsync_dir
from engine.store.inputfile import read_json
from engine.store.jsonl import Warn
from engine.store.outpath import check_out_dir

FORMAT = "po-tui-export/1"
EXPORT_INFO = "po_tui_export.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAIN_INFO = "po_tui_train.json"  # written beside the adapter by `po-tui train`
MODELFILE = "Modelfile"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")

DTYPES = ("float16", "bfloat16", "float32")
# Qwen2 was trained in bf16 and its fp16 activations overflow in transformers; llama.cpp's GGUF
# conversion reads bf16 as well as fp16 (the seeds merged to fp16: `--dtype float16`).
DEFAULT_DTYPE = "bfloat16"
DEFAULT_TEMPERATURE = 0.4
DEFAULT_NUM_CTX = 4096
DEFAULT_MAX_TOKENS = 4096
CHAT_MODES = ("auto", "on", "off")

# Marker strings the chat template is rendered with; they never occur in a real template.
_SYS = "\u2063PO-TUI-SYSTEM\u2063"
_USR = "\u2063PO-TUI-USER\u2063"
_ASST = "\u2063PO-TUI-ASSISTANT\u2063"


def no_warn(_message: str) -> None:
    return None


# --- checks (cheap, before anything heavy) -----------------------------------------------------


def check_adapter(adapter: str | Path) -> Path:
    """A PEFT adapter folder (with adapter_config.json), as an absolute path."""
    path = Path(adapter).expanduser()
    if not path.exists():
        raise InputError("adapter directory not found", path=path, field="--adapter")
    if not path.is_dir():
        raise InputError("expected an adapter directory, got a file", path=path, field="--adapter")
    config = path / ADAPTER_CONFIG
    if not config.is_file():
        raise InputError(f"not a PEFT adapter directory (no {ADAPTER_CONFIG})", path=path, field="--adapter")
    if not isinstance(read_json(config, field="--adapter"), dict):
        raise InputError("expected a JSON object", path=config, field="--adapter")
    return path.resolve()


def adapter_config(adapter: Path) -> dict[str, Any]:
    data = read_json(adapter / ADAPTER_CONFIG, field="--adapter")
    return data if isinstance(data, dict) else {}


def check_base_model(base_model: str) -> str:
    """A local model folder (with config.json) or a model in the Hugging Face cache; never the hub."""
    if not base_model or not str(base_model).strip():
        raise InputError("required", field="--base-model")
    path = Path(base_model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise InputError("not a model directory (no config.json)", path=path, field="--base-model")
        return str(path)
    if base_model.startswith((".", "/", "~")) or base_model.count("/") > 1:
        raise InputError("no such model directory", path=path, field="--base-model")
    from transformers import AutoConfig  # configs only: no weights are read

    try:
        AutoConfig.from_pretrained(base_model, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not available here
        raise InputError(
            f"unknown model {base_model!r}: not a local directory and not in the Hugging Face cache "
            "(download it first, or pass a path)",
            field="--base-model",
        ) from exc
    return base_model


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise InputError(f"must be one of {', '.join(DTYPES)}, got {dtype!r}", field="--dtype")
    return dtype


def check_merge_out(out: str | Path) -> Path:
    """A missing or empty folder, or an earlier export (which is replaced), may become the output."""
    out = check_out_dir(Path(out).expanduser())
    if not out.exists():
        return out
    if any(out.iterdir()) and not (out / EXPORT_INFO).is_file():
        raise InputError(
            f"is not empty and holds no {EXPORT_INFO}; refusing to overwrite it", path=out, field="--out"
        )
    return out


def check_name(name: str) -> str:
    if not name or not OLLAMA_NAME.match(name):
        raise InputError(
            f"not a valid Ollama model name: {name!r} (letters, digits, '.', '_', '-', optional ':tag')",
            field="--name",
        )
    return name


def check_temperature(value: float) -> float:
    if not value >= 0:  # also rejects NaN
        raise InputError(f"must be 0 or more, got {value}", field="--temperature")
    return float(value)


def check_positive(value: int, flag: str) -> int:
    if value < 1:
        raise InputError(f"must be at least 1, got {value}", field=flag)
    return int(value)


def tokenizer_source(adapter: Path, base_model: str) -> str:
    """The adapter folder when training saved its tokenizer there, else the base model."""
    if any((adapter / name).is_file() for name in TOKENIZER_FILES):
        return str(adapter)
    return base_model


def training_chat_mode(adapter: Path) -> bool | None:
    """Whether `po-tui train` used the chat template (from po_tui_train.json), None if unrecorded."""
    try:
        info = read_json(adapter / TRAIN_INFO)
    except InputError:
        return None
    value = ((info or {}).get("prompt_format") or {}).get("chat_template") if isinstance(info, dict) else None
    return value if isinstance(value, bool) else None


def load_tokenizer(source: str, flag: str = "--base-model") -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable tokenizer here
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"cannot load a tokenizer ({type(exc).__name__}: {first})", path=source, field=flag) from exc


# --- merge ------------------------------------------------------------------------------------


def fresh_dir(out: Path, kind: str) -> Path:
    for _ in range(100):
        path = out.parent / f".{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary folder beside {out}")


def _replace_dir(tmp: Path, out: Path) -> None:
    check_merge_out(out)  # again: the folder may have changed during the merge
    if out.exists():
        old = fresh_dir(out, "old")
        os.replace(out, old / "dir")
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    fsync_dir(out.parent)


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No per-tensor progress bars or library deprecation notices: the command reports one line."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _save_model(model: Any, folder: Path) -> None:
    """safetensors; transformers 5 always writes them and dropped the `safe_serialization` flag."""
    kwargs: dict[str, Any] = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True
    model.save_pretrained(str(folder), **kwargs)


def add_legacy_rope_keys(config_file: Path) -> None:
    """Rewrite a saved config.json with `legacy_rope_keys` (nothing to do when already present)."""
    config = read_json(config_file, field="config.json")
    if not isinstance(config, dict):
        return
    patched = legacy_rope_keys(config)
    if patched != config:
        atomic_write_json(config_file, patched)


def merge_adapter(
    adapter: str | Path,
    base_model: str,
    out: str | Path,
    *,
    dtype: str = DEFAULT_DTYPE,
    warn: Warn = no_warn,
) -> Path:
    """Fold the LoRA adapter into the base weights and save a standalone model + tokenizer in `out`.

    The base loads in `dtype` (local folder or HF cache, `local_files_only`), the adapter with
    `PeftModel.from_pretrained`, then `merge_and_unload()`. `out` receives the safetensors model,
    the tokenizer (the adapter's if training saved one there, else the base's) and
    `po_tui_export.json`. Nothing appears at `out` unless everything was written.
    """
    adapter_dir = check_adapter(adapter)
    base = check_base_model(base_model)
    dtype = check_dtype(dtype)
    out_dir = check_merge_out(out)
    config = adapter_config(adapter_dir)
    trained_on = config.get("base_model_name_or_path")
    if trained_on and str(trained_on) != str(base_model):
        same = Path(str(trained_on)).exists() and Path(base).exists() and Path(str(trained_on)).resolve() == Path(base).resolve()
        if not same:
            warn(f"the adapter was trained on {trained_on!r}, merging into {base_model!r}")
    tok_source = tokenizer_source(adapter_dir, base)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(tok_source, "--adapter" if tok_source == str(adapter_dir) else "--base-model")
    with _quiet():
        model = AutoModelForCausalLM.from_pretrained(base, dtype=_torch_dtype(dtype), local_files_only=True)
        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise InputError(
                f"does not fit {base_model!r} ({type(exc).__name__}: {first})", path=adapter_dir, field="--adapter"
            ) from exc
        merged = model.merge_and_unload()
    merged.eval()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = fresh_dir(out_dir, "tmp")
    try:
        with _quiet():
            _save_model(merged, tmp)
        add_legacy_rope_keys(tmp / "config.json")
        tokenizer.save_pretrained(str(tmp))
        info = {
            "format": FORMAT,
            "base_model": base_model,
            "adapter": str(adapter_dir),
            "dtype": dtype,
            "tokenizer_from": "adapter" if tok_source == str(adapter_dir) else "base_model",
            "adapter_trained_on": trained_on,
            "lora": {k: config.get(k) for k in ("peft_type", "r", "lora_alpha", "target_modules") if k in config},
            "prompt_format": {"chat_template": training_chat_mode(adapter_dir)},
        }
        # A plain write: the whole folder is moved into place at once.
        (tmp / EXPORT_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# --- Ollama -----------------------------------------------------------------------------------


@dataclass
class OllamaFormat:
    """How Ollama should lay out the prompt: TEMPLATE, stop strings and an optional default SYSTEM."""

    template: str
    stops: list[str]
    system: str | None = None
    chat: bool = True
    notes: list[str] = field(default_factory=list)


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation: bool) -> str | None:
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    except Exception:  # noqa: BLE001 - a template may refuse a role (e.g. no system turns)
        return None
    return text if isinstance(text, str) else None


def _go_literal(text: str) -> str:
    """Literal text inside a Go template: only `{{` would start an action."""
    return text.replace("{{", '{{ "{{" }}')


def _special_tokens(tokenizer: Any) -> list[str]:
    names: list[str] = []
    for tok in list(getattr(tokenizer, "all_special_tokens", []) or []):
        if isinstance(tok, str) and tok and tok not in names:
            names.append(tok)
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for added in decoder.values():
        content = getattr(added, "content", None)
        if getattr(added, "special", False) and content and content not in names:
            names.append(content)
    return names


def _tokens_in(text: str, specials: list[str]) -> list[str]:
    """The special tokens occurring in `text`, in order of appearance."""
    found = sorted((text.find(tok), tok) for tok in specials if tok in text)
    return [tok for _, tok in found]


def _stops(tokenizer: Any, *, turn_end: str = "", turn_start: str = "") -> list[str]:
    """The special tokens closing an assistant turn, eos, pad, then those opening a turn.

    ChatML gives `<|im_end|>`, `<|endoftext|>`, `<|im_start|>`: the model stops at the end of its
    turn, at end of text, or if it starts writing a new turn.
    """
    specials = _special_tokens(tokenizer)
    stops: list[str] = []

    def add(tok: Any) -> None:
        if isinstance(tok, str) and tok.strip() and tok not in stops:
            stops.append(tok)

    for tok in _tokens_in(turn_end, specials):
        add(tok)
    add(getattr(tokenizer, "eos_token", None))
    add(getattr(tokenizer, "pad_token", None))
    for tok in _tokens_in(turn_start, specials):
        add(tok)
    return stops


def ollama_format(tokenizer: Any, *, chat: bool | None = None) -> OllamaFormat:
    """Translate the tokenizer's chat template (or the plain layout) into Ollama's terms.

    `chat=None` follows `use_chat_template(tokenizer, "auto")`, as training does by default.
    """
    if chat is None:
        chat = use_chat_template(tokenizer, "auto")
    if chat and not getattr(tokenizer, "chat_template", None):
        raise InputError("the tokenizer has no chat template", field="--chat-template")
    if not chat:
        note = (
            "no chat template: the student was trained on the plain layout (prompt, blank line), "
            'so TEMPLATE is "{{ .Prompt }}" plus a blank line'
        )
        return OllamaFormat(
            template="{{ .Prompt }}" + PLAIN_SEPARATOR,
            stops=_stops(tokenizer),
            chat=False,
            notes=[note],
        )

    user_only = _render(tokenizer, [{"role": "user", "content": _USR}], generation=True)
    if user_only is None or user_only.count(_USR) != 1:
        raise InputError("the chat template cannot render a single user message", field="chat_template")
    pre_user, post_user = user_only.split(_USR)

    # How an assistant turn closes (for the stop strings).
    answered = _render(
        tokenizer, [{"role": "user", "content": _USR}, {"role": "assistant", "content": _ASST}], generation=False
    )
    turn_end = answered.split(_ASST, 1)[1] if answered and answered.count(_ASST) == 1 else ""

    notes: list[str] = []
    with_system = _render(
        tokenizer, [{"role": "system", "content": _SYS}, {"role": "user", "content": _USR}], generation=True
    )
    system_open = system_to_user = None
    if with_system and with_system.count(_SYS) == 1 and with_system.count(_USR) == 1:
        head, rest = with_system.split(_SYS)
        if _USR in rest and rest.split(_USR)[1] == post_user:
            system_open, system_to_user = head, rest.split(_USR)[0]

    stops = _stops(tokenizer, turn_end=turn_end, turn_start=pre_user)
    prompt = "{{ .Prompt }}"
    if system_open is None:
        notes.append("the chat template renders no system message: TEMPLATE ignores .System")
        return OllamaFormat(_go_literal(pre_user) + prompt + _go_literal(post_user), stops, None, True, notes)

    # Split what lies between the system text and the user text into "system turn closes" and
    # "user turn opens". A system-only render gives the close directly; failing that, a template
    # without a default system message opens the user turn the same way with or without one.
    system_close = user_open = None
    system_only = _render(tokenizer, [{"role": "system", "content": _SYS}], generation=False)
    if system_only and system_only.count(_SYS) == 1:
        head, tail = system_only.split(_SYS)
        if head == system_open and tail and system_to_user.startswith(tail):
            system_close, user_open = tail, system_to_user[len(tail):]
    if system_close is None and system_to_user.endswith(pre_user):
        system_close, user_open = system_to_user[: len(system_to_user) - len(pre_user)], pre_user

    default_system: str | None = None
    if system_close is not None and user_open is not None:
        if pre_user == user_open:
            default_system = None
        elif pre_user.startswith(system_open) and pre_user.endswith(system_close + user_open):
            default_system = pre_user[len(system_open): len(pre_user) - len(system_close + user_open)]
        else:
            system_close = None  # the no-system prompt is something else: use the general form below

    if system_close is None or user_open is None:
        # General form: exact for both cases, however the template arranges them.
        template = (
            "{{ if .System }}" + _go_literal(system_open) + "{{ .System }}" + _go_literal(system_to_user)
            + "{{ else }}" + _go_literal(pre_user) + "{{ end }}" + prompt + _go_literal(post_user)
        )
        return OllamaFormat(template, stops, None, True, notes)

    template = (
        "{{ if .System }}" + _go_literal(system_open) + "{{ .System }}" + _go_literal(system_close) + "{{ end }}"
        + _go_literal(user_open) + prompt + _go_literal(post_user)
    )
    if default_system is not None:
        notes.append("the chat template adds a default system message: written as SYSTEM")
    return OllamaFormat(template, stops, default_system, True, notes)


def _quoted(keyword: str, text: str) -> str:
    if '"""' in text:
        raise InputError(f'the {keyword} text contains """, which a Modelfile cannot quote', field=keyword)
    return f'{keyword} """{text}"""'


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_modelfile(
    *,
    from_ref: str,
    adapter: str | Path | None,
    fmt: OllamaFormat,
    temperature: float,
    num_ctx: int,
) -> str:
    lines = [f"FROM {from_ref}"]
    if adapter is not None:
        lines.append(f"ADAPTER {adapter}")
    lines.append(_quoted("TEMPLATE", fmt.template))
    if fmt.system is not None:
        lines.append(_quoted("SYSTEM", fmt.system))
    for stop in fmt.stops:
        lines.append(f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}")
    lines.append(f"PARAMETER temperature {_number(float(temperature))}")
    lines.append(f"PARAMETER num_ctx {int(num_ctx)}")
    # Ollama's default repeat_penalty is 1.1; the student was trained and evaluated without one.
    lines.append("PARAMETER repeat_penalty 1")
    return "\n".join(lines) + "\n"


def ollama_create_command(name: str, modelfile: str | Path) -> str:
    return f"ollama create {shlex.quote(name)} -f {shlex.quote(str(modelfile))}"


def ollama_run_command(name: str) -> str:
    return f"ollama run {shlex.quote(name)}"


def write_modelfile(
    adapter: str | Path,
    base_model: str,
    out_dir: str | Path,
    *,
    name: str = "po-student-v1",
    from_ref: str | None = None,
    merged_gguf: str | Path | None = None,
    adapter_format: str = "auto",
    outtype: str = "f16",
    temperature: float = DEFAULT_TEMPERATURE,
    num_ctx: int = DEFAULT_NUM_CTX,
    chat_template: str = "auto",
    warn: Warn = no_warn,
) -> OllamaExport:
    """Write `out_dir/Modelfile` (atomically) for `ollama create NAME -f out_dir/Modelfile`.

    Routes (module docstring): `merged_gguf` -> `FROM` that file, no ADAPTER; otherwise the adapter
    over an Ollama base: `FROM` `from_ref`, else the library build of `base_model`
    (`ollama_library_name`), plus `ADAPTER ./adapter.gguf` (written here) or, for llama/gemma2
    bases (`adapter_format` 'safetensors', or 'auto' where no GGUF mapping exists), the adapter
    folder. The template comes from the tokenizer (the adapter's, else the base's);
    `chat_template` 'auto' follows what training recorded in po_tui_train.json, else whether the
    tokenizer has a chat template; 'on'/'off' force it.
    """
    adapter_dir = check_adapter(adapter)
    check_name(name)
    temperature = check_temperature(temperature)
    num_ctx = check_positive(num_ctx, "--num-ctx")
    if chat_template not in CHAT_MODES:
        raise InputError(f"must be one of {', '.join(CHAT_MODES)}, got {chat_template!r}", field="--chat-template")
    outtype = check_outtype(outtype)
    if not base_model or not str(base_model).strip():
        raise InputError("required", field="--base-model")
    out = check_out_dir(Path(out_dir).expanduser())

    if merged_gguf is not None:
        if from_ref is not None:
            raise InputError("--from and --merged-gguf both name the model to build on: pass one", field="--from")
        merged_path = Path(merged_gguf).expanduser()
        check_gguf_file(merged_path, field="--merged-gguf", want="model")
        route, ref, adapter_line = "merged-gguf", in_folder(merged_path, out), None
    else:
        lora_config = adapter_config(adapter_dir)
        fmt_name, _arch = adapter_route(adapter_dir, lora_config, check_base_model(base_model), adapter_format)
        route = f"{fmt_name}-adapter"
        if from_ref is not None:
            ref = from_reference(from_ref)
        else:
            ref = default_from(lora_config, base_model, fmt_name)
            if not Path(ref).is_absolute():
                warn(
                    f"FROM {ref}, Ollama's library build of the base; its default tags are 4-bit quantized, so the "
                    "adapter runs over slightly different weights: --from picks another build (e.g. a q8_0 or fp16 tag)"
                )
        if fmt_name == "safetensors":
            if not (adapter_dir / ADAPTER_WEIGHTS).is_file():
                raise InputError(f"no {ADAPTER_WEIGHTS}: Ollama reads safetensors adapters", path=adapter_dir, field="--adapter")
            adapter_line = str(adapter_dir)
        else:
            adapter_line = "./" + GGUF_ADAPTER_FILE

    tok_source = tokenizer_source(adapter_dir, base_model)
    if tok_source == base_model:
        check_base_model(base_model)
    tokenizer = load_tokenizer(tok_source, "--adapter" if tok_source == str(adapter_dir) else "--base-model")
    if chat_template == "auto":
        chat = training_chat_mode(adapter_dir)
        if chat is None:
            chat = use_chat_template(tokenizer, "auto")
    else:
        chat = chat_template == "on"
    fmt = ollama_format(tokenizer, chat=chat)
    text = render_modelfile(from_ref=ref, adapter=adapter_line, fmt=fmt, temperature=temperature, num_ctx=num_ctx)

    adapter_file = None
    if route == "gguf-adapter":
        adapter_file = out / GGUF_ADAPTER_FILE
        plan = write_gguf_adapter(adapter_dir, base_model, adapter_file, outtype=outtype, name=name)
        for note in plan.notes:
            warn(note)
    for note in fmt.notes:
        warn(note)
    modelfile = atomic_write_text(out / MODELFILE, text)
    return OllamaExport(modelfile, route, ref, adapter_line, adapter_file)


# --- the consuming pipeline's config ------------------------------------------------------------


def consumer_config(
    name: str = "po-student-v1",
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    provider: str = "ollama",
    role: str = "product_owner",
) -> str:
    """The `roles:` block for the consuming pipeline's config.yaml, as YAML text."""
    import yaml

    check_name(name)
    doc = {
        "roles": {
            role: {
                "provider": provider,
                "model": name,
                "temperature": check_temperature(temperature),
                "max_tokens": check_positive(max_tokens, "--max-tokens"),
            }
        }
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)
