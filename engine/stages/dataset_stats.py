"""`po-tui stats FILE`: what a dataset holds, on one screen, before anyone trains on it.

`dataset_stats` reads any layout `read_samples` supports and returns a JSON-ready dict:
- counts: records, distinct concepts (by content key), exact duplicates (same concept, same
  VISION, same REVIEW after stripping trailing whitespace on each line);
- score: the recorded score where the record has one (with its metric; records without a
  `metric` are legacy po-v1), otherwise computed with `metric`; mean/median/min/max and a
  10-bin histogram over [0, 1];
- per tier, per REVIEW status (allowed / outside the allowed set / missing / unparseable), per
  model (`metadata.model`), format validity (the `format_check` reasons);
- with a tokenizer: token lengths of the training prompt (`render_student_prompt`, through the
  chat template when the tokenizer has one), of the response (`render_response` + eos) and of
  both, and with `max_seq_len` how many samples would be truncated.

`format_stats` renders the dict as plain text lines. Text from the data (statuses, tiers, model
names) is shown only when it is a plain token, otherwise through `repr()`: a dataset cannot
write control sequences to the terminal.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from engine.core.blocks import render_response
from engine.core.metric import ALLOWED_STATUSES, DEFAULT_METRIC, check_metric, product_owner_metric
from engine.core.prompts import render_student_prompt, student_messages
from engine.core.records import TIERS, Sample, read_samples, score_summary
from engine.core.yamltext import load_yaml
from engine.errors import InputError
from engine.store.jsonl import Warn

HIST_BINS = 10
BAR_WIDTH = 40
DUPLICATE_EXAMPLES = 5
OUTSIDE_SHOWN = 8
PERCENTILES = (50, 90, 99)

STATUS_MISSING = "missing"  # REVIEW parses to a mapping without a `status`
STATUS_INVALID = "invalid"  # REVIEW absent, unparseable, not a mapping, or a non-scalar status

_PLAIN_RE = re.compile(r"[A-Za-z0-9_.:/@+-]{1,60}")


# --- helpers ------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """Untrusted text for the terminal: a plain token as is, anything else as a short repr()."""
    text = str(value)
    if _PLAIN_RE.fullmatch(text):
        return text
    if len(text) > 60:
        return repr(text[:60]) + "…"
    return repr(text)


def _norm(text: str | None) -> str | None:
    if text is None:
        return None
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def _histogram(values: list[float]) -> list[dict[str, Any]]:
    counts = [0] * HIST_BINS
    for v in values:
        v = min(max(v, 0.0), 1.0)
        counts[min(int(v * HIST_BINS + 1e-9), HIST_BINS - 1)] += 1
    return [
        {"lo": round(i / HIST_BINS, 10), "hi": round((i + 1) / HIST_BINS, 10), "count": c}
        for i, c in enumerate(counts)
    ]


def _percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile (an actual sample's length)."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _length_summary(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    s = sorted(values)
    out: dict[str, Any] = {"n": len(s), "min": s[0]}
    for p in PERCENTILES:
        out[f"p{p}"] = _percentile(s, p)
    out["max"] = s[-1]
    out["mean"] = statistics.fmean(s)
    return out


def review_status(review_text: str | None) -> tuple[str, str | None]:
    """(kind, value): kind is 'allowed', 'outside', 'missing' or 'invalid'."""
    if review_text is None or not review_text.strip():
        return STATUS_INVALID, None
    value, problem = load_yaml(review_text)
    if problem is not None or not isinstance(value, dict):
        return STATUS_INVALID, None
    status = value.get("status")
    if status is None:
        return STATUS_MISSING, None
    if isinstance(status, (dict, list)):
        return STATUS_INVALID, None
    text = status if isinstance(status, str) else str(status)
    if text in ALLOWED_STATUSES:
        return "allowed", text
    return "outside", text


def _response_text(sample: Sample) -> str:
    vision, review = sample.blocks()
    if vision is not None and review is not None:
        return render_response(vision, review)
    if sample.raw is not None:
        return sample.raw.strip()
    return render_response(vision or "", review or "")


# --- tokenizer ----------------------------------------------------------------------------------


def load_tokenizer(path: str | Path) -> Any:
    """A local tokenizer directory, never the network (local_files_only, no remote code)."""
    p = Path(path)
    if not p.exists():
        raise InputError("tokenizer directory not found", path=p, field="--tokenizer")
    if not p.is_dir():
        raise InputError("expected a tokenizer directory (with tokenizer.json or its config)", path=p, field="--tokenizer")
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise InputError("transformers is not installed: cannot load a tokenizer", path=p, field="--tokenizer") from exc
    try:
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not a loadable tokenizer"
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(
            f"cannot load a tokenizer from this directory ({type(exc).__name__}: {first})",
            path=p,
            field="--tokenizer",
        ) from exc


def _ids(encoded: Any) -> list[int]:
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    if encoded and isinstance(encoded[0], list):
        encoded = encoded[0]
    return list(encoded)


def token_lengths(
    samples: list[Sample], tokenizer: Any, max_seq_len: int | None
) -> dict[str, Any]:
    """Prompt / response / total token lengths as training would see them.

    The prompt is `render_student_prompt` (tokenized with the tokenizer's special tokens), or the
    chat template applied to `student_messages` with the generation prompt when the tokenizer
    has one; the response is `render_response` + eos, without special tokens. Total = the sum
    (prompt and response are tokenized separately, as prompt-masked training does).
    """
    chat = bool(getattr(tokenizer, "chat_template", None))
    eos = getattr(tokenizer, "eos_token", None) or ""
    cache: dict[str, int] = {}
    prompts: list[int] = []
    responses: list[int] = []
    totals: list[int] = []
    truncated = cut = lost = 0
    for s in samples:
        if s.concept is None:
            continue
        key = s.concept.key
        if key not in cache:
            if chat:
                text = tokenizer.apply_chat_template(
                    student_messages(s.concept.concept, s.concept.requirements_yaml),
                    add_generation_prompt=True,
                    tokenize=False,
                )
                cache[key] = len(_ids(tokenizer(text, add_special_tokens=False)))
            else:
                prompt = render_student_prompt(s.concept.concept, s.concept.requirements_yaml)
                cache[key] = len(_ids(tokenizer(prompt)))
        p = cache[key]
        r = len(_ids(tokenizer(_response_text(s) + eos, add_special_tokens=False)))
        prompts.append(p)
        responses.append(r)
        totals.append(p + r)
        if max_seq_len is not None and p + r > max_seq_len:
            truncated += 1
            if p >= max_seq_len:
                lost += 1
            else:
                cut += 1
    out: dict[str, Any] = {
        "prompt_source": "chat_template" if chat else "render_student_prompt",
        "eos_token": bool(eos),
        "prompt": _length_summary(prompts),
        "response": _length_summary(responses),
        "total": _length_summary(totals),
        "max_seq_len": max_seq_len,
    }
    if max_seq_len is not None:
        out["truncation"] = {
            "truncated": truncated,  # prompt + response > max_seq_len
            "response_cut": cut,  # part of the response survives
            "response_lost": lost,  # the prompt alone fills max_seq_len
        }
    return out


# --- the statistics -----------------------------------------------------------------------------


def dataset_stats(
    path: str | Path,
    *,
    metric: str = DEFAULT_METRIC,
    tokenizer: Any = None,
    max_seq_len: int | None = None,
    warn: Warn | None = None,
) -> dict[str, Any]:
    """Everything `po-tui stats` reports about one dataset file, JSON-ready.

    `tokenizer` is a local directory (loaded with local_files_only) or an already loaded
    tokenizer; `max_seq_len` needs it.
    """
    try:
        check_metric(metric)
    except ValueError as exc:
        raise InputError(str(exc), field="--metric") from exc
    if max_seq_len is not None:
        if max_seq_len <= 0:
            raise InputError(f"must be a positive integer, got {max_seq_len}", field="--max-seq-len")
        if tokenizer is None:
            raise InputError("needs --tokenizer (token lengths are measured with it)", field="--max-seq-len")
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer

    kind, samples = read_samples(path, warn=warn)

    # counts and exact duplicates
    seen: dict[tuple, Sample] = {}
    duplicates: list[Sample] = []
    for s in samples:
        vision, review = s.blocks()
        raw = _norm(s.raw) if (vision is None or review is None) else None
        key = (s.concept.key if s.concept else s.id, _norm(vision), _norm(review), raw)
        if key in seen:
            duplicates.append(s)
        else:
            seen[key] = s
    with_concept = [s for s in samples if s.concept is not None]

    # scores
    scores: list[float | None] = []
    sources: Counter = Counter()
    for s in samples:
        if s.recorded_score is not None:
            scores.append(s.recorded_score)
            sources[f"recorded {s.recorded_metric or 'po-v1'}"] += 1
        elif s.concept is not None:
            vision, review = s.blocks()
            scores.append(product_owner_metric(vision, review, s.concept.requirements_yaml, metric=metric).score)
            sources[f"computed {metric}"] += 1
        else:
            scores.append(None)
            sources["unscored"] += 1
    valid_scores = [x for x in scores if x is not None]

    # per tier, status, model, format
    tiers: dict[str, list] = defaultdict(list)
    models: dict[str, list] = defaultdict(list)
    allowed: Counter = Counter({name: 0 for name in ALLOWED_STATUSES})
    outside: Counter = Counter()
    missing = invalid = 0
    reasons: Counter = Counter()
    notes: Counter = Counter()
    valid = 0
    for s, score in zip(samples, scores, strict=True):
        tier = (s.concept.tier if s.concept else None) or "unknown"
        tiers[tier].append(score)
        meta = s.record.get("metadata") if isinstance(s.record, dict) else None
        model = meta.get("model") if isinstance(meta, dict) else None
        models[str(model) if model not in (None, "") else "unknown"].append(score)
        kind_, value = review_status(s.blocks()[1])
        if kind_ == "allowed":
            allowed[value] += 1
        elif kind_ == "outside":
            outside[value] += 1
        elif kind_ == STATUS_MISSING:
            missing += 1
        else:
            invalid += 1
        check = s.format_check()
        if check.valid:
            valid += 1
        else:
            reasons[check.reason or "unknown"] += 1
        notes.update(check.notes)

    def group(values: list) -> dict[str, Any]:
        known = [v for v in values if v is not None]
        return {"count": len(values), "mean_score": statistics.fmean(known) if known else None}

    tier_order = [t for t in TIERS if t in tiers] + sorted(t for t in tiers if t not in TIERS)

    out: dict[str, Any] = {
        "file": str(path),
        "kind": kind,
        "records": len(samples),
        "without_concept": len(samples) - len(with_concept),
        "distinct_concepts": len({s.concept.key for s in with_concept}),
        "duplicates": {
            "count": len(duplicates),
            "first": [s.line if s.line is not None else s.where for s in duplicates[:DUPLICATE_EXAMPLES]],
        },
        "score": {
            **score_summary(valid_scores),
            "metric": metric,
            "sources": dict(sorted(sources.items())),
            "histogram": _histogram(valid_scores),
        },
        "tiers": {t: group(tiers[t]) for t in tier_order},
        "statuses": {
            "allowed": dict(allowed),
            "outside": dict(outside.most_common()),
            "missing": missing,
            "invalid": invalid,
        },
        "models": {m: group(v) for m, v in sorted(models.items(), key=lambda kv: (-len(kv[1]), kv[0]))},
        "format": {"valid": valid, "invalid": len(samples) - valid, "reasons": dict(reasons.most_common()),
                   "notes": dict(notes.most_common())},
    }
    if tok is not None:
        out["tokens"] = token_lengths(samples, tok, max_seq_len)
    return out


# --- text ---------------------------------------------------------------------------------------


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def format_stats(d: dict[str, Any]) -> list[str]:
    """The one-screen text report. Data text goes through `_show` (plain token or repr)."""
    n = d["records"]
    name = d["file"] if d["file"].isprintable() else repr(d["file"])
    lines = [f"{name}: {n} records ({_show(d['kind'])})"]
    dup = d["duplicates"]
    counts = f"  {d['distinct_concepts']} distinct concepts, {dup['count']} exact duplicates"
    if dup["count"]:
        where = ", ".join(str(x) for x in dup["first"])
        more = ", …" if dup["count"] > len(dup["first"]) else ""
        counts += f" (lines {where}{more})" if all(isinstance(x, int) for x in dup["first"]) else f" ({where}{more})"
    if d.get("without_concept"):
        counts += f", {d['without_concept']} without a concept"
    lines.append(counts)

    sc = d["score"]
    sources = ", ".join(f"{k} {v}" for k, v in sc["sources"].items()) or "none"
    lines.append("")
    lines.append(f"score ({sources})")
    if sc["n"]:
        lines.append(
            f"  mean {_f(sc['mean'])}  median {_f(sc['median'])}  min {_f(sc['min'])}  max {_f(sc['max'])}  (n {sc['n']})"
        )
        top = max(b["count"] for b in sc["histogram"]) or 1
        for i, b in enumerate(sc["histogram"]):
            close = "]" if i == len(sc["histogram"]) - 1 else ")"
            bar = "█" * (round(BAR_WIDTH * b["count"] / top) if b["count"] else 0)
            if b["count"] and not bar:
                bar = "▏"
            lines.append(f"  [{b['lo']:.1f}, {b['hi']:.1f}{close} {bar:<{BAR_WIDTH}} {b['count']}")
    else:
        lines.append("  no scores")

    lines.append("")
    lines.append("tiers")
    for tier, g in d["tiers"].items():
        name = tier if tier in TIERS or tier == "unknown" else _show(tier)
        lines.append(f"  {name:<12} {g['count']:>6}  mean {_f(g['mean_score'])}")

    st = d["statuses"]
    lines.append("")
    lines.append("review status")
    for name, count in st["allowed"].items():
        lines.append(f"  {name:<18} {count:>6}")
    items = list(st["outside"].items())
    for value, count in items[:OUTSIDE_SHOWN]:
        lines.append(f"  {_show(value):<18} {count:>6}  (outside the allowed set)")
    if len(items) > OUTSIDE_SHOWN:
        rest = sum(c for _, c in items[OUTSIDE_SHOWN:])
        lines.append(f"  {len(items) - OUTSIDE_SHOWN} more values {rest:>6}  (outside the allowed set)")
    if st["missing"]:
        lines.append(f"  {'missing':<18} {st['missing']:>6}  (REVIEW has no status)")
    if st["invalid"]:
        lines.append(f"  {'invalid':<18} {st['invalid']:>6}  (REVIEW absent or not a YAML mapping)")

    lines.append("")
    lines.append("models")
    for model, g in d["models"].items():
        lines.append(f"  {_show(model):<28} {g['count']:>6}  mean {_f(g['mean_score'])}")

    fm = d["format"]
    lines.append("")
    fmt = f"format: {fm['valid']} valid ({_pct(fm['valid'], n)}), {fm['invalid']} format_error"
    if fm["reasons"]:
        fmt += " (" + ", ".join(f"{_show(k)} {v}" for k, v in fm["reasons"].items()) + ")"
    lines.append(fmt)
    if fm.get("notes"):
        lines.append("  notes: " + ", ".join(f"{_show(k)} {v}" for k, v in fm["notes"].items()))

    tk = d.get("tokens")
    if tk:
        lines.append("")
        how = (
            "chat template applied to the student prompt"
            if tk["prompt_source"] == "chat_template"
            else "render_student_prompt, no chat template"
        )
        eos = "+ eos" if tk["eos_token"] else "no eos token"
        lines.append(f"tokens (prompt: {how}; response: VISION + REVIEW blocks {eos})")
        lines.append(f"  {'':<9} {'min':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
        for part in ("prompt", "response", "total"):
            s = tk[part]
            if not s.get("n"):
                lines.append(f"  {part:<9} -")
                continue
            cells = " ".join(f"{s[k]:>7}" for k in ("min", "p50", "p90", "p99", "max"))
            lines.append(f"  {part:<9} {cells}")
        tr = tk.get("truncation")
        if tr is not None:
            total = tk["total"].get("n", 0)
            lines.append(
                f"  max-seq-len {tk['max_seq_len']}: {tr['truncated']} truncated ({_pct(tr['truncated'], total)}; "
                f"prompt+response > {tk['max_seq_len']}): response cut short {tr['response_cut']}, "
                f"response lost entirely {tr['response_lost']}"
            )
    return lines
