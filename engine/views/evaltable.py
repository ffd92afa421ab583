"""A run directory's evaluation as one table, kept current cheaply while the evaluation runs.

The TUI's evaluation panel polls this every second or so, so a refresh must cost almost nothing
when nothing changed: results files are parsed again only when their (mtime, size) changed, and
each `{tag}.cases.jsonl` is followed by byte offset (the new lines only). Per tag the newer
source wins: a results file written after its cases file is the finished evaluation, a cases
file appended after it is an evaluation (or a rerun) in progress. Never imports textual.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.runlog.tail import EventTail
from engine.stages.report.training import walk_files
from engine.stages.results import RESULTS_NAME_RE, ROLES, CaseResult, RunResults, load_results, parse_case
from engine.stages.sidebyside import SideBySide, side_by_side

CASES_SUFFIX = ".cases.jsonl"
SEARCH_DEPTH = 3  # as `po-tui report RUN_DIR` searches


def score_text(value: float | None) -> str:
    """A mean or a score as every evaluation view shows it: 3 decimals, `-` when there is none.

    One rule for the Evaluation and Gate tabs: a mean counts a format error as 0 (as the tier means
    and the gate's `mean_with_errors_as_zero` do), so a side whose answers were all format errors
    has mean 0.000, and `-` means only that the side has no cases at all.
    """
    return "-" if value is None else f"{value:.3f}"


def delta_text(value: float | None) -> str:
    """A student − baseline delta, signed; `-` when there is nothing to compare (see `EvalRow.delta`)."""
    return "-" if value is None else f"{value:+.3f}"


@dataclass
class EvalRow:
    """One concept: the three roles' scores (format errors as 0), student − baseline, status.

    `delta` is None (shown `-`) when a side lacks the concept or when both sides' answers were
    format errors: 0 − 0 would read as "no change" where neither model produced an answer. Where
    one side's answer was a format error, that side counts 0 and the delta is the honest comparison.
    """

    side: SideBySide
    scores: dict[str, float | None]  # teacher (or the dataset's reference answer), baseline, student
    teacher_is_reference: bool
    delta: float | None
    status: str  # "ok", or "tag: reason" for each run whose answer was a format error
    errors: frozenset[str] = frozenset()  # tags whose answer was a format error (scored 0 above)

    @property
    def concept_id(self) -> str:
        return self.side.concept_id

    @property
    def tier(self) -> str:
        return self.side.tier or "-"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _row(side: SideBySide) -> EvalRow:
    scores = {tag: side.score(tag) for tag in ROLES}
    from_reference = side.views.get("teacher") is None and isinstance(side.reference, dict)
    if from_reference:
        ref_score = side.reference.get("score")  # type: ignore[union-attr]
        scores["teacher"] = float(ref_score) if isinstance(ref_score, (int, float)) and not isinstance(ref_score, bool) else None
    failed = [tag for tag, view in side.views.items() if view is not None and not view.valid]
    bad = [f"{tag}: {side.views[tag].reason or 'format_error'}" for tag in failed]  # type: ignore[union-attr]
    both_failed = {"baseline", "student"} <= set(failed)
    delta = None if both_failed else side.delta("baseline", "student")
    return EvalRow(side, scores, from_reference, delta, "; ".join(bad) or "ok", frozenset(failed))


def tier_means(rows: list[EvalRow]) -> list[tuple[str, int, dict[str, float | None], float | None]]:
    """(tier, n, mean score per role, mean delta) per tier, then "all"; format errors count 0.

    The mean delta is student mean − baseline mean over the cases both sides ran (format errors as
    0, a case where both failed counting 0 − 0), so it is the difference of the means beside it
    whenever both sides ran every case, whatever the rows show for a case where both failed.
    """

    def mean(values: list[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return sum(got) / len(got) if got else None

    groups: dict[str, list[EvalRow]] = {}
    for row in rows:
        groups.setdefault(row.tier, []).append(row)
    out = []
    for tier, members in sorted(groups.items()) + ([("all", rows)] if len(groups) > 1 else []):
        out.append((tier, len(members), {r: mean([m.scores[r] for m in members]) for r in ROLES},
                    mean([m.side.delta("baseline", "student") for m in members])))
    return out


class _CasesTail(EventTail):
    """EventTail over an eval cases file: its rows are plain JSON objects, not events."""

    @staticmethod
    def _decode(raw: bytes) -> dict[str, Any] | None:
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return row if isinstance(row, dict) else None


class LiveCases:
    """The finished cases of one evaluation in progress, read incrementally from its cases file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tag = path.name[: -len(CASES_SUFFIX)]
        self.tail = _CasesTail(path)
        self.header: dict[str, Any] = {}
        self.cases: dict[int, dict[str, Any]] = {}
        self.mtime = 0.0
        self._run: tuple[RunResults | None, list[str]] | None = None  # parsed once per change

    def poll(self) -> bool:
        """Read what was appended; whether anything changed."""
        try:
            self.mtime = self.path.stat().st_mtime
        except OSError:
            return False
        rows = self.tail.poll()
        changed = bool(rows) or self.tail.reset
        if changed:
            self._run = None
        if self.tail.reset:
            self.header, self.cases = {}, {}
        for row in rows:
            kind = row.get("type")
            if kind == "header" and not self.header:
                self.header = row
            elif kind == "case" and isinstance(row.get("index"), int) and isinstance(row.get("result"), dict):
                self.cases.setdefault(row["index"], row["result"])
        return changed

    @property
    def total(self) -> int | None:
        total = self.header.get("total")
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    def run(self, warnings: list[str]) -> RunResults | None:
        """The cases so far as a RunResults (a case that cannot be read is skipped, with a warning)."""
        if self._run is None:
            found: list[str] = []
            self._run = (self._parse(found), found)
        warnings.extend(self._run[1])
        return self._run[0]

    def _parse(self, warnings: list[str]) -> RunResults | None:
        if not self.cases:
            return None
        metric = self.header.get("metric") if isinstance(self.header.get("metric"), str) else None
        cases: list[CaseResult] = []
        for index in sorted(self.cases):
            try:
                cases.append(parse_case(self.cases[index], index, self.path, metric=metric))
            except InputError as exc:
                warnings.append(str(exc))
        return RunResults(path=self.path, tag=self.tag, stamp=None, model=None, adapter_path=None, timestamp=None,
                          dataset=None, metric=metric or "po-v1", rescored=False, header=self.header, po_tui={},
                          cases=cases)


@dataclass
class Source:
    """Where one tag's numbers come from, for the panel's header line."""

    tag: str
    path: Path
    live: bool
    done: int
    total: int | None


@dataclass
class EvalTable:
    """Results of a run directory, refreshed on demand; `rows` and `runs` are the current view."""

    run_dir: Path
    runs: dict[str, RunResults] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    rows: list[EvalRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _loaded: dict[Path, tuple[tuple[int, int], RunResults | str]] = field(default_factory=dict)
    _live: dict[Path, LiveCases] = field(default_factory=dict)
    _key: tuple = ()

    def refresh(self) -> bool:
        """Re-read what changed on disk; whether the table changed."""
        results: dict[str, list[tuple[str, Path]]] = {}
        live_paths: list[Path] = []
        for path in walk_files(self.run_dir, SEARCH_DEPTH):
            match = RESULTS_NAME_RE.match(path.name)
            if match:
                results.setdefault(match.group("tag"), []).append((match.group("stamp"), path))
            elif path.name.endswith(CASES_SUFFIX) and len(path.name) > len(CASES_SUFFIX):
                live_paths.append(path)
        warnings: list[str] = []
        chosen: dict[str, tuple[RunResults, float, Path]] = {}
        for tag, found in results.items():
            for _stamp, path in sorted(found, reverse=True):
                got = self._load(path)
                if isinstance(got[0], RunResults):
                    chosen[tag] = (got[0], got[1], path)
                    break
                warnings.append(f"{path.name}: {got[0]}")
        seen = {path for found in results.values() for _stamp, path in found}
        self._loaded = {path: v for path, v in self._loaded.items() if path in seen}  # files since removed
        self._live = {path: v for path, v in self._live.items() if path in live_paths}
        live_changed = False
        for path in live_paths:
            live = self._live.get(path) or self._live.setdefault(path, LiveCases(path))
            live_changed |= live.poll()
        runs: dict[str, RunResults] = {}
        sources: list[Source] = []
        versions: dict[str, tuple] = {}  # what each tag's table content was read from
        for tag, (run, _mtime, path) in chosen.items():
            runs[tag] = run
            versions[tag] = (str(path), self._loaded[path][0])
            sources.append(Source(tag, run.path, False, len(run.cases), len(run.cases)))
        for path in live_paths:
            live = self._live[path]
            if live.tag in chosen and chosen[live.tag][1] >= live.mtime:
                continue  # the results file was written after the last case: the finished evaluation
            run = live.run(warnings)
            if run is not None:
                runs[live.tag] = run
                versions[live.tag] = (str(path), live.tail.resets, live.tail.offset)
                sources = [s for s in sources if s.tag != live.tag]
                sources.append(Source(live.tag, path, True, len(run.cases), live.total))
        key = tuple(sorted(versions.items()))
        changed = live_changed or key != self._key or warnings != self.warnings
        self._key = key
        self.warnings = warnings
        if changed:
            order = [t for t in ROLES if t in runs] + sorted(t for t in runs if t not in ROLES)
            self.runs = {t: runs[t] for t in order}
            self.sources = sorted(sources, key=lambda s: order.index(s.tag))
            self.rows = [_row(side) for side in side_by_side(self.runs)]
        return changed

    def _load(self, path: Path) -> tuple[RunResults | str, float]:
        """The parsed file (or why it cannot be used), parsed again only when it changed."""
        try:
            st = os.stat(path)
        except OSError as exc:
            return f"cannot read ({exc.strerror})", 0.0
        sig = (st.st_mtime_ns, st.st_size)
        cached = self._loaded.get(path)
        if cached is None or cached[0] != sig:
            try:
                value: RunResults | str = load_results(path)
            except InputError as exc:
                value = str(exc)
            except (OSError, ValueError) as exc:
                value = f"cannot read ({exc})"
            self._loaded[path] = cached = (sig, value)
        return cached[1], st.st_mtime
