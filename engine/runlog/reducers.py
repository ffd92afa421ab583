"""Folds for the stage event types a status view shows live (into `JobState.extra`).

The core fold keeps only generic state; the headline numbers of a running stage (teacher
acceptance and cost, training loss and tokens/s, eval valid rate and mean) live in stage events.
Importing this module registers the reducers; it imports no stage code (no torch, no SDKs).
"""

from __future__ import annotations

from typing import Any

import engine.runlog.gpu  # noqa: F401  (registers the gpu event's fold: GPU health in status and the cockpit)
from engine.core.numbers import finite
from engine.runlog.state import JobState, register_reducer

TEACHER_KEYS = ("accepted", "rejected", "target", "attempted", "in_flight", "retries", "records_per_min",
                "acceptance_rate", "cost_usd", "cost_usd_run", "cost_per_accepted_usd", "provider_errors")
TRAIN_KEYS = ("step", "max_steps", "epoch", "loss", "learning_rate", "grad_norm", "tokens_seen", "tokens_per_s",
              "gpu_mem_allocated_gb", "gpu_mem_peak_gb")


def _teacher_stats(job: JobState, event: dict[str, Any]) -> None:
    data = event.get("data") or {}
    job.extra["teacher"] = {k: data.get(k) for k in TEACHER_KEYS if k in data}


def _teacher_batch(job: JobState, event: dict[str, Any]) -> None:
    """Batch mode: each Gemini batch job's latest state, by job name (engine.views.headline counts them)."""
    data = event.get("data") or {}
    name, state = data.get("job"), data.get("state")
    if isinstance(name, str) and isinstance(state, str):
        job.extra.setdefault("batch_jobs", {})[name] = state


def _train_step(job: JobState, event: dict[str, Any]) -> None:
    data = event.get("data") or {}
    train = job.extra.setdefault("train", {})
    for key in TRAIN_KEYS:
        if data.get(key) is not None:
            train[key] = data[key]
    loss = data.get("loss")
    if isinstance(loss, str):  # "NaN"/"Infinity": worth seeing, so keep the string
        train["loss"] = loss


def _train_eval(job: JobState, event: dict[str, Any]) -> None:
    data = event.get("data") or {}
    job.extra.setdefault("train", {})["eval_loss"] = data.get("eval_loss")


PROBE_KEYS = ("step", "prompts", "valid", "valid_rate", "mean")


def _train_probe(job: JobState, event: dict[str, Any]) -> None:
    """The latest probe: where the student stands on held-out prompts while it trains."""
    data = event.get("data") or {}
    job.extra.setdefault("train", {})["probe"] = {k: data.get(k) for k in PROBE_KEYS}


def _eval_case(job: JobState, event: dict[str, Any]) -> None:
    """Running n / valid / mean over valid cases, as the eval summary will report at the end."""
    data = event.get("data") or {}
    ev = job.extra.setdefault("eval", {"n": 0, "valid": 0, "score_sum": 0.0})
    ev["n"] += 1
    score = finite(data.get("score"))
    if data.get("status") == "ok" and score is not None:
        ev["valid"] += 1
        ev["score_sum"] += score


for _type, _fn in (("teacher_stats", _teacher_stats), ("teacher_batch", _teacher_batch), ("train_step", _train_step),
                   ("train_eval", _train_eval), ("train_probe", _train_probe), ("eval_case", _eval_case)):
    register_reducer(_type, _fn)
