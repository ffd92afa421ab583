"""Dataset preparation: teacher records in, a clean, leak-free train/val split out.

Every input record is accounted for — kept (train or val), below min-score, duplicate, over
the sample cap, held out for an evaluation set, or invalid with its reason — and the report says
so record by record (the replaced prep script silently skipped ten hand-written examples). The
split is by concept: all variants of a concept land on one side, stratified by tier and review
status, deterministic per seed; the report proves the train/val concept overlap is zero.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from engine.core.blocks import render_response
from engine.core.metric import ALLOWED_STATUSES, product_owner_metric, requirements_of
from engine.core.prompts import render_student_prompt, template_id
from engine.core.records import Sample, read_concept_list, sample_from_record, supervised_record
from engine.core.yamltext import as_mapping, load_yaml
from engine.errors import InputError
from engine.store.atomic import atomic_write_json, atomic_write_jsonl
from engine.store.jsonl import Warn, iter_jsonl

FORMATS = ("prompt-response", "chat")
STRATA_KEYS = ("tier", "status")

KEPT_TRAIN, KEPT_VAL = "train", "val"
BELOW_MIN = "below_min_score"
DUPLICATE = "duplicate"
OVER_CAP = "over_max_samples"
EVAL_HELD_OUT = "in_eval_set"
INVALID = "invalid"

# Invalid reasons (besides the format_error reasons of engine.core.blocks).
BAD_RECORD = "bad_record"  # a missing or mistyped field
STATUS_OUTSIDE = "status_outside_allowed_set"
NO_REQUIREMENTS = "requirements_without_ids"

_STATUS_LINE_PREFIX = "status:"


@dataclass
class PrepOptions:
    min_score: float = 0.82
    max_samples: int | None = None
    val_fraction: float = 0.15
    stratify: tuple[str, ...] = STRATA_KEYS
    seed: int = 42
    dedupe: bool = False
    format: str = "prompt-response"
    map_status: dict[str, str] = field(default_factory=dict)
    strict: bool = False
    metric: str = "po-v2"
    eval_set: str | None = None
    exclude_eval_set: bool = False
    template: str | None = None


@dataclass
class Row:
    """One input record and what prep decided about it."""

    line: int
    sample: Sample | None = None
    outcome: str | None = None  # train | val | below_min_score | duplicate | ... | invalid
    reason: str | None = None
    detail: str | None = None
    status: str | None = None
    original_status: str | None = None
    vision: str | None = None
    review: str | None = None
    score: float | None = None
    breakdown: dict[str, float] | None = None

    @property
    def group(self) -> str:
        assert self.sample is not None and self.sample.concept is not None
        return self.sample.concept.key

    def invalid(self, reason: str, detail: str | None) -> None:
        self.outcome, self.reason, self.detail = INVALID, reason, detail


def parse_map_status(values: Iterable[str]) -> dict[str, str]:
    """`conflicts=misaligned` (repeatable or comma-separated) -> {"conflicts": "misaligned"}."""
    out: dict[str, str] = {}
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            old, sep, new = item.partition("=")
            if not sep or not old or not new:
                raise InputError(f"expected OLD=NEW, got {item!r}", field="--map-status")
            if new not in ALLOWED_STATUSES:
                raise InputError(f"{new!r} is not an allowed status ({', '.join(ALLOWED_STATUSES)})", field="--map-status")
            out[old] = new
    return out


def _remap_status(review: str, old: str, new: str) -> str:
    """Rewrite the top-level `status:` line only; the rest of the REVIEW text stays byte-identical."""
    lines = review.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(_STATUS_LINE_PREFIX) and line[len(_STATUS_LINE_PREFIX):].strip().strip("'\"") == old:
            lines[i] = f"status: {new}"
            return "\n".join(lines)
    return review


def _signature(row: Row) -> tuple[str, str, str]:
    """Same concept, same answer (trailing spaces aside): an exact duplicate."""

    def norm(text: str | None) -> str:
        return "\n".join(line.rstrip() for line in (text or "").strip().splitlines())

    vision, review = row.sample.blocks()  # type: ignore[union-attr]
    return row.group, norm(vision), norm(review)


def _review_status(sample: Sample) -> Any:
    return as_mapping(load_yaml(sample.blocks()[1] or "")[0]).get("status")


def _find_duplicates(rows: list[Row], dedupe: bool, legacy: Counter) -> list[int]:
    """Lines of records that repeat an earlier one, whatever else is wrong with them (the
    reference's two duplicate pairs are among its invalid `conflicts` rows); counts statuses
    outside the allowed set over every readable record on the way."""
    seen: set[tuple[str, str, str]] = set()
    lines = []
    for row in rows:
        if row.sample is None:
            continue
        status = _review_status(row.sample)
        if status is not None and status not in ALLOWED_STATUSES:
            legacy[status if isinstance(status, str) else repr(status)] += 1
        sig = _signature(row)
        if sig in seen:
            lines.append(row.line)
            if dedupe:
                row.outcome, row.reason, row.detail = DUPLICATE, DUPLICATE, "exact duplicate of an earlier record"
        seen.add(sig)
    return lines


def _read_rows(path: str | Path, warn: Warn | None) -> list[Row]:
    rows: list[Row] = []
    torn = (lambda t: warn(t.describe())) if warn else None
    for line, obj in iter_jsonl(path, on_torn=torn):
        row = Row(line)
        try:
            row.sample = sample_from_record(obj, path, line)
        except InputError as exc:
            row.invalid(BAD_RECORD, f"{exc.field}: {exc.message}" if exc.field else exc.message)
        rows.append(row)
    if not rows:
        raise InputError("no records", path=path)
    return rows


def _judge(row: Row, opts: PrepOptions) -> None:
    """Fill in status and score, or mark the row invalid with the first reason that applies."""
    sample = row.sample
    assert sample is not None and sample.concept is not None
    check = sample.format_check()
    if not check.valid:
        row.invalid(check.reason or "invalid", check.detail)
        return
    vision, review = sample.blocks()
    status = _review_status(sample)
    row.original_status = status if isinstance(status, str) else repr(status)
    if status not in ALLOWED_STATUSES:
        if status in opts.map_status:
            review = _remap_status(review or "", status, opts.map_status[status])
            status = opts.map_status[status]
        else:
            hint = f" (map it with --map-status {status}=<allowed status>)" if isinstance(status, str) else ""
            row.invalid(STATUS_OUTSIDE, f"status {status!r} is not one of {', '.join(ALLOWED_STATUSES)}{hint}")
            return
    if not any(rid for rid, _ in requirements_of(as_mapping(load_yaml(sample.concept.requirements_yaml)[0]))):
        row.invalid(NO_REQUIREMENTS, "the requirements YAML has no functional/non-functional/constraint items with ids")
        return
    row.status, row.vision, row.review = status, vision, review
    result = product_owner_metric(vision, review, sample.concept.requirements_yaml, metric=opts.metric)
    row.score, row.breakdown = result.score, result.breakdown


def _strata(rows: list[Row], keys: tuple[str, ...]) -> dict[str, str]:
    """Concept group -> stratum label (its tier and its most common status)."""
    by_group: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_group[row.group].append(row)
    out = {}
    for group, members in by_group.items():
        parts = []
        if "tier" in keys:
            parts.append(members[0].sample.concept.tier or "unknown")  # type: ignore[union-attr]
        if "status" in keys:
            statuses = Counter(r.status for r in members)
            parts.append(sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0] or ""))[0][0] or "unknown")
        out[group] = "/".join(parts) or "all"
    return out


def split_groups(strata: dict[str, str], val_fraction: float, seed: int) -> set[str]:
    """The concept groups that go to val: per stratum, with the global count exact
    (largest remainder), shuffled with `seed`. Deterministic for the same input and seed."""
    members: dict[str, list[str]] = defaultdict(list)
    for group, stratum in strata.items():
        members[stratum].append(group)
    total = round(len(strata) * val_fraction)
    if val_fraction > 0 and total == 0 and len(strata) > 1:
        total = 1
    quotas = {s: int(len(g) * val_fraction) for s, g in members.items()}
    remainders = sorted(members, key=lambda s: (-(len(members[s]) * val_fraction - quotas[s]), s))
    for stratum in remainders[: max(0, total - sum(quotas.values()))]:
        quotas[stratum] += 1
    val: set[str] = set()
    for stratum in sorted(members):
        groups = sorted(members[stratum])
        random.Random(f"{seed}:{stratum}").shuffle(groups)
        val.update(groups[: quotas[stratum]])
    return val


def _training_row(row: Row, opts: PrepOptions) -> dict[str, Any]:
    concept = row.sample.concept  # type: ignore[union-attr]
    prompt = render_student_prompt(concept.concept, concept.requirements_yaml, template=opts.template)
    ident = {
        "concept_id": concept.concept_id or f"CK-{concept.key[:12]}",
        "concept_key": concept.key,
        "tier": concept.tier,
        "status": row.status,
        "score": row.score,
        "metric": opts.metric,
        "source_line": row.line,
    }
    if opts.format == "chat":
        response = render_response(row.vision or "", row.review or "")
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], **ident}
    return supervised_record(prompt, row.vision or "", row.review or "", **ident)


def _val_row(row: Row, opts: PrepOptions) -> dict[str, Any]:
    """A teacher record (usable as an evaluation set) that also carries its training form."""
    concept = row.sample.concept  # type: ignore[union-attr]
    meta = dict((row.sample.record or {}).get("metadata") or {})  # type: ignore[union-attr]
    record = {
        "concept_id": concept.concept_id or f"CK-{concept.key[:12]}",
        "tier": concept.tier,
        "concept": concept.concept,
        "requirements_yaml": concept.requirements_yaml,
        "teacher_product_vision": row.vision,
        "teacher_product_owner_review": row.review,
        "score": row.score,
        "metric": opts.metric,
        "score_breakdown": row.breakdown,
        "metadata": meta,
    }
    training = _training_row(row, opts)
    training.pop("concept_id")
    return {**record, **training}


def _eval_overlap(path: str, train_groups: set[str], train_ids: set[str], warn) -> tuple[dict[str, Any], set[str]]:
    concepts = read_concept_list(path, warn=warn)
    keys = {c.key for c in concepts}
    ids = {c.concept_id for c in concepts if c.concept_id}
    by_key = keys & train_groups
    by_id = ids & train_ids
    return (
        {
            "file": str(path),
            "concepts": len(keys),
            "in_train_by_content": len(by_key),
            "in_train_by_id": len(by_id),
            "ids_in_train": sorted(by_id)[:50],
        },
        keys,
    )


def prepare(teacher: str | Path, out_dir: str | Path, opts: PrepOptions, *, warn: Warn | None = None) -> dict[str, Any]:
    if opts.format not in FORMATS:
        raise InputError(f"unknown format {opts.format!r}", field="--format")
    if not 0.0 <= opts.val_fraction < 1.0:
        raise InputError("must be in [0, 1)", field="--val-fraction")
    if not 0.0 <= opts.min_score <= 1.0:  # also refuses NaN, which every comparison would pass over
        raise InputError(f"must be between 0 and 1, got {opts.min_score}", field="--min-score")
    rows = _read_rows(teacher, warn)
    legacy: Counter = Counter()
    duplicates = _find_duplicates(rows, opts.dedupe, legacy)
    for row in rows:
        if row.outcome is None:
            _judge(row, opts)
    if opts.strict:
        bad = [r for r in rows if r.outcome == INVALID]
        if bad:
            first = bad[0]
            raise InputError(
                f"{len(bad)} invalid record(s) with --strict; first: {first.reason}: {first.detail}",
                path=teacher,
                line=first.line,
            )
    candidates: list[Row] = []
    for row in rows:
        if row.outcome is not None:
            continue
        if row.score is not None and row.score < opts.min_score:
            row.outcome, row.reason = BELOW_MIN, BELOW_MIN
            row.detail = f"score {row.score:.4f} < {opts.min_score:.2f} ({opts.metric})"
            continue
        candidates.append(row)
    eval_report, eval_keys = None, set()
    if opts.eval_set and opts.exclude_eval_set:
        _, eval_keys = _eval_overlap(opts.eval_set, set(), set(), warn)
        for row in candidates:
            if row.group in eval_keys:
                row.outcome, row.reason, row.detail = EVAL_HELD_OUT, EVAL_HELD_OUT, "concept is in the --eval-set file"
        candidates = [r for r in candidates if r.outcome is None]
    if opts.max_samples is not None and len(candidates) > opts.max_samples:
        order = list(range(len(candidates)))
        random.Random(opts.seed).shuffle(order)
        keep = set(order[: opts.max_samples])
        for i, row in enumerate(candidates):
            if i not in keep:
                row.outcome, row.reason = OVER_CAP, OVER_CAP
        candidates = [r for i, r in enumerate(candidates) if i in keep]
    strata = _strata(candidates, opts.stratify)
    val_groups = split_groups(strata, opts.val_fraction, opts.seed)
    for row in candidates:
        row.outcome = KEPT_VAL if row.group in val_groups else KEPT_TRAIN
    train = [r for r in rows if r.outcome == KEPT_TRAIN]
    val = [r for r in rows if r.outcome == KEPT_VAL]

    train_groups = {r.group for r in train}
    train_ids = {r.sample.concept.concept_id for r in train if r.sample.concept.concept_id}  # type: ignore[union-attr]
    overlap = train_groups & {r.group for r in val}
    overlap_ids = train_ids & {r.sample.concept.concept_id for r in val if r.sample.concept.concept_id}  # type: ignore[union-attr]
    if overlap or overlap_ids:  # cannot happen by construction; checked, not assumed
        raise AssertionError(f"concept overlap between train and val: {sorted(overlap)[:5]}")
    if opts.eval_set:
        eval_report, _ = _eval_overlap(opts.eval_set, train_groups, train_ids, warn)
        if opts.strict and (eval_report["in_train_by_content"] or eval_report["in_train_by_id"]):
            raise InputError(
                f"{eval_report['in_train_by_content']} evaluation concepts are in the training set (--strict)",
                path=opts.eval_set,
            )

    if not train:
        raise _nothing_kept(rows, teacher)
    out = Path(out_dir)
    report = _report(rows, train, val, strata, legacy, duplicates, opts, teacher, eval_report)
    atomic_write_jsonl(out / "train.jsonl", (_training_row(r, opts) for r in train))
    atomic_write_jsonl(out / "val.jsonl", (_val_row(r, opts) for r in val))
    atomic_write_json(out / "prep_report.json", report)
    return report


def _nothing_kept(rows: list[Row], teacher: str | Path) -> InputError:
    """Empty train/val files would only fail later, in train, far from the cause: refuse here,
    naming why the records went and the first one that was not a usable record."""
    reasons = Counter(r.reason for r in rows if r.reason)
    why = ", ".join(f"{reason} {n}" for reason, n in reasons.most_common())
    invalid = [r for r in rows if r.outcome == INVALID]
    if invalid and len(invalid) == len(rows):
        first = invalid[0]
        return InputError(f"no usable record ({why}); first: {first.reason}: {first.detail}", path=teacher, line=first.line)
    return InputError(f"no record left for training out of {len(rows)} ({why})", path=teacher)


def _score_stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    values = sorted(values)
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return {"n": n, "mean": sum(values) / n, "median": median, "min": values[0], "max": values[-1]}


def _report(rows, train, val, strata, legacy, duplicates, opts: PrepOptions, teacher, eval_report) -> dict[str, Any]:
    outcomes = Counter(r.outcome for r in rows)
    invalid = Counter(r.reason for r in rows if r.outcome == INVALID)
    kept = train + val
    per_tier = Counter(r.sample.concept.tier or "unknown" for r in kept)  # type: ignore[union-attr]
    per_status = Counter(r.status for r in kept)
    mapped = Counter(f"{r.original_status}->{r.status}" for r in kept if r.original_status != r.status)
    assert sum(outcomes.values()) == len(rows)
    return {
        "input": str(teacher),
        "records": len(rows),
        "accounted": sum(outcomes.values()),
        "outcomes": {k: outcomes.get(k, 0) for k in (KEPT_TRAIN, KEPT_VAL, BELOW_MIN, DUPLICATE, OVER_CAP, EVAL_HELD_OUT, INVALID)},
        "invalid_reasons": dict(invalid),
        "exact_duplicates": {"count": len(duplicates), "lines": duplicates, "removed": opts.dedupe},
        "legacy_statuses": dict(legacy),
        "status_mapping": dict(opts.map_status),
        "statuses_mapped": dict(mapped),
        "split": {
            "by": "concept",
            "seed": opts.seed,
            "val_fraction": opts.val_fraction,
            "stratify": list(opts.stratify),
            "train_records": len(train),
            "val_records": len(val),
            "train_concepts": len({r.group for r in train}),
            "val_concepts": len({r.group for r in val}),
            "concept_overlap_train_val": 0,
            "strata": dict(Counter(strata.values())),
        },
        "eval_set_overlap": eval_report,
        "kept": {
            "per_tier": dict(per_tier),
            "per_status": dict(per_status),
            "score": _score_stats([r.score for r in kept if r.score is not None]),
        },
        "options": {
            "min_score": opts.min_score,
            "metric": opts.metric,
            "max_samples": opts.max_samples,
            "dedupe": opts.dedupe,
            "format": opts.format,
            "strict": opts.strict,
            "prompt_template": template_id(opts.template),
        },
        "rows": [
            {"line": r.line, "outcome": r.outcome, "reason": r.reason, "detail": r.detail, "score": r.score}
            for r in rows
            if r.outcome not in (KEPT_TRAIN, KEPT_VAL)
        ],
    }
