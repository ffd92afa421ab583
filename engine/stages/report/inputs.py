"""What a report is built from: results files by tag, and the training that produced the student.

A run directory is searched (three levels down, skipping hidden folders and checkpoints) for
`{tag}_{YYYYmmdd_HHMMSS}.json`; per tag the newest evaluation-results file wins, and every file
passed over is listed with the reason. Explicit files are taken as given, one per tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.core.records import read_concepts
from engine.errors import InputError
from engine.stages.report.training import (
    TrainingSnapshot,
    find_training_dir,
    has_training_files,
    read_training_dir,
    walk_files,
)
from engine.stages.results import RESULTS_NAME_RE, ROLES, RunResults, load_results
from engine.store.inputfile import read_json

_CASE_KEYS = {"score", "status", "raw_response", "vision_yaml", "review_yaml"}


@dataclass
class ReportInputs:
    runs: dict[str, RunResults]  # teacher, baseline, student first, then other tags
    training: TrainingSnapshot | None
    run_dir: Path | None
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (file, why it was not used)
    teacher_phases: list[dict] = field(default_factory=list)  # a planned teacher run's per-phase rows

    @property
    def baseline(self) -> RunResults | None:
        return self.runs.get("baseline")

    @property
    def student(self) -> RunResults | None:
        return self.runs.get("student")


def _ordered(runs: dict[str, RunResults]) -> dict[str, RunResults]:
    first = [t for t in ROLES if t in runs]
    return {t: runs[t] for t in first + sorted(t for t in runs if t not in ROLES)}


def is_results_file(path: Path) -> bool:
    """Whether a JSON file holds evaluation cases po-tui can read (not, e.g., a free-text run)."""
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        return False
    cases = doc["results"]
    return not cases or (isinstance(cases[0], dict) and bool(_CASE_KEYS & set(cases[0])))


def discover(run_dir: Path) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """The newest results file per tag under `run_dir`, and the files passed over (with why)."""
    by_tag: dict[str, list[tuple[str, Path]]] = {}
    for path in walk_files(run_dir, 3):
        match = RESULTS_NAME_RE.match(path.name)
        if match:
            by_tag.setdefault(match.group("tag"), []).append((match.group("stamp"), path))
    chosen: dict[str, Path] = {}
    ignored: list[tuple[str, str]] = []
    for tag, found in by_tag.items():
        for _stamp, path in sorted(found, key=lambda item: (item[0], str(item[1])), reverse=True):
            if tag in chosen:
                ignored.append((str(path), f"older than {chosen[tag].name}"))
            elif is_results_file(path):
                chosen[tag] = path
            else:
                ignored.append((str(path), "not an evaluation-results file po-tui can read (no scored cases)"))
    return chosen, ignored


def _adapter_candidates(student: RunResults, run_dir: Path | None) -> list[Path]:
    adapter = (student.adapter_path or "").strip()
    if not adapter:
        return [student.path.parent]
    ap = Path(adapter)
    if ap.is_absolute():
        return [ap, student.path.parent]
    roots = [Path.cwd(), student.path.parent] + ([run_dir] if run_dir else [])
    return [root / ap for root in roots] + [root / ap.name for root in roots[1:]] + [student.path.parent]


def find_training(student: RunResults | None, run_dir: Path | None, train_dir: str | Path | None) -> TrainingSnapshot | None:
    """Training info for the student: --train, else its adapter folder, else the run directory,
    else what its results file embeds (`po_tui.train`)."""
    if train_dir is not None:
        folder = Path(train_dir)
        if not folder.is_dir():
            raise InputError("no such directory", path=folder, field="--train")
        if not has_training_files(folder):
            raise InputError("holds neither po_tui_train.json nor loss_history.json", path=folder, field="--train")
        return read_training_dir(folder, student.train_info if student else None)
    if student is None:
        folder = find_training_dir([], run_dir)
        return read_training_dir(folder) if folder else None
    folder = find_training_dir(_adapter_candidates(student, run_dir), run_dir)
    if folder is not None:
        return read_training_dir(folder, student.train_info)
    if student.train_info:
        return TrainingSnapshot(f"{student.path} (po_tui.train)", student.train_info)
    return None


def collect(
    paths: list[str | Path],
    *,
    rescore: str | None = None,
    concepts_path: str | Path | None = None,
    train_dir: str | Path | None = None,
) -> ReportInputs:
    """Resolve `RUN_DIR` or `FILES...` into loaded runs and training info."""
    if not paths:
        raise InputError("give a run directory or results files")
    if concepts_path is not None and not rescore:
        raise InputError("--concepts is only used with --rescore METRIC")
    concepts = read_concepts(concepts_path) if concepts_path is not None else None
    given = [Path(p) for p in paths]
    run_dir: Path | None = None
    ignored: list[tuple[str, str]] = []
    if len(given) == 1 and given[0].is_dir():
        run_dir = given[0]
        chosen, ignored = discover(run_dir)
        if not chosen:
            raise InputError("no evaluation-results files ({tag}_{YYYYmmdd_HHMMSS}.json) found", path=run_dir)
        files = list(chosen.values())
    else:
        for p in given:
            if p.is_dir():
                raise InputError("is a directory: give one run directory, or results files only", path=p)
        files = given
    runs: dict[str, RunResults] = {}
    for path in files:
        run = load_results(path, rescore=rescore, concepts=concepts)
        if run.tag in runs:
            raise InputError(
                f"two files with tag {run.tag!r} ({runs[run.tag].path.name}, {path.name}): "
                "a report compares one run per tag",
                path=path,
            )
        runs[run.tag] = run
    runs = _ordered(runs)
    training = find_training(runs.get("student"), run_dir, train_dir)
    phases = teacher_phases(run_dir, ignored) if run_dir is not None else []
    return ReportInputs(runs, training, run_dir, ignored, phases)


def teacher_phases(run_dir: Path, ignored: list[tuple[str, str]]) -> list[dict]:
    """The per-phase rows of the run's teacher (teacher.phases), from `teacher/teacher_run.json`'s
    last summary; none for an unplanned run. A damaged file is listed as passed over: the report
    is about the evaluation and does not fail on it."""
    from engine.stages.teacher.store import TeacherStore

    store = TeacherStore(run_dir / "teacher")
    try:
        manifest = store.read_manifest()
    except InputError as exc:
        ignored.append((str(store.manifest_path), exc.message))
        return []
    summary = (manifest or {}).get("summary") or {}
    rows = summary.get("per_phase")
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
