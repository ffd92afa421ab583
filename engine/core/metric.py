"""`product_owner_metric`: the score every teacher sample, eval case and gate is judged by.

Implements the metric described in docs/metric.md, in two versions:
- `po-v1` reproduces the replaced system's recorded scores bit for bit, defects included
  (unquoted dates fail, id substring matching, dict reprs, credit for missing alignment);
- `po-v2` (default) fixes those defects.

Score = clamp((A + B + C + D) / 120, 0, 1); the breakdown {schema, vision, alignment,
specificity} holds A-D. Nothing here raises on bad model output: unparseable or non-mapping
YAML scores as the empty mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping

from engine.core.yamltext import as_mapping, load_yaml

METRICS = ("po-v1", "po-v2")
DEFAULT_METRIC = "po-v2"
ALLOWED_STATUSES = ("aligned", "needs_adjustment", "misaligned")
REQUIREMENT_SECTIONS = ("functional_requirements", "non_functional_requirements", "constraints")

_TOKEN_RE = re.compile(r"[A-Za-zÁÉÍÓÚáéíóúÑñ0-9]+")
_STOPWORDS = frozenset(
    "the and with para con los las una unos unas user users system systems api apis rest crud".split()
)
_HYPHEN_ID_RE = re.compile(r"([A-Za-z]{1,4})-(\d{2,})")
_FENCE_OPEN_RE = re.compile(r"^\s*```[^\n]*(\n|$)")
_FENCE_CLOSE_RE = re.compile(r"\n?\s*```\s*$")


@dataclass(frozen=True)
class MetricResult:
    """A score in [0, 1] and its four parts (each at most 30 points)."""

    score: float
    schema: float
    vision: float
    alignment: float
    specificity: float
    metric: str

    @property
    def breakdown(self) -> dict[str, float]:
        return {
            "schema": self.schema,
            "vision": self.vision,
            "alignment": self.alignment,
            "specificity": self.specificity,
        }


def check_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r} (choose from {', '.join(METRICS)})")
    return name


# --- parsing -------------------------------------------------------------------------------


def _strip_v2(text: str) -> str:
    """po-v2 only: one leading fence line, one trailing fence, leading `]` characters."""
    text = _FENCE_OPEN_RE.sub("", text, count=1)
    text = _FENCE_CLOSE_RE.sub("", text, count=1)
    return text.lstrip("]")


def parse_block(value: Any, metric: str = DEFAULT_METRIC) -> dict:
    """YAML text or an already parsed value -> mapping; anything unusable -> {}."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str) or not value.strip():
        return {}
    if metric == "po-v2":
        value = _strip_v2(value)
    parsed, _problem = load_yaml(value)
    return as_mapping(parsed)


# --- small predicates (docs/metric.md wording) -----------------------------------------------------


def _list_min(value: Any, n: int) -> bool:
    return isinstance(value, list) and len(value) >= n


def _str_min(value: Any, n: int) -> bool:
    return isinstance(value, str) and len(value.strip()) >= n


def _iso_string(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _tier_points(value: Any, two: float, one: float) -> float:
    """`two` points for a list with >=2 items, `one` for exactly one, else 0."""
    if isinstance(value, list):
        if len(value) >= 2:
            return two
        if len(value) == 1:
            return one
    return 0.0


# --- A. schema --------------------------------------------------------------------------------


def _schema(v: dict, r: dict, align: dict, metric: str) -> float:
    last_updated = v.get("last_updated")
    if metric == "po-v1":
        date_ok = _iso_string(last_updated)
        ra = r.get("requirements_alignment")
        ra_ok = (not ra) or isinstance(ra, dict)
    else:
        date_ok = isinstance(last_updated, (date, datetime)) or _iso_string(last_updated)
        ra_ok = isinstance(r.get("requirements_alignment"), dict)
    checks = (
        isinstance(v.get("product_name"), str) and bool(v["product_name"].strip()),
        _str_min(v.get("product_summary"), 40),
        _list_min(v.get("target_users"), 1),
        _list_min(v.get("value_proposition"), 1),
        _list_min(v.get("key_capabilities"), 1),
        isinstance(v.get("non_goals"), list),
        _list_min(v.get("success_metrics"), 1),
        date_ok,
        isinstance(r.get("status"), str) and r["status"] in ALLOWED_STATUSES,
        _list_min(r.get("summary"), 1),
        ra_ok,
        isinstance(align.get("aligned"), list),
        isinstance(align.get("gaps"), list),
        isinstance(align.get("conflicts"), list),
        _list_min(r.get("recommended_actions"), 1),
        _str_min(r.get("narrative"), 40),
    )
    return sum(checks) * (30.0 / 16.0)


# --- B. vision completeness ------------------------------------------------------------------


def _vision(v: dict) -> float:
    points = 0.0
    for key in ("target_users", "value_proposition", "key_capabilities", "success_metrics"):
        points += _tier_points(v.get(key), 6.0, 3.0)
    summary = v.get("product_summary")
    if isinstance(summary, str):
        length = len(summary.strip())
        if length >= 120:
            points += 6.0
        elif length >= 60:
            points += 3.0
    return min(points, 30.0)


# --- C. requirements alignment ----------------------------------------------------------------


def requirements_of(q: dict) -> list[tuple[str, str]]:
    """(id, description) of every mapping item under the three requirement lists."""
    out: list[tuple[str, str]] = []
    for section in REQUIREMENT_SECTIONS:
        items = q.get(section)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            rid = str(item.get("id") or "").strip()
            desc = str(item.get("description") or "").strip()
            if rid or desc:
                out.append((rid, desc))
    return out


def _item_text(item: Any, metric: str) -> str:
    if metric == "po-v2" and isinstance(item, dict):
        return " ".join(f"{k}: {v}" for k, v in item.items())
    return str(item)


def review_segments(r: dict, align: dict, metric: str) -> list[str]:
    """The review corpus, in the order docs/metric.md gives (section C)."""
    segments: list[str] = []
    for key in ("summary", "recommended_actions"):
        value = r.get(key)
        if isinstance(value, list):
            segments.extend(_item_text(item, metric) for item in value)
        elif isinstance(value, str):
            segments.append(value)
    for key in ("aligned", "gaps", "conflicts"):
        value = align.get(key)
        if isinstance(value, list):
            segments.extend(_item_text(item, metric) for item in value)
    narrative = r.get("narrative")
    if isinstance(narrative, str):
        segments.append(narrative)
    return segments


def tokens(text: str) -> set[str]:
    return {t.lower() for t in _TOKEN_RE.findall(text)} - _STOPWORDS


def _normalise_ids(text: str) -> str:
    return _HYPHEN_ID_RE.sub(r"\1\2", text)


def _id_covered(rid: str, text: str, metric: str) -> bool:
    """po-v1: substring of the lowercased corpus. po-v2: whole token, hyphen-insensitive; `text`
    must then already be `_normalise_ids`-ed (done once per review, not once per id)."""
    if metric == "po-v1":
        return rid.lower() in text
    needle = _normalise_ids(rid).lower()
    if not needle:
        return False
    pattern = r"(?<![A-Za-z0-9])" + re.escape(needle) + r"(?![A-Za-z0-9])"
    return re.search(pattern, text) is not None


def _ladder(c: float) -> float:
    if c >= 0.85:
        return 22.0
    if c >= 0.70:
        return 16.0 + (c - 0.70) / 0.15 * 6.0
    if c >= 0.50:
        return 8.0 + (c - 0.50) / 0.20 * 8.0
    return c * 8.0


def status_consistent(r: dict, align: dict) -> bool:
    """po-v2: does the review's status agree with its alignment lists?"""
    status = r.get("status")
    gaps, conflicts = align.get("gaps"), align.get("conflicts")
    if status == "aligned":
        return isinstance(gaps, list) and isinstance(conflicts, list) and not gaps and not conflicts
    if status == "needs_adjustment":
        return _list_min(gaps, 1) or _list_min(conflicts, 1)
    if status == "misaligned":
        return _list_min(conflicts, 1)
    return False


def _alignment(r: dict, align: dict, q: dict, metric: str) -> float:
    reqs = requirements_of(q)
    if not reqs:
        return 0.0
    segments = review_segments(r, align, metric)
    text = " ".join(segments).lower()
    if metric == "po-v2":
        text = _normalise_ids(text)
    segment_tokens = [tokens(s) for s in segments]
    covered = 0
    for rid, desc in reqs:
        if rid and _id_covered(rid, text, metric):
            covered += 1
            continue
        wanted = tokens(desc)
        if wanted and any(len(wanted & seg) / len(wanted) >= 0.3 for seg in segment_tokens):
            covered += 1
    coverage = covered / len(reqs)
    aligned = align.get("aligned")
    structure = 8.0 * min(len(aligned) / len(reqs), 1.0) if isinstance(aligned, list) else 0.0
    if metric == "po-v1":
        points = _ladder(coverage) + structure
        if _list_min(align.get("gaps"), 1):
            points += 3.0
        if _list_min(align.get("conflicts"), 1):
            points += 3.0
    else:
        points = 16.0 * _ladder(coverage) / 22.0 + structure
        if status_consistent(r, align):
            points += 6.0
    return min(points, 30.0)


# --- D. review specificity --------------------------------------------------------------------


def _specificity(r: dict, align: dict, metric: str) -> float:
    points = _tier_points(r.get("summary"), 6.0, 3.0)
    points += _tier_points(r.get("recommended_actions"), 12.0, 6.0)
    for key in ("gaps", "conflicts"):
        value = align.get(key)
        if metric == "po-v1":
            if isinstance(value, list):
                points += 6.0 if value else 2.0
        elif isinstance(value, list):
            points += 4.0
    narrative = r.get("narrative")
    if isinstance(narrative, str):
        length = len(narrative.strip())
        if length >= 160:
            points += 6.0
        elif length >= 80:
            points += 3.0
    return min(points, 30.0)


# --- entry point ------------------------------------------------------------------------------


def product_owner_metric(
    vision: Any, review: Any, requirements: Any, *, metric: str = DEFAULT_METRIC
) -> MetricResult:
    """Score one VISION/REVIEW pair against the concept's requirements."""
    check_metric(metric)
    v = parse_block(vision, metric)
    r = parse_block(review, metric)
    q = parse_block(requirements, metric)
    align = as_mapping(r.get("requirements_alignment"))
    a = _schema(v, r, align, metric)
    b = _vision(v)
    c = _alignment(r, align, q, metric)
    d = _specificity(r, align, metric)
    score = min(max((a + b + c + d) / 120.0, 0.0), 1.0)
    return MetricResult(score, a, b, c, d, metric)
