"""Trainer callback -> run events: every logging step, each evaluation, each checkpoint.

Only the main process writes (under DDP every rank runs the callback). High-rate steps are not
coalesced here: the event log is the record; the TUI coalesces what it draws.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from engine.runlog.events import register_event_type

register_event_type(
    "train_step",
    "A training logging step: step, max_steps, epoch, loss, learning_rate, grad_norm, tokens_seen, "
    "tokens_per_s, and on CUDA gpu_mem_allocated_gb / gpu_mem_peak_gb.",
    required=("step", "max_steps"),
)
register_event_type(
    "train_eval",
    "An evaluation on the validation split: step, epoch, eval_loss.",
    required=("step", "eval_loss"),
)
register_event_type(
    "checkpoint",
    "A checkpoint was saved (resume continues from the newest): step, path.",
    required=("step", "path"),
)


def gpu_memory() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    gib = 1024**3
    return {
        "gpu_mem_allocated_gb": round(torch.cuda.memory_allocated() / gib, 3),
        "gpu_mem_reserved_gb": round(torch.cuda.memory_reserved() / gib, 3),
        "gpu_mem_peak_gb": round(torch.cuda.max_memory_allocated() / gib, 3),
    }


def step_line(row: dict[str, Any]) -> str:
    """One plain line per logging step for a headless terminal (numbers only: nothing to escape)."""
    parts = [f"step {row['step']}/{row['max_steps']}", f"epoch {row['epoch']:.2f}" if row.get("epoch") is not None else ""]
    for key, label, fmt in (
        ("loss", "loss", "{:.4f}"),
        ("learning_rate", "lr", "{:.2e}"),
        ("grad_norm", "grad", "{:.3f}"),
        ("tokens_per_s", "tok/s", "{:,.0f}"),
        ("gpu_mem_peak_gb", "gpu peak GiB", "{:.2f}"),
    ):
        if isinstance(row.get(key), (int, float)):
            parts.append(f"{label} {fmt.format(row[key])}")
    return "  ".join(p for p in parts if p)


# Step progress between logging steps, for live views: at most this often (fast steps would flood).
PROGRESS_EVERY_S = 0.5


class EventsCallback(TrainerCallback):
    def __init__(self, events: Any, *, clock=time.monotonic, echo: Any = None) -> None:
        self.events = events
        self.clock = clock
        self.echo = echo  # a text stream for headless progress lines, or None
        self.history: list[dict[str, Any]] = []
        self._last: tuple[float, float] | None = None  # (time, tokens seen)
        self._progress_at = float("-inf")

    def _tokens_per_s(self, tokens: float | None) -> float | None:
        if tokens is None:
            return None
        now = self.clock()
        rate = None
        if self._last is not None and now > self._last[0]:
            rate = (tokens - self._last[1]) / (now - self._last[0])
        self._last = (now, tokens)
        return round(rate, 2) if rate is not None else None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._last = (self.clock(), float(state.num_input_tokens_seen or 0))
            self.events.progress(state.global_step, state.max_steps, unit="steps")

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_log = True  # the final loss is always logged, whatever --logging-steps
        if not state.is_world_process_zero:
            return
        now = self.clock()
        if now - self._progress_at >= PROGRESS_EVERY_S or state.global_step >= state.max_steps:
            self._progress_at = now
            self.events.progress(state.global_step, state.max_steps, unit="steps")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "eval_loss" in logs:
            row = {"step": state.global_step, "epoch": logs.get("epoch", state.epoch), "eval_loss": logs["eval_loss"]}
            self.history.append({"type": "eval", **row})
            self.events.emit("train_eval", **row)
            self._say(f"eval at step {row['step']}: loss {row['eval_loss']:.4f}")
            return
        if "loss" not in logs:
            return
        tokens = logs.get("num_input_tokens_seen", state.num_input_tokens_seen)
        row = {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": logs.get("epoch", state.epoch),
            "loss": logs.get("loss"),
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_seen": tokens,
            "tokens_per_s": self._tokens_per_s(float(tokens) if tokens is not None else None),
            **gpu_memory(),
        }
        self.history.append({"type": "train", **row})
        self.events.emit("train_step", **row)
        self._say(step_line(row))

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo.write(line + "\n")
            self.echo.flush()

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            path = f"{args.output_dir}/checkpoint-{state.global_step}"
            self.events.emit("checkpoint", step=state.global_step, path=path)
