"""GPU health as text: one compact line per device, for `po-tui status` and the cockpit alike.

`GPU0 ▃▅▇█ 87%  31.2/80.0 GiB  64C  250/350W  NVIDIA H100 80GB HBM3` fits 80 columns (the name is
cut first). A sample older than its staleness limit (engine.runlog.gpu.latest_gpu) is shown as
stale with its age, never as live numbers: an SSH user must not read a dead job's last
utilisation as the GPU's current state.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from engine.core.inert import one_line
from engine.core.numbers import finite
from engine.core.timefmt import duration

GIB = float(1 << 30)
SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 8
NAME_CHARS = 32


def util_spark(history: list[Any], width: int = SPARK_WIDTH) -> str:
    """The last `width` utilisation samples (0-100 %) as block characters, on a fixed 0-100 scale."""
    values = [v for v in (finite(h) for h in history[-width:]) if v is not None]
    return "".join(SPARK[min(len(SPARK) - 1, max(0, int(v / 100 * len(SPARK))))] for v in values)


def _memory(device: dict[str, Any]) -> str:
    used, total = finite(device.get("mem_used_bytes")), finite(device.get("mem_total_bytes"))
    if used is None and total is None:
        return "mem -"
    return f"{'-' if used is None else f'{used / GIB:.1f}'}/{'-' if total is None else f'{total / GIB:.1f}'} GiB"


def _power(device: dict[str, Any]) -> str | None:
    power, limit = finite(device.get("power_w")), finite(device.get("power_limit_w"))
    if power is None:
        return None
    return f"{power:.0f}/{limit:.0f}W" if limit is not None else f"{power:.0f}W"


def device_numbers(device: dict[str, Any]) -> str:
    """`87%  31.2/80.0 GiB  64C  250/350W`: what is unknown on this board is left out or `-`."""
    util = finite(device.get("util_pct"))
    temp = finite(device.get("temp_c"))
    parts = [f"{util:.0f}%" if util is not None else "-%", _memory(device)]
    if temp is not None:
        parts.append(f"{temp:.0f}C")
    power = _power(device)
    if power is not None:
        parts.append(power)
    return "  ".join(parts)


def device_line(device: dict[str, Any], *, stale: bool, age_s: float | None, spark: bool = True) -> Text:
    """One device: live numbers, or `stale` and how old the last sample is."""
    index = device.get("index")
    line = Text(f"GPU{index}", style="bold")
    if stale:
        line.append(f" stale: no sample for {duration(age_s)}", style="dim")
    else:
        history = util_spark(device.get("util_history") or []) if spark else ""
        if history:
            line.append(" ").append(history, style="cyan")
        line.append(" " + device_numbers(device))
    if isinstance(device.get("name"), str) and device["name"]:
        line.append("  " + one_line(device["name"], NAME_CHARS), style="dim")
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


def gpu_lines(gpu: dict[str, Any] | None) -> list[Text]:
    """The lines of a status document's `gpu` part (engine.runlog.gpu.latest_gpu); [] without GPUs."""
    if not gpu or not gpu.get("devices"):
        return []
    return [device_line(d, stale=bool(gpu.get("stale")), age_s=gpu.get("age_s")) for d in gpu["devices"]]
