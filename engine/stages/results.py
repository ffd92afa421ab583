"""Evaluation-results files as the gate, the report and the TUI see them.

One reader for every generation of the file: the replaced system's (`status` "ok" on answers
whose REVIEW does not parse, `attempts` as a string, no latency, no tokens, no metric field)
and the superset `po-tui eval` writes (`po_tui` block, per-case latency, tokens, reasons,
attempt log, reference answer). What a file lacks stays None, so callers print "-" instead
of guessing; what can be derived (output length from the raw answer, the REVIEW status from
its YAML) is derived.

Scores are the recorded ones unless a metric is given to re-score with (`rescore`): then every
case is judged again (format check, then the metric against its concept's requirements).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.blocks import check_text
from engine.core.numbers import finite_float
from engine.core.records import Concept, eval_case_sample, read_eval_results
from engine.core.scoring import FORMAT_ERROR, score_sample
from engine.core.yamltext import load_yaml
from engine.errors import InputError

# `{tag}_{YYYYmmdd_HHMMSS}.json` (docs/formats.md): the tag is everything before the timestamp.
RESULTS_NAME_RE = re.compile(r"^(?P<tag>.+?)_(?P<stamp>\d{8}_\d{6})\.json$")
# The evaluated runs a report and the cockpit set side by side, in the order they show them
# (other tags follow, sorted).
ROLES = ("teacher", "baseline", "student")
LEGACY_METRIC = "po-v1"  # files without a `metric` field were scored by the replaced system
_STATUS_LINE_RE = re.compile(r"^status:\s*[\"']?([A-Za-z_][\w-]*)", re.MULTILINE)


@dataclass
class CaseResult:
    """One evaluated concept: its verdict, score and everything recorded (or derived) about it."""

    index: int
    concept_id: str
    tier: str | None
    valid: bool  # has a score that counts (recorded status not format_error, or the format check)
    score: float | None  # None when not valid
    reason: str | None  # why not valid: the format_error reason, or the recorded status
    detail: str | None
    recorded_status: str | None
    recorded_score: float | None
    check_valid: bool  # po-tui's own format check of the answer, whatever the file says
    check_reason: str | None
    check_detail: str | None
    review_status: str | None
    vision_yaml: str | None
    review_yaml: str | None
    raw_response: str | None
    attempts: int | None
    latency_s: float | None
    output_tokens: int | None
    output_chars: int | None
    finish_reason: str | None
    breakdown: dict | None
    attempt_log: list
    reference: dict | None
    concept: str | None
    requirements_yaml: str | None

    @property
    def score_or_zero(self) -> float:
        """The score with a format error counted as 0 (the mean the old files did not report)."""
        return self.score if self.score is not None else 0.0


@dataclass
class RunResults:
    """One results file: who was evaluated, on what, how, and its cases."""

    path: Path
    tag: str
    stamp: str | None
    model: str | None
    adapter_path: str | None
    timestamp: str | None
    dataset: str | None
    metric: str  # the metric the scores below are in
    rescored: bool
    header: dict
    po_tui: dict
    cases: list[CaseResult]
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.tag

    @property
    def train_info(self) -> dict | None:
        train = self.po_tui.get("train")
        return train if isinstance(train, dict) else None

    def by_concept(self) -> dict[str, CaseResult]:
        return {c.concept_id: c for c in self.cases}


def results_tag(path: str | Path, header: dict | None = None) -> tuple[str, str | None]:
    """(tag, YYYYmmdd_HHMMSS) of a results file: the header's tag, else its file name."""
    p = Path(path)
    match = RESULTS_NAME_RE.match(p.name)
    tag = (header or {}).get("tag")
    if not isinstance(tag, str) or not tag.strip():
        tag = match.group("tag") if match else p.stem
    return tag, match.group("stamp") if match else None


def opt_str(value: Any) -> str | None:
    """A string field of a results file, None when absent or of another type."""
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    """Integers, and the digit strings the old files wrote (`"attempts": "1"`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def review_status_of(review_yaml: str | None) -> str | None:
    """The REVIEW `status`, read from the YAML, or from its `status:` line when the YAML is broken."""
    if not review_yaml:
        return None
    value, problem = load_yaml(review_yaml)
    if problem is None:
        status = value.get("status") if isinstance(value, dict) else None
        return status.strip() if isinstance(status, str) and status.strip() else None
    match = _STATUS_LINE_RE.search(review_yaml)
    return match.group(1) if match else None


def _blocks(case: dict) -> tuple[str | None, str | None, str | None]:
    vision, review, raw = (opt_str(case.get(k)) for k in ("vision_yaml", "review_yaml", "raw_response"))
    if raw is not None and (vision is None or review is None):
        ex = check_text(raw)[0]
        vision = vision if vision is not None else ex.vision_text
        review = review if review is not None else ex.review_text
    return vision, review, raw


def _case(
    raw_case: dict,
    index: int,
    path: Path,
    *,
    metric: str | None,
    rescore: str | None,
    concepts: dict[str, Concept] | None,
) -> CaseResult:
    sample = eval_case_sample(raw_case, index, path, concepts if rescore else None, metric)
    where = f"results[{index}]"
    vision, review, raw = _blocks(raw_case)
    check = sample.format_check()
    recorded_status = sample.recorded_status
    recorded_score = sample.recorded_score
    breakdown = raw_case.get("breakdown") if isinstance(raw_case.get("breakdown"), dict) else None
    if rescore:
        if sample.concept is None:
            raise InputError(
                "no requirements to re-score against: pass --concepts FILE to join by concept_id",
                path=path,
                field=f"{where}.concept_id",
            )
        scored = score_sample(sample, rescore)
        valid = scored.valid
        score = scored.score if valid else None
        reason, detail = scored.reason, scored.detail
        breakdown = scored.breakdown
    else:
        failed_status = recorded_status not in (None, "ok", "success")
        if "status" not in raw_case and "score" not in raw_case:
            raise InputError(
                "missing: no status and no score: not an evaluation of the VISION/REVIEW format "
                "(an old free-text run?)",
                path=path,
                field=f"{where}.score",
            )
        if recorded_score is None and not failed_status:
            raise InputError(
                "missing: a case not marked format_error needs a score "
                "(or judge the answers again with --rescore METRIC)",
                path=path,
                field=f"{where}.score",
            )
        valid = recorded_score is not None and recorded_status != FORMAT_ERROR
        score = recorded_score if valid else None
        reason = detail = None
        if not valid:
            reason = opt_str(raw_case.get("format_error")) or check.reason or recorded_status
            detail = (
                opt_str(raw_case.get("error_detail")) or opt_str(raw_case.get("error")) or check.detail
            )
    output_tokens = _opt_int(raw_case.get("output_tokens"))
    review_status = opt_str(raw_case.get("review_status")) or review_status_of(review)
    reference = raw_case.get("reference") if isinstance(raw_case.get("reference"), dict) else None
    return CaseResult(
        index=index,
        concept_id=sample.id,
        tier=(opt_str(raw_case.get("tier")) or "").lower() or None,
        valid=valid,
        score=score,
        reason=reason,
        detail=detail,
        recorded_status=recorded_status,
        recorded_score=recorded_score,
        check_valid=check.valid,
        check_reason=check.reason,
        check_detail=check.detail,
        review_status=review_status,
        vision_yaml=vision,
        review_yaml=review,
        raw_response=raw,
        attempts=_opt_int(raw_case.get("attempts")),
        latency_s=finite_float(raw_case.get("latency_s")),
        output_tokens=output_tokens,
        output_chars=len(raw) if raw is not None else None,
        finish_reason=opt_str(raw_case.get("finish_reason")),
        breakdown=breakdown,
        attempt_log=raw_case.get("attempt_log") if isinstance(raw_case.get("attempt_log"), list) else [],
        reference=reference,
        concept=opt_str(raw_case.get("concept")),
        requirements_yaml=opt_str(raw_case.get("requirements_yaml")),
    )


def load_results(
    path: str | Path,
    *,
    rescore: str | None = None,
    concepts: dict[str, Concept] | None = None,
) -> RunResults:
    """Read one results file (any generation); re-score every case with `rescore` when given."""
    er = read_eval_results(path)
    header = er.header
    tag, stamp = results_tag(er.path, header)
    recorded_metric = opt_str(header.get("metric")) or LEGACY_METRIC
    cases = [
        _case(case, i, er.path, metric=recorded_metric, rescore=rescore, concepts=concepts)
        for i, case in enumerate(er.cases)
    ]
    seen: Counter = Counter(c.concept_id for c in cases)
    dupes = sorted(cid for cid, n in seen.items() if n > 1)
    run = RunResults(
        path=er.path,
        tag=tag,
        stamp=stamp,
        model=opt_str(header.get("model")),
        adapter_path=opt_str(header.get("adapter_path")),
        timestamp=opt_str(header.get("timestamp")) or stamp,
        dataset=opt_str(header.get("dataset")),
        metric=rescore or recorded_metric,
        rescored=bool(rescore),
        header=header,
        po_tui=header.get("po_tui") if isinstance(header.get("po_tui"), dict) else {},
        cases=cases,
    )
    if dupes:
        run.warnings.append(f"{len(dupes)} concept_id(s) appear more than once: {', '.join(dupes[:5])}")
    return run


def parse_case(raw_case: dict, index: int, path: str | Path, *, metric: str | None = None) -> CaseResult:
    """One case dict as a results file holds it (the eval stage's cases.jsonl `case` rows too),
    for readers that follow an evaluation while it runs."""
    return _case(raw_case, index, Path(path), metric=metric or LEGACY_METRIC, rescore=None, concepts=None)


# --- summary numbers --------------------------------------------------------------------------


@dataclass
class RunSummary:
    """The numbers a gate criterion or a report row can name (None when not computable)."""

    n: int
    valid: int
    format_errors: int  # cases without a counted score
    format_check_errors: int  # cases po-tui's own format check rejects (old files missed some)
    valid_rate: float | None
    mean: float | None
    std: float | None  # population std, 0 when one score (docs/formats.md)
    min: float | None
    max: float | None
    median: float | None
    mean_with_errors_as_zero: float | None
    reasons: dict[str, int]  # format_error reason -> count
    check_reasons: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


SUMMARY_FIELDS = (
    "n", "valid", "format_errors", "format_check_errors", "valid_rate",
    "mean", "std", "min", "max", "median", "mean_with_errors_as_zero",
)


def summarize_cases(cases: list[CaseResult]) -> RunSummary:
    scores = [c.score for c in cases if c.valid and c.score is not None]
    n = len(cases)
    mean = sum(scores) / len(scores) if scores else None
    std = None
    if scores:
        std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5 if len(scores) > 1 else 0.0
    return RunSummary(
        n=n,
        valid=len(scores),
        format_errors=n - len(scores),
        format_check_errors=sum(not c.check_valid for c in cases),
        valid_rate=len(scores) / n if n else None,
        mean=mean,
        std=std,
        min=min(scores) if scores else None,
        max=max(scores) if scores else None,
        median=statistics.median(scores) if scores else None,
        mean_with_errors_as_zero=sum(c.score_or_zero for c in cases) / n if n else None,
        reasons=dict(Counter(c.reason or "format_error" for c in cases if not c.valid)),
        check_reasons=dict(Counter(c.check_reason for c in cases if not c.check_valid and c.check_reason)),
    )


def summarize_run(run: RunResults) -> RunSummary:
    return summarize_cases(run.cases)


def missed_by_file(run: RunResults) -> list[CaseResult]:
    """Cases the file counts as valid although po-tui's format check rejects them."""
    return [c for c in run.cases if c.valid and not c.check_valid]


def check_same_metric(runs: list[RunResults]) -> None:
    """Comparing po-v1 numbers with po-v2 numbers is meaningless: refuse, and say how to fix it."""
    metrics = {r.metric for r in runs}
    if len(metrics) > 1:
        listing = ", ".join(f"{r.path.name} is {r.metric}" for r in runs)
        raise InputError(
            f"the files hold scores of different metrics ({listing}): "
            "pass --rescore METRIC --concepts FILE to compare them on one metric"
        )
