"""The few numbers of a stage worth one table cell, live while it runs and final once it ended.

A running stage's numbers come from its stage events (folded by engine.runlog.reducers), a
finished one's from its job_finished summary. Each kind returns the numbers (for --json) and a
short text (for the screen).
"""

from __future__ import annotations

from typing import Any, Callable

from engine.core.numbers import finite
from engine.runlog.state import JobState

# For stages without a dedicated view: the summary keys worth showing, in this order.
GENERIC_KEYS = ("count", "conflicts", "accepted", "rejected", "requests", "retries", "stop_reason", "metric", "n",
                "mean", "train", "val", "invalid", "parameters", "steps", "final_loss", "final_eval_loss", "dtype",
                "valid_rate", "verdict", "ratio")


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pick(source: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: source[k] for k in keys if source.get(k) is not None}


def batch_states(job: JobState) -> dict[str, int]:
    """Batch mode: how many of the teacher's batch jobs are in each state (`running 2`, `succeeded 5`)."""
    counts: dict[str, int] = {}
    for state in (job.extra.get("batch_jobs") or {}).values():
        short = str(state).removeprefix("JOB_STATE_").lower()
        counts[short] = counts.get(short, 0) + 1
    return counts


def batch_text(job: JobState) -> str | None:
    """`batch jobs: running 2, succeeded 5`, or None when the teacher made no batch job."""
    counts = batch_states(job)
    return "batch jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else None


def _teacher(job: JobState) -> dict[str, Any]:
    live = job.extra.get("teacher", {})
    # A finished job's summary wins; the last live stats fill what it does not say (a summary of
    # `records` only still shows accepted/target, acceptance and cost).
    src = {**live, **job.summary} if job.finished else live
    nums = _pick(src, ("accepted", "target", "rejected", "acceptance_rate", "records_per_min", "cost_usd", "retries", "stop_reason"))
    parts = []
    if "accepted" in nums:
        parts.append(f"accepted {nums['accepted']}" + (f"/{nums['target']}" if nums.get("target") else ""))
    if "rejected" in nums:
        parts.append(f"rejected {nums['rejected']}")
    if finite(nums.get("acceptance_rate")) is not None:
        parts.append(f"acceptance {100 * nums['acceptance_rate']:.0f}%")
    if finite(nums.get("records_per_min")) is not None and not job.finished:
        parts.append(f"{nums['records_per_min']:.1f} rec/min")
    if finite(nums.get("cost_usd")) is not None:
        parts.append(f"${nums['cost_usd']:.4f}")
    if job.finished and nums.get("stop_reason"):
        parts.append(f"stop {nums['stop_reason']}")
    batch = batch_text(job)
    if batch:
        nums["batch_jobs"] = batch_states(job)
        parts.append(batch)
    return {"numbers": nums, "text": ", ".join(parts)}


def _train(job: JobState) -> dict[str, Any]:
    live = job.extra.get("train", {})
    nums = _pick(live, ("step", "max_steps", "loss", "eval_loss", "tokens_per_s", "gpu_mem_peak_gb"))
    if job.finished and job.summary:
        nums.update(_pick(job.summary, ("steps", "final_loss", "final_eval_loss")))
    parts = []
    if "step" in nums:
        parts.append(f"step {nums['step']}/{nums.get('max_steps', '?')}")
    loss = nums.get("final_loss", nums.get("loss"))
    if loss is not None:
        parts.append(f"loss {_fmt(loss)}")
    eval_loss = nums.get("final_eval_loss", nums.get("eval_loss"))
    if eval_loss is not None:
        parts.append(f"eval_loss {_fmt(eval_loss)}")
    if finite(nums.get("tokens_per_s")) is not None:
        parts.append(f"{nums['tokens_per_s']:.0f} tok/s")
    if finite(nums.get("gpu_mem_peak_gb")) is not None:
        parts.append(f"peak {nums['gpu_mem_peak_gb']:.1f} GB")
    probe = live.get("probe") if isinstance(live.get("probe"), dict) else {}
    if finite(probe.get("valid")) is not None and finite(probe.get("prompts")) and finite(probe.get("mean")) is not None:
        nums["probe"] = probe
        parts.append(f"probe {probe['valid']:g}/{probe['prompts']:g} valid, mean {_fmt(probe['mean'])}")
    return {"numbers": nums, "text": ", ".join(parts)}


def _eval(job: JobState) -> dict[str, Any]:
    if job.finished and job.summary:
        nums = _pick(job.summary, ("tag", "n", "valid", "valid_rate", "mean", "mean_with_errors_as_zero"))
    else:
        live = job.extra.get("eval", {})
        n, valid = live.get("n", 0), live.get("valid", 0)
        nums = {"n": n, "valid": valid} if n else {}
        if n:
            nums["valid_rate"] = valid / n
        if valid:
            nums["mean"] = live["score_sum"] / valid
        if n:
            nums["mean_with_errors_as_zero"] = live["score_sum"] / n
    parts = []
    if "n" in nums:
        parts.append(f"n {nums['n']}")
    if finite(nums.get("valid_rate")) is not None:
        parts.append(f"valid {100 * nums['valid_rate']:.0f}%")
    parts.extend(_eval_mean(nums))
    return {"numbers": nums, "text": ", ".join(parts)}


def _eval_mean(nums: dict[str, Any], digits: int = 4) -> list[str]:
    """The mean as the Evaluation and Gate tabs show it: a format error counts 0 (the mean of the
    valid answers alone would rank a model that fails half its answers above one that does not)."""
    mean, n, valid = finite(nums.get("mean_with_errors_as_zero")), finite(nums.get("n")), finite(nums.get("valid"))
    if mean is None and finite(nums.get("mean")) is not None and n and valid is not None:
        mean = nums["mean"] * valid / n  # an older summary: the valid answers' mean only
    if mean is None:
        return []
    return [f"mean {mean:.{digits}f}" + (" (errors as 0)" if n is not None and valid is not None and valid < n else "")]


def _gate(job: JobState) -> dict[str, Any]:
    nums = _pick(job.summary, ("verdict", "passed", "criteria", "ratio", "student_mean", "baseline_mean"))
    parts = []
    if isinstance(nums.get("verdict"), str):
        parts.append(nums["verdict"].upper() + (f" ({nums['passed']}/{nums['criteria']} criteria)" if "criteria" in nums else ""))
    if finite(nums.get("ratio")) is not None:
        parts.append(f"ratio {nums['ratio']:.3f}")
    return {"numbers": nums, "text": ", ".join(parts)}


def _generic(job: JobState) -> dict[str, Any]:
    nums = {k: v for k, v in _pick(job.summary, GENERIC_KEYS).items() if isinstance(v, (str, int, float))}
    return {"numbers": nums, "text": ", ".join(f"{k} {_fmt(v)}" for k, v in nums.items())}


KINDS: dict[str, Callable[[JobState], dict[str, Any]]] = {
    "teacher": _teacher, "train": _train, "eval": _eval, "gate": _gate,
}


def _money(usd: float) -> str:
    return f"${usd:,.0f}" if usd >= 100 else f"${usd:.2f}" if usd >= 1 else f"${usd:.3f}"


def _short(kind: str, nums: dict[str, Any], text: str) -> str:
    """The headline in about 25 characters, for a table cell beside the stage at 80 columns:
    the one or two numbers a glance needs (the full `text` says the rest)."""
    parts: list[str] = []
    if kind == "teacher":
        if "accepted" in nums:
            parts.append(f"{nums['accepted']}/{nums['target']}" if nums.get("target") else f"{nums['accepted']} acc")
        if finite(nums.get("acceptance_rate")) is not None:
            parts.append(f"{100 * nums['acceptance_rate']:.0f}% acc")
        if finite(nums.get("cost_usd")) is not None:
            parts.append(_money(nums["cost_usd"]))
    elif kind == "train":
        loss, eval_loss = nums.get("final_loss", nums.get("loss")), nums.get("final_eval_loss", nums.get("eval_loss"))
        if finite(loss) is not None:
            parts.append(f"loss {loss:.3f}")
        if finite(eval_loss) is not None:
            parts.append(f"eval {eval_loss:.3f}")
    elif kind == "eval":
        if finite(nums.get("valid_rate")) is not None:
            parts.append(f"valid {100 * nums['valid_rate']:.0f}%")
        mean = _eval_mean(nums, digits=3)
        if mean:
            parts.append(mean[0].removesuffix(" (errors as 0)"))
    elif kind == "gate":
        if isinstance(nums.get("verdict"), str):
            parts.append(nums["verdict"].upper() + (f" {nums['passed']}/{nums['criteria']}" if "criteria" in nums else ""))
    else:
        parts = text.split(", ")[:2]
    return " ".join(parts) if kind in KINDS else ", ".join(parts)


def headline(kind: str, job: JobState) -> dict[str, Any]:
    """{"numbers": {...}, "text": "...", "short": "..."} for a job of stage `kind` (e.g. `eval` for eval-student)."""
    known = kind if kind in KINDS else next((k for k in KINDS if kind.startswith(k + "-")), None)
    out = (KINDS[known] if known else _generic)(job)
    out["short"] = _short(known or "", out["numbers"], out["text"])
    return out
