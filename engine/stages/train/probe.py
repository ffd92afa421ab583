"""Learning while it trains: greedy answers to a few held-out prompts every `probe_every` steps.

Why: a falling loss does not say whether the student can write the answer yet. A probe asks the
model in training for the answers to the first `probe_prompts` concepts of val.jsonl (the same
prompts, in the same layout, as the evaluation stage), judges them with the engine's own block
parser and metric, and emits one `train_probe` event with the valid rate and the mean (format
errors as 0): the Training tab and the report then show the format being learnt, step by step.

Why it is safe to leave on:
- Cheap: a handful of prompts in one batch, answers capped near the longest training answer.
- It does not change the training: the model is put in eval mode (no dropout) and decoded
  greedily inside a forked RNG, so the steps after a probe are exactly those without one, and a
  resumed run probes the same steps again and gets the same answers.
- Rank 0 alone probes (the others wait at the next gradient exchange). FSDP and DeepSpeed shard
  the weights over the ranks, so one rank cannot decode alone: probes are refused with them.
- Every probe is also appended (fsynced) to `OUT/probes.jsonl`, so a resumed run still reports
  the probes made before it was stopped; `po_tui_train.json` keeps the last one per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine.core.metric import DEFAULT_METRIC
from engine.core.prompts import encode_prompt, render_student_prompt
from engine.errors import InputError
from engine.runlog.events import register_event_type
from engine.store.jsonl import JsonlAppender, iter_jsonl

PROBES_FILE = "probes.jsonl"
# Answers may run this much past the longest training answer before they are cut.
HEADROOM = 1.25
MIN_NEW_TOKENS = 16
# The schema part of the metric is worth 30 points when every key is there with the right type.
FULL_SCHEMA = 30.0

register_event_type(
    "train_probe",
    "Greedy answers to the first held-out prompts at a training step: step, max_steps, prompts, valid, "
    "complete, valid_rate, mean (format errors as 0), stopped, max_new_tokens, seconds.",
    required=("step", "prompts", "valid_rate", "mean"),
)


@dataclass(frozen=True)
class ProbeCase:
    concept_id: str
    requirements_yaml: str
    prompt_ids: list[int]


@dataclass(frozen=True)
class ProbeSet:
    cases: list[ProbeCase]
    max_new_tokens: int
    metric: str = DEFAULT_METRIC


def probe_set(
    val_file: Path | None,
    tokenizer: Any,
    *,
    chat: bool,
    count: int,
    longest_answer: int,
    max_new_tokens: int | None = None,
) -> ProbeSet:
    """The first `count` distinct concepts of val.jsonl, tokenised as training and eval see them.

    Raises InputError (before anything is written) when there is nothing to probe on."""
    from engine.stages.eval.dataset import read_cases

    if val_file is None:
        raise InputError(
            "probes need held-out prompts: --data has no non-empty val.jsonl (run prep with a --val-fraction)",
            field="--probe-every",
        )
    try:
        selected = read_cases(val_file, count)
    except InputError as exc:
        if exc.field == "--dataset":  # eval's flag: here the held-out file is train's --data
            exc.field = "--probe-every"
        raise
    cases = [
        ProbeCase(
            case.concept_id,
            case.concept.requirements_yaml,
            encode_prompt(tokenizer, render_student_prompt(case.concept.concept, case.concept.requirements_yaml), chat=chat),
        )
        for case in selected
    ]
    if max_new_tokens is None:
        max_new_tokens = max(MIN_NEW_TOKENS, int(longest_answer * HEADROOM))
    return ProbeSet(cases, max_new_tokens)


def longest_answer(examples: list[dict[str, list[int]]]) -> int:
    """Answer tokens (EOS included) of the longest training example."""
    from engine.stages.train.data import IGNORE_INDEX

    return max((sum(1 for t in ex["labels"] if t != IGNORE_INDEX) for ex in examples), default=0)


def run_probe(model: Any, tokenizer: Any, probes: ProbeSet, *, chat: bool) -> dict[str, Any]:
    """Decode every probe prompt greedily in one batch and judge the answers."""
    import torch

    from engine.stages.eval.local import LocalModel
    from engine.stages.eval.results import judge_text

    started = time.perf_counter()
    device = next(model.parameters()).device
    local = LocalModel(model, tokenizer, chat=chat, device=device.type, dtype="")
    config = local.generation_config(max_new_tokens=probes.max_new_tokens, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
    was_training = model.training
    forked = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        model.eval()
        try:
            outputs = local.generate_ids([c.prompt_ids for c in probes.cases], config)
        finally:
            if was_training:
                model.train()
    valid = complete = 0
    total = 0.0
    for case, output in zip(probes.cases, outputs, strict=True):
        verdict = judge_text(local.decode(output.ids), case.requirements_yaml, probes.metric)
        if verdict.valid:
            valid += 1
            total += verdict.score
            complete += verdict.breakdown.get("schema", 0.0) >= FULL_SCHEMA - 1e-9
    n = len(probes.cases)
    return {
        "prompts": n,
        "valid": valid,
        "complete": complete,
        "valid_rate": round(valid / n, 4),
        "mean": round(total / n, 4),
        "stopped": sum(o.stopped for o in outputs),
        "max_new_tokens": probes.max_new_tokens,
        "metric": probes.metric,
        "seconds": round(time.perf_counter() - started, 2),
    }


def read_probes(out: str | Path) -> list[dict[str, Any]]:
    """The probes recorded in `out`, the last one per step (a resumed run redoes some), by step."""
    path = Path(out) / PROBES_FILE
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for _line, row in iter_jsonl(path):
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            by_step[row["step"]] = row
    return [by_step[k] for k in sorted(by_step)]


class ProbeCallback(TrainerCallback):
    """Probes every `every` steps and at the last step, on rank 0; events plus probes.jsonl."""

    def __init__(self, events: Any, tokenizer: Any, probes: ProbeSet, *, every: int, chat: bool, out: str | Path,
                 resume: bool, echo: Any = None) -> None:
        self.events = events
        self.tokenizer = tokenizer
        self.probes = probes
        self.every = every
        self.chat = chat
        self.echo = echo
        self.path = Path(out) / PROBES_FILE
        self.resume = resume
        self._file: JsonlAppender | None = None

    def _appender(self) -> JsonlAppender:
        if self._file is None:
            if not self.resume and self.path.exists():
                self.path.unlink()  # a fresh run's probes start anew, as its loss history does
            self._file = JsonlAppender(self.path, warn=lambda text: self.events.warning(text, code="torn_line"))
        return self._file

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        step = state.global_step
        if step % self.every and step < state.max_steps:
            return
        row = {"step": step, "max_steps": state.max_steps, **run_probe(model, self.tokenizer, self.probes, chat=self.chat)}
        self._appender().write(row)
        self.events.emit("train_probe", **row)
        if self.echo is not None:
            self.echo.write(
                f"probe at step {step}: {row['valid']}/{row['prompts']} valid, mean {row['mean']:.3f} "
                f"({row['seconds']:.1f}s)\n"
            )
            self.echo.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self._file is not None:
            self._file.close()
