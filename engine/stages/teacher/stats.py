"""`po-tui teacher --stats FILE`: what a teacher dataset holds and what it cost.

Reads the dataset and, beside it, rejects.jsonl and responses.jsonl when present (acceptance,
retry success and cost need them). Works on legacy datasets too (no metadata: fewer numbers).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from engine.core.numbers import percent
from engine.core.records import read_samples, score_summary
from engine.core.yamltext import as_mapping, load_yaml
from engine.stages.teacher.phasecount import count_phases, phase_line
from engine.stages.teacher.store import REJECTS, RESPONSES, key_of
from engine.store.jsonl import Warn, iter_jsonl


def _rows(path: Path, warn: Warn | None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [row for _, row in iter_jsonl(path, on_torn=(lambda t: warn(t.describe())) if warn else None)]


def dataset_stats(path: str | Path, *, warn: Warn | None = None) -> dict[str, Any]:
    path = Path(path)
    _, samples = read_samples(path, warn=warn)
    scores = [s.recorded_score for s in samples if s.recorded_score is not None]
    statuses: Counter = Counter()
    per_model: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"accepted": 0, "rejected": 0, "scores": [], "cost_usd": 0.0, "thinking_tokens": 0})
    retried = retried_ok = 0
    for s in samples:
        review_text = s.blocks()[1]
        review, _ = load_yaml(review_text) if review_text else (None, None)
        status = as_mapping(review).get("status")
        statuses[status if isinstance(status, str) else "invalid"] += 1
        meta = s.record.get("metadata") or {}
        model = str(meta.get("model") or "unknown")
        per_model[model]["accepted"] += 1
        if s.recorded_score is not None:
            per_model[model]["scores"].append(s.recorded_score)
        per_model[model]["cost_usd"] += float(meta.get("cost_usd") or 0.0)
        per_model[model]["thinking_tokens"] += int(meta.get("thinking_tokens") or 0)
        if int(meta.get("attempts") or 1) > 1:
            retried += 1
            retried_ok += 1
    rejects = {key_of(r): r for r in _rows(path.parent / REJECTS, warn)}
    accepted_keys = {key_of(s.record) for s in samples if s.record.get("concept_id") is not None}
    reject_reasons: Counter = Counter()
    for key, r in rejects.items():
        if key in accepted_keys:
            continue
        meta = r.get("metadata") or {}
        model = str(meta.get("model") or "unknown")
        per_model[model]["rejected"] += 1
        per_model[model]["cost_usd"] += float(meta.get("cost_usd") or 0.0)
        per_model[model]["thinking_tokens"] += int(meta.get("thinking_tokens") or 0)
        reject_reasons[str(r.get("reason"))] += 1
        if int(meta.get("attempts") or 1) > 1:
            retried += 1
    responses = _rows(path.parent / RESPONSES, warn)
    cost = sum(float(r.get("cost_usd") or 0.0) for r in responses) if responses else sum(m["cost_usd"] for m in per_model.values())
    # Thinking tokens are billed as output: every paid answer's, from responses.jsonl when present.
    thinking = (sum(int(r.get("thinking_tokens") or 0) for r in responses) if responses
                else sum(m["thinking_tokens"] for m in per_model.values()))
    n_rejected = sum(reject_reasons.values())
    out: dict[str, Any] = {
        "file": str(path),
        "accepted": len(samples),
        "rejected": n_rejected,
        "distinct_concepts": len({s.concept.key for s in samples if s.concept}),
        "acceptance_rate": len(samples) / (len(samples) + n_rejected) if samples or n_rejected else None,
        "retry_success_rate": retried_ok / retried if retried else None,
        "score": score_summary(scores),
        "statuses": dict(statuses),
        "reject_reasons": dict(reject_reasons),
        "requests": len(responses) or None,
        "cost_usd": round(cost, 6),
        "cost_per_accepted_usd": round(cost / len(samples), 6) if samples else None,
        "thinking_tokens": thinking,
        "per_model": {
            m: {"accepted": v["accepted"], "rejected": v["rejected"], "score": score_summary(v["scores"]),
                "cost_usd": round(v["cost_usd"], 6), "thinking_tokens": v["thinking_tokens"]}
            for m, v in sorted(per_model.items())
        },
    }
    # A planned run (teacher.phases): one row per phase; only tagged rows count.
    phases = count_phases((s.record for s in samples), rejects.values(), responses)
    if phases:
        out["per_phase"] = [{"phase": n, **v, "cost_usd": round(v["cost_usd"], 6),
                             "acceptance_rate": v["accepted"] / (v["accepted"] + v["rejected"]) if v["accepted"] + v["rejected"] else None}
                            for n, v in phases.items()]
    return out


def format_stats(st: dict[str, Any]) -> list[str]:
    sc = st["score"]
    lines = [
        f"{st['file']}: {st['accepted']} accepted, {st['rejected']} rejected, {st['distinct_concepts']} distinct concepts",
        f"acceptance {percent(st['acceptance_rate'])}, retry success {percent(st['retry_success_rate'])}",
    ]
    if sc["n"]:
        lines.append(f"score mean {sc['mean']:.4f} median {sc['median']:.4f} min {sc['min']:.4f} max {sc['max']:.4f} (n {sc['n']})")
    lines.append("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(st["statuses"].items())))
    if st["reject_reasons"]:
        lines.append("reject reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(st["reject_reasons"].items())))
    per = st["cost_per_accepted_usd"]
    lines.append(f"cost ${st['cost_usd']:.4f}" + (f", ${per:.5f} per accepted record" if per is not None else "")
                 + (f"; {st['thinking_tokens']} thinking tokens (billed as output)" if st.get("thinking_tokens") else ""))
    for model, m in st["per_model"].items():
        mean = f", mean {m['score']['mean']:.4f}" if m["score"]["n"] else ""
        thinking = f", {m['thinking_tokens']} thinking tokens" if m.get("thinking_tokens") else ""
        lines.append(f"  {model}: {m['accepted']} accepted, {m['rejected']} rejected{mean}, ${m['cost_usd']:.4f}{thinking}")
    for row in st.get("per_phase") or []:
        lines.append(f"  {phase_line(row)}")
    return lines
