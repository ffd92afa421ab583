"""The plan: a validated config and a run directory become an ordered list of jobs.

Each job is a `po-tui` command line, what it reads and what it writes. Its fingerprint (sha256
of the stage's settings and of the content of its inputs) is what `--resume` compares: a job
whose fingerprint is unchanged and whose outputs exist is not run again. Command lines that
depend on earlier outputs (the gate needs the results files the evals named) are built when the
job starts.

A stage with a settings model is handed its resolved settings as a file, never re-derived as
flags: teacher and train read the run's config.yaml (`--config`, their section), each eval job
reads RUN/<job>.settings.yaml, written when the job starts. Their command lines carry only what
the run directory decides: paths, tags, --resume / --restart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any, Callable

import yaml

from engine.pipeline.config import PipelineConfig
from engine.stages.teacher.store import TeacherStore
from engine.store.atomic import atomic_write_text

# Files above this size (a local 7B base) are fingerprinted by size and mtime, not content:
# hashing 15 GB on every resume would cost minutes.
HASH_LIMIT_BYTES = 256 * 1024 * 1024
CONFIG_NAME = "config.yaml"
# RUN/<job>.settings.yaml: the settings a job's command reads through --config, written as it starts.
SETTINGS_SUFFIX = ".settings.yaml"


@dataclass
class Job:
    name: str
    stage: str
    argv: Callable[[bool, bool], list[str]]  # (continuing, redoing) -> po-tui arguments
    inputs: list[str] = field(default_factory=list)  # run-relative or absolute; '*' = newest match
    outputs: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    ok_codes: tuple[int, ...] = (0,)
    # Folders moved aside when the job is redone with other settings (a stale partial run
    # would otherwise be continued).
    reset_dirs: list[str] = field(default_factory=list)


def resolve(run_dir: Path, pattern: str) -> Path | None:
    """The file a pattern names: itself, or the newest match of a '*' pattern; None if absent."""
    path = Path(pattern)
    if not path.is_absolute():
        path = run_dir / path
    if "*" in path.name:
        found = sorted(path.parent.glob(path.name))
        return found[-1] if found else None
    return path if path.exists() else None


def _hash_path(h: "hashlib._Hash", path: Path) -> None:
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and "checkpoints" not in p.relative_to(path).parts):
            h.update(str(child.relative_to(path)).encode())
            _hash_path(h, child)
        return
    stat = path.stat()
    if not S_ISREG(stat.st_mode):  # a device or FIFO: reading it could block or never end
        h.update(f"special mode={stat.st_mode:o} rdev={stat.st_rdev}".encode())
        return
    if stat.st_size > HASH_LIMIT_BYTES:
        h.update(f"size={stat.st_size} mtime_ns={stat.st_mtime_ns}".encode())
        return
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def fingerprint(run_dir: Path, job: Job) -> str:
    """sha256 of the job's settings and the content of its inputs (a missing input counts as such)."""
    h = hashlib.sha256()
    # Paths inside the run directory count relative to it: a moved run directory still resumes.
    text = json.dumps({"stage": job.stage, "settings": job.settings}, sort_keys=True)
    h.update(text.replace(str(Path(run_dir).resolve()), "$RUN").encode())
    for pattern in job.inputs:
        h.update(f"\0input {pattern}\0".encode())
        path = resolve(run_dir, pattern)
        if path is None:
            h.update(b"<missing>")
        else:
            _hash_path(h, path)
    return h.hexdigest()


def outputs_present(run_dir: Path, job: Job) -> bool:
    return all(resolve(run_dir, pattern) is not None for pattern in job.outputs)


def write_settings(path: Path, job: str, settings: dict[str, Any]) -> Path:
    """A job's resolved settings as the YAML file its command reads (`--config`), atomically."""
    text = f"# po-tui: the settings of job {job}, written by the engine from the run's {CONFIG_NAME}\n"
    return atomic_write_text(path, text + yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))


def _flag(argv: list[str], name: str, value: Any) -> None:
    if value is not None:
        argv += [name, str(value)]


def _computing(train: dict[str, Any]) -> dict[str, Any]:
    """The training settings that decide what it computes (not where it is reported): its fingerprint."""
    from engine.stages.train.settings import REPORTING_ONLY

    return {k: v for k, v in train.items() if k not in REPORTING_ONLY}


def build_plan(config: PipelineConfig, run_dir: str | Path) -> list[Job]:
    """The jobs of one run, in the order they run."""
    r = Path(run_dir).resolve()  # jobs get absolute paths: they never depend on the engine's cwd
    cfg = str(r / CONFIG_NAME)
    jobs: list[Job] = []
    c, t, p, tr, e, g = config.concepts, config.teacher, config.prep, config.train, config.eval, config.gate

    if c.file:
        concepts = c.file
    else:
        concepts = "concepts.jsonl"
        argv = ["concepts", "--count", str(c.count), "--seed", str(c.seed), "--conflict-rate", str(c.conflict_rate),
                "-o", str(r / concepts)]
        jobs.append(Job("concepts", "concepts", lambda cont, redo, a=argv: list(a), outputs=[concepts],
                        settings=config.section("concepts")))
    concepts_path = concepts if Path(concepts).is_absolute() else str(r / concepts)

    def teacher_argv(cont: bool, redo: bool) -> list[str]:
        argv = ["teacher", "--config", cfg, "--concepts", concepts_path, "--out", str(r / "teacher")]
        # The teacher replays what it already paid for; on changed settings it refuses and says which.
        # Any earlier outcome counts (a run whose every call failed left rejects but no responses).
        if TeacherStore(r / "teacher").exists():
            argv.append("--resume")
        if cont or redo:
            argv.append("--retry-errors")  # run again: ask what the provider failed last time
        return argv

    dataset = "teacher/po_teacher_dataset.jsonl"
    jobs.append(Job("teacher", "teacher", teacher_argv, inputs=[concepts], outputs=[dataset], settings=config.section("teacher")))

    prep = ["prep", "--teacher", str(r / dataset), "--out", str(r / "data"), "--min-score", str(p.min_score), "--metric", p.metric,
            "--val-fraction", str(p.val_fraction), "--seed", str(p.seed), "--format", p.format]
    if p.dedupe:
        prep.append("--dedupe")
    _flag(prep, "--max-samples", p.max_samples)
    jobs.append(Job("prep", "prep", lambda cont, redo, a=prep: list(a), inputs=[dataset], outputs=["data/train.jsonl", "data/val.jsonl"],
                    settings=config.section("prep")))

    base = tr.base_model
    base_inputs: list[str] = []
    if config.tiny_model.build:
        base = str(r / "tiny-model")
        tiny = ["make-tiny-model", "--out", base, "--seed", str(config.tiny_model.seed), "--style", config.tiny_model.style,
                "--vocab-size", str(config.tiny_model.vocab_size), "--init-range", repr(config.tiny_model.init_range)]
        jobs.append(Job("tiny-model", "make-tiny-model", lambda cont, redo, a=tiny: list(a), outputs=["tiny-model/config.json"],
                        settings=config.section("tiny_model")))
        base_inputs = ["tiny-model"]
    elif Path(base).exists():
        base_inputs = [str(Path(base).resolve())]

    def train_argv(cont: bool, redo: bool) -> list[str]:
        argv = ["train", "--config", cfg, "--data", str(r / "data"), "--out", str(r / "student"), "--base-model", base]
        if cont and any((r / "student" / "checkpoints").glob("checkpoint-*")):
            argv.append("--resume")  # continue from the newest complete checkpoint
        return argv

    adapter = ["student/adapter_model.safetensors", "student/adapter_config.json"]
    jobs.append(Job("train", "train", train_argv, inputs=["data/train.jsonl", "data/val.jsonl", *base_inputs], outputs=list(adapter),
                    settings={"train": _computing(config.section("train")), "base_model": base}, reset_dirs=["student"]))

    if config.export.merge:
        merge = ["export", "merge", "--adapter", str(r / "student"), "--base-model", base, "--out", str(r / "student-merged"),
                 "--dtype", config.export.dtype]
        jobs.append(Job("export", "export", lambda cont, redo, a=merge: list(a), inputs=[*adapter, *base_inputs],
                        outputs=["student-merged/config.json"], settings=config.section("export")))

    # Held-out concepts: prep's val.jsonl (it carries the teacher's answers for the report's diffs).
    # Each eval job is handed its resolved settings as a file (`eval --config`); the command line
    # carries only what the run directory decides (paths, the tag, --restart).
    common = {"max_samples": e.max_samples, "retries": e.retries, "metric": e.metric, "seed": e.seed}
    paths = ["--dataset", str(r / "data" / "val.jsonl"), "--out", str(r / "eval")]

    def eval_job(tag: str, settings: dict[str, Any], models: list[str], inputs: list[str]) -> Job:
        name = f"eval-{tag}"

        def argv(cont: bool, redo: bool) -> list[str]:
            file = write_settings(r / f"{name}{SETTINGS_SUFFIX}", name, settings)
            # A rerun with other settings starts its cases file over instead of refusing.
            return ["eval", "--config", str(file), *paths, *models, "--tag", tag, *(["--restart"] if redo else [])]

        return Job(name, "eval", argv, inputs=["data/val.jsonl", *inputs], outputs=[f"eval/{tag}_*.json"],
                   settings={"eval": settings, "models": models})

    if e.teacher_reference:
        # The teacher as a reference column: its provider, model, endpoint and concurrency. The
        # teacher's quota is the same quota when eval asks the teacher: its limits apply too.
        ref = {**common, "provider": t.provider, "concurrency": t.concurrency}
        for name in ("model", "base_url", "api_key_env", "project", "location", "rpm", "tpm"):
            if getattr(t, name) is not None:
                ref[name] = getattr(t, name)
        if t.provider == "synthetic":
            ref["synthetic"] = t.synthetic.model_dump(mode="json")
        jobs.append(eval_job("teacher", ref, [], []))
    local = {**common, "batch_size": e.batch_size, "load_4bit": e.load_4bit}
    if e.max_new_tokens is not None:
        local["max_new_tokens"] = e.max_new_tokens
    jobs.append(eval_job("baseline", local, ["--base-model", base], base_inputs))
    jobs.append(eval_job("student", local, ["--base-model", base, "--adapter", str(r / "student")], [*base_inputs, *adapter]))

    # A gates file carries its own `preset:` (a --preset flag would override it).
    gate_opts = ["--gates", g.gates] if g.gates else ["--preset", g.preset]
    gate_opts += ["--resamples", str(g.resamples), "--seed", str(g.seed)]
    results = ["eval/baseline_*.json", "eval/student_*.json"]
    teacher_results = ["eval/teacher_*.json"] if e.teacher_reference else []

    def gate_argv(cont: bool, redo: bool) -> list[str]:
        # The results files are named by the evals when they finish: resolved now.
        teacher = [arg for x in teacher_results for arg in ("--teacher", str(resolve(r, x)))]
        return ["gate", *(str(resolve(r, x)) for x in results), *teacher, *gate_opts]

    gate_inputs = [*results, *teacher_results, *([g.gates] if g.gates else [])]
    # The gate's exit code 1 is a verdict (the student failed), not a failed job.
    jobs.append(Job("gate", "gate", gate_argv, inputs=gate_inputs, settings=config.section("gate"), ok_codes=(0, 1)))

    report = ["report", str(r), "-o", str(r / "report.md"), "--top", str(config.report.top), *gate_opts]
    if not config.report.plots:
        report.append("--no-plots")
    report_inputs = [*gate_inputs, "student/adapter_config.json"]
    jobs.append(Job("report", "report", lambda cont, redo, a=report: list(a), inputs=report_inputs, outputs=["report.md"],
                    settings={"report": config.section("report"), "gate": config.section("gate")}))
    return jobs
