"""A local model (a base, optionally with a LoRA adapter) answering in batches.

Why these choices:
- The model loads once per run; every attempt of every case goes through `generate` with a KV
  cache, LEFT padding and an attention mask, so a batch decodes as its sequences would alone
  (transformers derives position ids from the mask). `tests/test_eval.py` checks batched greedy
  output token for token against one-at-a-time decoding.
- Prompts are rendered as in training: `prompt_text_for_model` (the chat template when the
  tokenizer has one, or as the adapter's `po_tui_train.json` says it was trained). A retry is a
  multi-turn conversation through the same template.
- Requests are sorted by prompt length before batching (less padding); results go back by key.
- Decoding settings are written out in full (greedy, or temperature/top_p with top_k off, the
  repetition penalty) so a model's own `generation_config.json` (Qwen2.5's samples at 0.7 with a
  1.05 repetition penalty) never changes what "--temperature 0" means.
- CUDA out of memory on a batch splits it in halves and carries on. The split happens after the
  `except` block is left and the memory released (`gc.collect`, `torch.cuda.empty_cache`): the
  exception's traceback holds the frames of `generate`, so the failed batch's KV cache and
  activations stay allocated for as long as the handler runs, and halves decoded inside it would
  fail too, down to batch 1. The halves run from a work list, never recursively.
- On CUDA, bf16/fp16 kernels chosen per batch shape can flip a near-tied greedy token (transformers
  issue 25921), so there the batch size is part of the resume fingerprint (settings.py), each
  answer records the batch it was decoded in, and `oom_splits` in the results counts the batches
  that were split.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.core.prompts import PLAIN_SEPARATOR, prompt_text_for_model, use_chat_template
from engine.errors import InputError, StageFailed
from engine.stages.eval.generate import FINISH_MAX_TOKENS, FINISH_STOP, Generation, OnDone, Request, Turn
from engine.stages.eval.settings import EvalSettings
from engine.stages.export import (
    TRAIN_INFO,
    adapter_config,
    check_adapter,
    check_base_model,
    load_tokenizer,
    tokenizer_source,
    training_chat_mode,
)
from engine.stages.train.device import auto_dtype
from engine.store.inputfile import read_json

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass
class LocalPlan:
    """Everything checked before a weight is loaded."""

    base_model: str
    adapter: Path | None
    tokenizer: Any
    chat: bool
    train_info: dict | None
    adapter_sha256: str | None
    base_config_sha256: str | None
    warnings: list[str]
    device: str = "cpu"  # where it will decode (cuda | cpu): the fingerprint depends on it


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _base_config_sha256(base_model: str) -> str | None:
    config = Path(base_model).expanduser() / "config.json"
    return _sha256(config)[:16] if config.is_file() else None


def read_train_info(adapter: Path) -> dict | None:
    try:
        info = read_json(adapter / TRAIN_INFO)
    except InputError:
        return None
    return info if isinstance(info, dict) else None


def plan_local(s: EvalSettings) -> LocalPlan:
    """Check base, adapter, quantisation and prompt format; load only the tokenizer."""
    from engine.stages.train.runner import quiet_libraries

    quiet_libraries()
    base = check_base_model(str(s.base_model))
    adapter = check_adapter(s.adapter) if s.adapter else None
    warnings: list[str] = []
    adapter_sha = None
    if adapter is not None:
        weights = next((adapter / n for n in ADAPTER_WEIGHTS if (adapter / n).is_file()), None)
        if weights is None:
            raise InputError(f"no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})", path=adapter, field="--adapter")
        adapter_sha = _sha256(weights)[:16]
        trained_on = adapter_config(adapter).get("base_model_name_or_path")
        if trained_on and str(trained_on) != base and Path(str(trained_on)).name != Path(base).name:
            warnings.append(f"the adapter was trained on {trained_on!r}, evaluated on {base!r}")
    if s.load_4bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise InputError("needs bitsandbytes (pip install bitsandbytes)", field="--load-4bit") from exc
    tokenizer = load_tokenizer(tokenizer_source(adapter, base) if adapter else base)
    trained_chat = training_chat_mode(adapter) if adapter else None
    if s.chat_template is None:
        mode = "auto" if trained_chat is None else ("on" if trained_chat else "off")
    else:
        mode = s.chat_template
        if trained_chat is not None and (mode == "on") != trained_chat and mode != "auto":
            warnings.append(
                f"--chat-template {mode}, but the adapter was trained with the chat template "
                f"{'on' if trained_chat else 'off'}: the student sees a layout it was not trained on"
            )
    chat = use_chat_template(tokenizer, mode)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LocalPlan(
        base, adapter, tokenizer, chat, read_train_info(adapter) if adapter else None, adapter_sha,
        _base_config_sha256(base), warnings, eval_device(),
    )


def conversation_text(tokenizer: Any, turns: Sequence[Turn], *, chat: bool) -> str:
    """The exact text the model continues: the training prompt, or a multi-turn retry."""
    if len(turns) == 1:
        return prompt_text_for_model(tokenizer, turns[0].text, chat=chat)
    if chat:
        messages = [{"role": t.role, "content": t.text} for t in turns]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return PLAIN_SEPARATOR.join(t.text for t in turns) + PLAIN_SEPARATOR


def eval_device() -> str:
    """Where a local model decodes: the first CUDA device when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def release_memory() -> None:
    """Give the memory of dropped tensors back: collect reference cycles (a traceback's frames can
    sit in one), then return the CUDA caching allocator's free blocks."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _device_and_dtype(s: EvalSettings) -> tuple[str, str]:
    device = eval_device()
    if s.dtype != "auto":
        return device, s.dtype
    if device == "cuda":
        return device, auto_dtype(device)  # fp16 where bf16 is only emulated (a T4)
    return device, "float32"


@dataclass
class Output:
    ids: list[int]  # generated tokens, EOS and padding cut off
    stopped: bool  # ended by an EOS token (else by the token limit)


class LocalModel:
    """A loaded model plus its tokenizer; `run` answers requests batch by batch."""

    name = "local"

    def __init__(self, model: Any, tokenizer: Any, *, chat: bool, device: str, dtype: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.chat = chat
        self.device = device
        self.dtype = dtype
        self.pad_id = tokenizer.pad_token_id
        self.eos_ids = self._eos_ids()
        self.batches = 0
        self.oom_splits = 0  # batches split in halves after CUDA ran out of memory
        self.batch_size = 1
        self.config: Any = None
        self.on_warning: Callable[[str], None] | None = None

    @classmethod
    def load(cls, s: EvalSettings, plan: LocalPlan) -> "LocalModel":
        import torch
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        device, dtype_name = _device_and_dtype(s)
        dtype = getattr(torch, dtype_name)
        kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
        if s.load_4bit:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
            )
        if device == "cuda" or s.load_4bit:
            kwargs["device_map"] = {"": 0 if device == "cuda" else "cpu"}
        model = AutoModelForCausalLM.from_pretrained(plan.base_model, **kwargs)
        if plan.adapter is not None:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, str(plan.adapter))
            except (RuntimeError, ValueError, KeyError) as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                raise InputError(f"the adapter does not fit this base model ({first})", path=plan.adapter, field="--adapter") from exc
        model.eval()
        return cls(model, plan.tokenizer, chat=plan.chat, device=device, dtype=dtype_name)

    def _eos_ids(self) -> list[int]:
        """Every token that ends an answer: the generation config's, the tokenizer's, `<|im_end|>`."""
        ids: list[int] = []
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for value in (configured if isinstance(configured, list) else [configured]):
            if isinstance(value, int):
                ids.append(value)
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        if self.chat:
            im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
            if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
                ids.append(im_end)
        return sorted(set(ids))

    # -- tokens ----------------------------------------------------------------------------------

    def encode(self, turns: Sequence[Turn]) -> list[int]:
        text = conversation_text(self.tokenizer, turns, chat=self.chat)
        # A chat template writes its own special tokens; a plain prompt gets the tokenizer's.
        return list(self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def generation_config(
        self, *, max_new_tokens: int, temperature: float, top_p: float, repetition_penalty: float, min_new_tokens: int | None = None
    ) -> Any:
        from transformers import GenerationConfig

        sampling = temperature > 0
        return GenerationConfig(
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=sampling,
            # Greedy ignores the sampling knobs: given their library defaults they neither act nor warn.
            temperature=temperature if sampling else 1.0,
            top_p=top_p if sampling else 1.0,
            top_k=0 if sampling else 50,
            repetition_penalty=repetition_penalty,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids,
            use_cache=True,
        )

    def generate_ids(self, prompts: Sequence[Sequence[int]], config: Any, *, seed: int | None = None) -> list[Output]:
        """Decode a batch of tokenised prompts together (left padding, attention mask, KV cache)."""
        import torch

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            input_ids[i, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
            attention[i, width - len(prompt):] = 1
        device = self.model.device if hasattr(self.model, "device") else self.device
        if seed is not None and config.do_sample:
            from transformers import set_seed

            set_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), generation_config=config
            )
        outputs = []
        eos = set(self.eos_ids)
        for row in out[:, width:].tolist():
            cut = next((i for i, t in enumerate(row) if t in eos), None)
            outputs.append(Output(row if cut is None else row[:cut], cut is not None))
        return outputs

    # -- the generator interface -------------------------------------------------------------------

    def configure(self, s: EvalSettings) -> "LocalModel":
        """Decoding settings for `run` (greedy at temperature 0)."""
        self.batch_size = s.batch_size
        self.config = self.generation_config(
            max_new_tokens=s.resolved_max_new_tokens() or 1,
            temperature=s.temperature,
            top_p=s.top_p,
            repetition_penalty=s.repetition_penalty,
        )
        return self

    def run(self, requests: Sequence[Request], on_done: OnDone) -> None:
        """Sort by prompt length, decode `batch_size` at a time, report each answer."""
        encoded = [(r, self.encode(r.turns)) for r in requests]
        encoded.sort(key=lambda pair: (len(pair[1]), pair[0].key))
        for start in range(0, len(encoded), self.batch_size):
            self._decode_batch(encoded[start:start + self.batch_size], self.config, on_done)

    def _decode_batch(self, batch: list[tuple[Request, list[int]]], config: Any, on_done: OnDone) -> None:
        """Decode one batch; a part that runs out of CUDA memory is halved until the pieces fit.

        A work list, not recursion: each half is decoded only after `_generate_or_none` has left
        its `except` block and released the failed attempt's memory."""
        pending = [batch]
        while pending:
            part = pending.pop()
            started = time.perf_counter()
            outputs = self._generate_or_none(part, config)
            if outputs is None:
                half = len(part) // 2
                pending += [part[half:], part[:half]]  # the first half is decoded first
                continue
            elapsed = time.perf_counter() - started
            for (request, ids), output in zip(part, outputs, strict=True):
                on_done(
                    Generation(
                        key=request.key,
                        text=self.decode(output.ids),
                        output_tokens=len(output.ids) + (1 if output.stopped else 0),
                        input_tokens=len(ids),
                        finish_reason=FINISH_STOP if output.stopped else FINISH_MAX_TOKENS,
                        latency_s=elapsed,
                        wall_share_s=elapsed / len(part),
                        batch_size=len(part),
                    )
                )

    def _generate_or_none(self, part: list[tuple[Request, list[int]]], config: Any) -> list[Output] | None:
        """The part's outputs, or None when CUDA ran out of memory on it (a single prompt cannot be
        split: StageFailed, one line and exit 1, the answers stored so far kept for a rerun).

        The handler only notes the failure. While it runs, the exception's traceback keeps the
        frames of `generate` alive, and with them the failed batch's inputs, KV cache and
        activations; once it is left nothing refers to them, and `release_memory` returns them to
        the device before the caller decodes anything else."""
        import torch

        oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
        self.batches += 1
        try:
            return self.generate_ids([ids for _, ids in part], config, seed=part[0][0].seed)
        except oom as exc:
            if len(part) == 1:
                raise StageFailed(
                    f"CUDA out of memory decoding a single prompt ({len(part[0][1])} tokens, up to "
                    f"{config.max_new_tokens} new): nothing smaller to split. Free the GPU, or pass --load-4bit or a "
                    "lower --max-new-tokens; the answers so far are kept: rerun the same command to continue"
                ) from exc
        release_memory()
        self.oom_splits += 1
        if self.on_warning is not None:
            self.on_warning(f"CUDA out of memory on a batch of {len(part)}: splitting it in halves "
                            "(each answer records the batch size it was decoded in)")
        return None

    def close(self) -> None:
        self.model = None
