"""Per-phase numbers of a planned teacher run (teacher.phases), counted from its stored rows.

One count for two readers: `--resume` (how many records each phase already has, so it continues
in the right phase) and `po-tui teacher --stats` (the per-phase rows). Every response, accepted
record and reject row of a planned run carries its 1-based `phase`; the records in `metadata`.
"""

from __future__ import annotations

from typing import Any, Iterable

from engine.stages.teacher.store import Key, key_of

FIELDS = ("accepted", "rejected", "requests", "cost_usd", "input_tokens", "output_tokens", "thinking_tokens")


def phase_of(row: dict[str, Any], untagged: int | None = None) -> int | None:
    """The phase a response, record or reject row belongs to; `untagged` for rows written without one."""
    value = row.get("phase")
    if value is None:
        meta = row.get("metadata")
        value = meta.get("phase") if isinstance(meta, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return untagged
    return value


def count_phases(
    accepted: Iterable[dict[str, Any]],
    rejects: Iterable[dict[str, Any]],
    responses: Iterable[dict[str, Any]],
    *,
    untagged: int | None = None,
) -> dict[int, dict[str, Any]]:
    """{phase: {model, accepted, rejected, requests, cost_usd, *_tokens}}, phases in order.

    A sample is counted once: an accepted key's earlier rejects are not rejects, and a key
    rejected twice (asked again with --retry-errors) counts its last reject only.
    `untagged`: the phase of rows without one (resume: 1, so a run planned on top of an older
    one counts the older records toward phase 1); None leaves them out."""
    out: dict[int, dict[str, Any]] = {}

    def slot(phase: int) -> dict[str, Any]:
        return out.setdefault(phase, {"model": None, **{f: 0 for f in FIELDS}, "cost_usd": 0.0})

    accepted_keys: set[Key] = set()
    for row in accepted:
        accepted_keys.add(key_of(row))
        phase = phase_of(row, untagged)
        if phase is not None:
            entry = slot(phase)
            entry["accepted"] += 1
            entry["model"] = entry["model"] or (row.get("metadata") or {}).get("model")
    last_reject: dict[Key, dict[str, Any]] = {}
    for row in rejects:
        last_reject[key_of(row)] = row
    for key, row in last_reject.items():
        phase = phase_of(row, untagged)
        if key not in accepted_keys and phase is not None:
            entry = slot(phase)
            entry["rejected"] += 1
            entry["model"] = entry["model"] or (row.get("metadata") or {}).get("model")
    for row in responses:
        phase = phase_of(row, untagged)
        if phase is None:
            continue
        entry = slot(phase)
        entry["requests"] += 1
        entry["cost_usd"] += float(row.get("cost_usd") or 0.0)
        for name in ("input_tokens", "output_tokens", "thinking_tokens"):
            entry[name] += int(row.get(name) or 0)
        entry["model"] = entry["model"] or row.get("model")
    return dict(sorted(out.items()))


def phase_line(row: dict[str, Any]) -> str:
    """One phase's numbers in one line (the run summary, `--stats`, the report's text)."""
    target = f"/{row['target']}" if row.get("target") else ""
    done = row["accepted"] + row["rejected"]
    rate = f"{row['accepted'] / done:.0%}" if done else "-"
    budget = row.get("thinking_budget")
    line = (f"phase {row['phase']} {row.get('model') or '?'}"
            + (f" (thinking budget {budget})" if budget is not None else "")
            + f": {row['accepted']}{target} accepted, {row['rejected']} rejected, acceptance {rate}, "
            f"{row['requests']} requests, ${row['cost_usd']:.4f}, {row['input_tokens']} input / {row['output_tokens']} output tokens")
    if row.get("thinking_tokens"):
        line += f" ({row['thinking_tokens']} thinking)"
    return line
