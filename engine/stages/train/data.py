"""Training data: prep's train.jsonl / val.jsonl tokenised with the loss on the answer only.

Each example is the prompt (through the chat template when the base has one) followed by the
answer and EOS; labels are -100 over the prompt, so the loss is on the answer tokens alone (the
replaced script trained on the prompt too). No padding here: the collator pads each batch to its
longest example (the replaced script padded every sample to 2048 tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.blocks import render_response
from engine.core.prompts import encode_prompt, encode_response, render_student_prompt
from engine.errors import InputError
from engine.store.jsonl import iter_jsonl

IGNORE_INDEX = -100


@dataclass
class Pair:
    prompt: str
    response: str
    path: str
    line: int


def _pair(obj: Any, path: Path, line: int) -> Pair:
    if not isinstance(obj, dict):
        raise InputError("expected a JSON object", path=path, line=line)
    if isinstance(obj.get("messages"), list):
        user = [m.get("content") for m in obj["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        bot = [m.get("content") for m in obj["messages"] if isinstance(m, dict) and m.get("role") == "assistant"]
        if not user or not bot or not isinstance(user[-1], str) or not isinstance(bot[-1], str):
            raise InputError("expected a user and an assistant message", path=path, line=line, field="messages")
        return Pair(user[-1], bot[-1], str(path), line)
    if "prompt" in obj or "response" in obj:
        for key in ("prompt", "response"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise InputError("missing or not a non-empty string", path=path, line=line, field=key)
        return Pair(obj["prompt"], obj["response"], str(path), line)
    if "teacher_product_vision" in obj:
        for key in ("concept", "requirements_yaml", "teacher_product_vision", "teacher_product_owner_review"):
            if not isinstance(obj.get(key), str):
                raise InputError("missing or not a string", path=path, line=line, field=key)
        prompt = render_student_prompt(obj["concept"], obj["requirements_yaml"])
        return Pair(prompt, render_response(obj["teacher_product_vision"], obj["teacher_product_owner_review"]), str(path), line)
    raise InputError("not a training record (expected prompt/response, messages or a teacher record)", path=path, line=line)


def read_pairs(path: str | Path) -> list[Pair]:
    p = Path(path)
    pairs = [_pair(obj, p, line) for line, obj in iter_jsonl(p)]
    if not pairs:
        raise InputError("no training records", path=p)
    return pairs


def data_files(data: str | Path) -> tuple[Path, Path | None]:
    """prep's output directory (train.jsonl, optional val.jsonl) or a single JSONL file."""
    d = Path(data)
    if d.is_dir():
        train = d / "train.jsonl"
        if not train.exists():
            raise InputError("no train.jsonl here (run po-tui prep first)", path=d)
        val = d / "val.jsonl"
        return train, (val if val.exists() and val.stat().st_size > 0 else None)
    if not d.exists():
        raise InputError("no such file or directory", path=d)
    return d, None


@dataclass
class Encoded:
    examples: list[dict[str, list[int]]]
    truncated: int
    longest_prompt: int
    tokens: int


def encode_pairs(pairs: list[Pair], tokenizer: Any, *, max_seq_len: int, chat: bool) -> Encoded:
    """Tokenise with prompt masking. A prompt that does not fit leaves no room for the answer:
    that is an error before any work; an answer that overflows is cut and counted."""
    examples = []
    truncated = 0
    longest = 0
    tokens = 0
    for pair in pairs:
        prompt_ids = encode_prompt(tokenizer, pair.prompt, chat=chat)
        longest = max(longest, len(prompt_ids))
        if len(prompt_ids) >= max_seq_len:
            raise InputError(
                f"--max-seq-len {max_seq_len} is shorter than this prompt ({len(prompt_ids)} tokens): nothing left for the answer",
                path=pair.path,
                line=pair.line,
                field="prompt",
            )
        answer_ids = encode_response(tokenizer, pair.response)
        room = max_seq_len - len(prompt_ids)
        if len(answer_ids) > room:
            answer_ids = answer_ids[:room]
            truncated += 1
        ids = prompt_ids + answer_ids
        tokens += len(ids)
        examples.append(
            {
                "input_ids": ids,
                "attention_mask": [1] * len(ids),
                "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids,
            }
        )
    return Encoded(examples, truncated, longest, tokens)


class ListDataset:
    """A map-style dataset over pre-tokenised examples (all the Trainer needs)."""

    def __init__(self, examples: list[dict[str, list[int]]]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.examples[i]
