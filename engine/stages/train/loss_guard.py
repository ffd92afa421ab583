"""Stop on a NaN or infinite loss, with one line that names the cause and the fix.

Qwen2's activations overflow float16 (the dtype chosen on a T4 or V100, which have no native
bf16): the loss turns to NaN and, left alone, the Trainer keeps stepping on garbage while the
fp16 grad scaler skips every update. A training loss that is not finite is never worth going on
with, in any dtype, so the run stops as a failed stage (exit 1, an `error` event) instead.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback

from engine.errors import StageFailed


def nonfinite_loss_message(name: str, value: float, step: int, dtype: str) -> str:
    """The one line for a `name` (loss / eval_loss) of `value` at `step`, training in `dtype`."""
    where = f"the {'training' if name == 'loss' else 'validation'} loss is {value} at step {step}"
    if dtype == "float16":
        return (f"{where} in float16: Qwen2's activations overflow fp16; train in float32 "
                "(--compute-dtype float32) or on a GPU with native bf16 (Ampere or newer: A10, L4, A100, H100)")
    return (f"{where} in {dtype}: training diverged; lower --lr, check the data, or resume from an earlier "
            "checkpoint with --resume")


class LossGuard(TrainerCallback):
    """Raises StageFailed from the first logged loss that is NaN or infinite.

    Every rank logs the same gathered loss, so every rank stops at the same step (no rank is
    left waiting in a collective). It needs the Trainer's `logging_nan_inf_filter` off, which
    would otherwise log a NaN step as the mean of the finite ones."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        for name in ("loss", "eval_loss"):
            value = (logs or {}).get(name)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise StageFailed(nonfinite_loss_message(name, value, state.global_step, self.dtype))
