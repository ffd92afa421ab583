"""The acceptance gate: does the student meet the criteria against the baseline?

Pure functions, in the order they run: load the two results files (recorded scores, or
re-scored with one metric), summarise each (`engine.stages.results`), resolve the criteria
(a preset, optionally overridden by a gates file), compare, and put a bootstrap interval on
the student/baseline mean ratio so a pass on 20 cases is read with its uncertainty.

A criterion is (metric name, comparator, threshold). Metric names are `student.<field>`,
`baseline.<field>` (any field of `RunSummary`: mean, std, min, valid_rate, format_errors ...)
and `compare.ratio` (student mean / baseline mean), `compare.delta` (student − baseline mean),
`compare.abs_delta`. The two presets of formats.md are just lists of such criteria.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from engine.configfile import load_yaml_file, validate
from engine.core.records import read_concepts
from engine.errors import InputError
from engine.stages.results import (
    SUMMARY_FIELDS,
    RunResults,
    RunSummary,
    check_same_metric,
    load_results,
    missed_by_file,
    summarize_run,
)

EPSILON = 1e-9  # |delta| <= 0.03 must pass at 0.87 - 0.84, whatever the float rounding
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
DEFAULT_PRESET = "seeds"

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t - EPSILON,
    "<=": lambda v, t: v <= t + EPSILON,
    ">": operator.gt,
    "<": operator.lt,
    "==": lambda v, t: abs(v - t) <= EPSILON,
}
COMPARE_FIELDS = ("ratio", "delta", "abs_delta")
METRIC_NAMES = tuple(f"{side}.{f}" for side in ("student", "baseline") for f in SUMMARY_FIELDS) + tuple(
    f"compare.{f}" for f in COMPARE_FIELDS
)
_LABELS = {
    "compare.ratio": "student mean / baseline mean",
    "compare.delta": "student mean − baseline mean",
    "compare.abs_delta": "|student mean − baseline mean|",
    "student.min": "student lowest score",
    "baseline.min": "baseline lowest score",
}


@dataclass(frozen=True)
class Criterion:
    metric: str  # one of METRIC_NAMES
    op: str  # one of COMPARATORS
    threshold: float

    @property
    def label(self) -> str:
        return _LABELS.get(self.metric) or self.metric.replace(".", " ").replace("_", " ")

    @property
    def condition(self) -> str:
        t = self.threshold
        shown = f"{t:.0f}" if t == int(t) else f"{t:.2f}" if round(t, 2) == t else f"{t:g}"
        return f"{self.op} {shown}"

    def holds(self, value: float | None) -> bool:
        return value is not None and COMPARATORS[self.op](value, self.threshold)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "threshold": self.threshold, "label": self.label}


PRESETS: dict[str, tuple[Criterion, ...]] = {
    # The seeds' acceptance gate (9.D.4).
    "seeds": (
        Criterion("student.valid_rate", ">=", 0.90),
        Criterion("baseline.mean", ">=", 0.75),
        Criterion("compare.ratio", ">=", 0.90),
    ),
    # The seeds' stricter "v2 close-out" set.
    "v2-closeout": (
        Criterion("student.mean", ">=", 0.82),
        Criterion("student.std", "<=", 0.10),
        Criterion("compare.abs_delta", "<=", 0.03),
        Criterion("student.format_errors", "<=", 0),
        Criterion("student.min", ">=", 0.70),
    ),
}


@dataclass(frozen=True)
class GateSpec:
    """The criteria to apply and where they came from (for the verdict's heading)."""

    name: str
    criteria: tuple[Criterion, ...]


# --- the gates file ---------------------------------------------------------------------------

_CONDITION_RE = re.compile(r"^\s*(>=|<=|==|>|<|≥|≤)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_UNICODE_OPS = {"≥": ">=", "≤": "<="}


def _parse_condition(value: Any) -> tuple[str, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        match = _CONDITION_RE.match(value)
        if match:
            op = _UNICODE_OPS.get(match.group(1), match.group(1))
            return op, float(match.group(2))
    raise PydanticCustomError(
        "condition",
        "expected 'OP NUMBER' with OP one of >=, <=, >, <, == (e.g. '>= 0.90'), got {got}",
        {"got": repr(value)},
    )


Condition = Annotated[Optional[tuple[str, float]], BeforeValidator(_parse_condition)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SideGates(_Strict):
    """Criteria on one side's summary; `null` removes the preset's criterion on that field."""

    n: Condition = None
    valid: Condition = None
    format_errors: Condition = None
    format_check_errors: Condition = None
    valid_rate: Condition = None
    mean: Condition = None
    std: Condition = None
    min: Condition = None
    max: Condition = None
    median: Condition = None
    mean_with_errors_as_zero: Condition = None


class CompareGates(_Strict):
    ratio: Condition = None
    delta: Condition = None
    abs_delta: Condition = None


class GatesFile(_Strict):
    """`--gates FILE`: start from a preset (or none) and define or override criteria."""

    preset: Optional[Literal["seeds", "v2-closeout", "none"]] = None
    student: SideGates = Field(default_factory=SideGates)
    baseline: SideGates = Field(default_factory=SideGates)
    compare: CompareGates = Field(default_factory=CompareGates)


def load_gates(preset: str | None = None, gates_file: str | Path | None = None) -> GateSpec:
    """The criteria: `preset` (default seeds) or, with a file, its `preset:` then its overrides.

    A preset named on the command line wins over the file's `preset:`; a file without one
    starts from no criteria, so it says everything it checks.
    """
    if gates_file is None:
        name = preset or DEFAULT_PRESET
        return GateSpec(name, PRESETS[name])
    doc, lines = load_yaml_file(gates_file)
    if doc is not None and not isinstance(doc, dict):
        raise InputError(f"expected a mapping at the top level, got {type(doc).__name__}", path=gates_file, line=1)
    spec = validate(GatesFile, doc, path=gates_file, lines=lines)
    base = preset or (spec.preset if spec.preset not in (None, "none") else None)
    criteria: list[Criterion] = list(PRESETS[base]) if base else []
    for section in ("student", "baseline", "compare"):
        part = getattr(spec, section)
        for name in type(part).model_fields:
            if name not in part.model_fields_set:
                continue
            metric = f"{section}.{name}"
            value = getattr(part, name)
            index = next((i for i, c in enumerate(criteria) if c.metric == metric), None)
            if value is None:
                if index is not None:
                    criteria.pop(index)
                continue
            new = Criterion(metric, value[0], value[1])
            if index is None:
                criteria.append(new)
            else:
                criteria[index] = new
    if not criteria:
        raise InputError("defines no criteria (name a preset or at least one criterion)", path=gates_file)
    label = Path(gates_file).name + (f" (from {base})" if base else "")
    return GateSpec(label, tuple(criteria))


# --- the bootstrap ----------------------------------------------------------------------------


@dataclass
class RatioInterval:
    """Percentile bootstrap interval for student mean / baseline mean (valid scores only)."""

    ratio: float | None
    low: float | None
    high: float | None
    paired: bool
    pairing_note: str
    resamples: int
    used: int  # resamples where both means existed and the baseline mean was not 0
    seed: int
    confidence: float

    def describe(self) -> str:
        if self.ratio is None or self.low is None or self.high is None:
            return f"student/baseline mean ratio: not computable ({self.pairing_note})"
        pct = round(self.confidence * 100)
        return (
            f"student/baseline mean ratio {self.ratio:.3f}, {pct} % bootstrap interval "
            f"[{self.low:.3f}, {self.high:.3f}] ({self.pairing_note}; {self.resamples:,} resamples, seed {self.seed})"
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _arrays(run: RunResults, order: list[str] | None = None) -> tuple[Any, Any]:
    import numpy as np

    cases = run.cases if order is None else [run.by_concept()[cid] for cid in order]
    scores = np.array([c.score if c.valid and c.score is not None else 0.0 for c in cases], dtype=float)
    valid = np.array([c.valid and c.score is not None for c in cases], dtype=bool)
    return scores, valid


def _resampled_means(rng: Any, scores: Any, valid: Any, index: Any | None, resamples: int) -> Any:
    import numpy as np

    n = len(scores)
    idx = index if index is not None else rng.integers(0, n, size=(resamples, n))
    sums = scores[idx].sum(axis=1)
    counts = valid[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def pairing(student: RunResults, baseline: RunResults) -> tuple[bool, str]:
    """Paired when both files hold exactly the same concept_ids, once each; else say why not."""
    s_ids = [c.concept_id for c in student.cases]
    b_ids = [c.concept_id for c in baseline.cases]
    if not s_ids or not b_ids:
        return False, "independent: a file has no cases"
    if len(set(s_ids)) != len(s_ids) or len(set(b_ids)) != len(b_ids):
        return False, "independent: a concept_id repeats within a file"
    if set(s_ids) != set(b_ids):
        shared = len(set(s_ids) & set(b_ids))
        return False, f"independent: {shared} concept_ids shared of {len(s_ids)} student / {len(b_ids)} baseline"
    return True, f"paired by concept_id over {len(s_ids)} cases"


def bootstrap_ratio(
    student: RunResults,
    baseline: RunResults,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> RatioInterval:
    import numpy as np

    paired, note = pairing(student, baseline)
    s_sum, b_sum = summarize_run(student), summarize_run(baseline)
    ratio = s_sum.mean / b_sum.mean if s_sum.mean is not None and b_sum.mean else None
    if ratio is None:
        return RatioInterval(None, None, None, paired, note + "; no valid scores or a zero baseline mean",
                             resamples, 0, seed, confidence)
    rng = np.random.default_rng(seed)
    if paired:
        order = [c.concept_id for c in student.cases]
        s_scores, s_valid = _arrays(student, order)
        b_scores, b_valid = _arrays(baseline, order)
        idx = rng.integers(0, len(order), size=(resamples, len(order)))
        s_means = _resampled_means(rng, s_scores, s_valid, idx, resamples)
        b_means = _resampled_means(rng, b_scores, b_valid, idx, resamples)
    else:
        s_scores, s_valid = _arrays(student)
        b_scores, b_valid = _arrays(baseline)
        # Resample each side's counted scores on their own (the means the gate compares).
        s_means = _resampled_means(rng, s_scores[s_valid], s_valid[s_valid], None, resamples)
        b_means = _resampled_means(rng, b_scores[b_valid], b_valid[b_valid], None, resamples)
    ok = np.isfinite(s_means) & np.isfinite(b_means) & (b_means > 0)
    ratios = s_means[ok] / b_means[ok]
    alpha = (1 - confidence) / 2
    low, high = (float(x) for x in np.quantile(ratios, [alpha, 1 - alpha])) if len(ratios) else (None, None)
    return RatioInterval(ratio, low, high, paired, note, resamples, int(ok.sum()), seed, confidence)


# --- the verdict ------------------------------------------------------------------------------


@dataclass
class CriterionResult:
    criterion: Criterion
    value: float | None
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {**self.criterion.as_dict(), "value": self.value, "passed": self.passed}


@dataclass
class Verdict:
    """Everything a gate decided and why; the report and the TUI render it, the CLI exits on it."""

    passed: bool
    gates: str
    metric: str
    rescored: bool
    results: list[CriterionResult]
    student: RunSummary
    baseline: RunSummary
    student_file: str
    baseline_file: str
    interval: RatioInterval
    notes: list[str] = field(default_factory=list)
    baseline_model: str | None = None
    student_model: str | None = None
    student_adapter: str | None = None

    @property
    def basis(self) -> str:
        return f"{self.metric} scores re-judged by po-tui" if self.rescored else f"recorded {self.metric} scores"

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "gates": self.gates,
            "metric": self.metric,
            "rescored": self.rescored,
            "criteria": [r.as_dict() for r in self.results],
            "ratio_interval": self.interval.as_dict(),
            "student": {"file": self.student_file, "model": self.student_model,
                        "adapter_path": self.student_adapter, **self.student.as_dict()},
            "baseline": {"file": self.baseline_file, "model": self.baseline_model, **self.baseline.as_dict()},
            "notes": self.notes,
        }


def metric_values(student: RunSummary, baseline: RunSummary) -> dict[str, float | None]:
    """Every name a criterion can use, with its value (None when it cannot be computed)."""
    values: dict[str, float | None] = {}
    for side, summary in (("student", student), ("baseline", baseline)):
        for name in SUMMARY_FIELDS:
            value = getattr(summary, name)
            values[f"{side}.{name}"] = float(value) if value is not None else None
    s, b = student.mean, baseline.mean
    values["compare.ratio"] = s / b if s is not None and b else None
    values["compare.delta"] = s - b if s is not None and b is not None else None
    values["compare.abs_delta"] = abs(s - b) if s is not None and b is not None else None
    return values


def _notes(student: RunResults, baseline: RunResults) -> list[str]:
    notes = []
    for run in (baseline, student):
        reasons_all = summarize_run(run).reasons
        if reasons_all:
            listing = ", ".join(f"{k} {v}" for k, v in sorted(reasons_all.items()))
            notes.append(f"{run.tag}: {sum(reasons_all.values())} case(s) without a counted score ({listing})")
        missed = missed_by_file(run)
        if missed and not run.rescored:
            reasons: dict[str, int] = {}
            for c in missed:
                reasons[c.check_reason or "?"] = reasons.get(c.check_reason or "?", 0) + 1
            listing = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
            notes.append(
                f"{run.tag}: {len(missed)} case(s) recorded as valid fail po-tui's format check ({listing}); "
                "their recorded scores count, as in the file (--rescore judges them again)"
            )
        notes += [f"{run.tag}: {w}" for w in run.warnings]
    return notes


def evaluate(
    student: RunResults,
    baseline: RunResults,
    spec: GateSpec,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Verdict:
    check_same_metric([baseline, student])
    s_sum, b_sum = summarize_run(student), summarize_run(baseline)
    values = metric_values(s_sum, b_sum)
    results = [CriterionResult(c, values[c.metric], c.holds(values[c.metric])) for c in spec.criteria]
    return Verdict(
        passed=all(r.passed for r in results),
        gates=spec.name,
        metric=student.metric,
        rescored=student.rescored,
        results=results,
        student=s_sum,
        baseline=b_sum,
        student_file=str(student.path),
        baseline_file=str(baseline.path),
        interval=bootstrap_ratio(student, baseline, resamples=resamples, seed=seed),
        notes=_notes(student, baseline),
        baseline_model=baseline.model,
        student_model=student.model,
        student_adapter=student.adapter_path,
    )


def load_pair(
    baseline_path: str | Path,
    student_path: str | Path,
    *,
    rescore: str | None = None,
    concepts_path: str | Path | None = None,
) -> tuple[RunResults, RunResults]:
    """(baseline, student) results, re-scored with `rescore` against `concepts_path` if given."""
    if concepts_path is not None and not rescore:
        raise InputError("--concepts is only used with --rescore METRIC")
    concepts = read_concepts(concepts_path) if concepts_path is not None else None
    baseline = load_results(baseline_path, rescore=rescore, concepts=concepts)
    student = load_results(student_path, rescore=rescore, concepts=concepts)
    return baseline, student


def run_gate(
    baseline_path: str | Path,
    student_path: str | Path,
    *,
    preset: str | None = None,
    gates_file: str | Path | None = None,
    rescore: str | None = None,
    concepts_path: str | Path | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Verdict:
    """The whole gate from file paths: what `po-tui gate` (and the TUI) calls."""
    spec = load_gates(preset, gates_file)
    baseline, student = load_pair(baseline_path, student_path, rescore=rescore, concepts_path=concepts_path)
    return evaluate(student, baseline, spec, resamples=resamples, seed=seed)
