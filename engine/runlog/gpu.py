"""GPU health in the run log: the `gpu` event, its fold into job state, and the latest sample of a run.

The NVML sampler (engine/runlog/gpu_sampler.py) writes one `gpu` event per sample into the log of
the job that is running, so a cockpit attached over SSH and `po-tui status` read GPU health the
way they read everything else: from the run directory alone. This module holds what readers
need and nothing that touches NVML, so folding a run never imports pynvml.
"""

from __future__ import annotations

from typing import Any

from engine.core.numbers import finite
from engine.runlog.events import register_event_type
from engine.runlog.state import JobState, RunState, register_reducer

GPU_EVENT = "gpu"
# Per device, what one sample holds (docs/events.md, `gpu`): None where the device cannot say.
DEVICE_FIELDS = ("index", "name", "util_pct", "mem_used_bytes", "mem_total_bytes", "temp_c", "power_w", "power_limit_w")
HISTORY = 60  # utilisation samples kept per device for a sparkline (5 minutes at the default 5 s)
STALE_INTERVALS = 3  # no sample for this many intervals: the numbers shown are history, not live
MIN_INTERVAL_S = 0.1
MAX_DEVICES = 64  # more is a damaged event, not a host

register_event_type(
    GPU_EVENT,
    "GPU health sample (NVML): interval_s, devices [{index, name, util_pct, mem_used_bytes, mem_total_bytes, "
    "temp_c, power_w, power_limit_w}].",
    required=("interval_s", "devices"),
)


def _device(raw: Any) -> dict[str, Any] | None:
    """One device of a payload with only finite numbers kept (a damaged field reads as unknown)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("index"), int) or isinstance(raw.get("index"), bool):
        return None
    out: dict[str, Any] = {"index": raw["index"], "name": raw["name"] if isinstance(raw.get("name"), str) else None}
    for key in DEVICE_FIELDS[2:]:
        value = raw.get(key)
        out[key] = finite(value)
    return out


def fold_gpu(job: JobState, event: dict[str, Any]) -> None:
    """The latest sample of this job (per device) and a short utilisation history per device."""
    data = event.get("data") or {}
    interval = finite(data.get("interval_s"))
    raw = data.get("devices")
    if interval is None or interval <= 0 or not isinstance(raw, list):
        raise ValueError("gpu event: interval_s and devices are required")
    devices = [d for d in (_device(r) for r in raw[:MAX_DEVICES]) if d is not None]
    previous = job.extra.get("gpu") or {}
    history: dict[str, list[float]] = previous.get("util_history", {})
    for device in devices:
        series = history.setdefault(str(device["index"]), [])
        if device["util_pct"] is not None:
            series.append(device["util_pct"])
            del series[:-HISTORY]
    job.extra["gpu"] = {"ts": float(event["ts"]), "interval_s": max(MIN_INTERVAL_S, interval), "devices": devices,
                        "util_history": history}


register_reducer(GPU_EVENT, fold_gpu)


def latest_gpu(run: RunState, now: float) -> dict[str, Any] | None:
    """The run's newest GPU sample (whichever job wrote it), with its age and whether it is stale.

    Stale: no sample for more than STALE_INTERVALS intervals (the job ended, or its sampler or
    process died); a view then shows the numbers as history, never as live values.
    """
    best: tuple[str, dict[str, Any]] | None = None
    for name, job in run.jobs.items():
        gpu = job.extra.get("gpu")
        if gpu and (best is None or gpu["ts"] > best[1]["ts"]):
            best = (name, gpu)
    if best is None:
        return None
    name, gpu = best
    age = max(0.0, now - gpu["ts"])
    return {
        "job": name,
        "ts": gpu["ts"],
        "age_s": round(age, 3),
        "interval_s": gpu["interval_s"],
        "stale": age > STALE_INTERVALS * gpu["interval_s"],
        "devices": [{**d, "util_history": list(gpu["util_history"].get(str(d["index"]), []))} for d in gpu["devices"]],
    }
