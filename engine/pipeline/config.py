"""The pipeline config: one YAML file, validated as a whole before any job starts.

Each stage keeps its own settings model (TeacherSettings, TrainSettings); this module adds the
sections that only the pipeline has and the paths the engine owns, so a typo anywhere is one
located line (`config.yaml:12: teacher.min_scor: unknown key (did you mean 'min_score'?)`)
before a single paid request or training step. Secrets never live here: providers read keys
from environment variables (`teacher.api_key_env` names one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.configfile import Seed, load_yaml_file, validate
from engine.core.metric import METRICS
from engine.errors import InputError
from engine.stages.concepts import MAX_COUNT
from engine.stages.gate import PRESETS, load_gates
from engine.stages.prep import FORMATS
from engine.stages.teacher.settings import SYNTHETIC_STYLES, TeacherSettings
from engine.stages.train.settings import TrainSettings
from engine.store.inputfile import open_input

Metric = Literal["po-v1", "po-v2"]
assert set(METRICS) == {"po-v1", "po-v2"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ConceptsSection(_Section):
    file: str | None = None  # a concepts JSONL (any layout carrying concepts); else generated
    count: int = Field(120, ge=1, le=MAX_COUNT)
    seed: Seed = 7
    conflict_rate: float = Field(0.2, ge=0, le=1)


class PrepSection(_Section):
    min_score: float = Field(0.80, ge=0, le=1)
    metric: Metric = "po-v2"
    val_fraction: float = Field(0.15, gt=0, lt=1)
    max_samples: int | None = Field(None, ge=1)
    seed: Seed = 42
    dedupe: bool = True
    format: str = "prompt-response"

    @model_validator(mode="after")
    def _known_format(self) -> "PrepSection":
        if self.format not in FORMATS:
            raise ValueError(f"format: expected one of {', '.join(FORMATS)}")
        return self


class TinyModelSection(_Section):
    build: bool = False  # build a tiny random model locally and use it as the base (demo, tests)
    seed: Seed = 0
    # the synthetic answers its tokenizer is trained on: those the student will be taught
    style: Literal[SYNTHETIC_STYLES] = "full"
    vocab_size: int = Field(2048, ge=512, le=65536)
    init_range: float = Field(0.3, gt=0, le=1)


class EvalSection(_Section):
    max_samples: int = Field(0, ge=0)  # 0: every held-out concept
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    retries: int = Field(2, ge=0, le=20)
    metric: Metric = "po-v2"
    load_4bit: bool = False
    seed: Seed = 42
    teacher_reference: bool = False  # also evaluate the teacher provider as a reference column


class GateSection(_Section):
    preset: str = "seeds"
    gates: str | None = None  # a gates YAML file (docs/gate.md); overrides the preset's criteria
    resamples: int = Field(10_000, ge=1)
    seed: Seed = 0

    @model_validator(mode="after")
    def _known_preset(self) -> "GateSection":
        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {', '.join(sorted(PRESETS))}")
        return self


class ReportSection(_Section):
    top: int = Field(5, ge=1)
    plots: bool = True


class ExportSection(_Section):
    merge: bool = False  # a merged full model beside the adapter (needs the base's size on disk)
    dtype: Literal["float16", "bfloat16", "float32"] = "bfloat16"  # as `export merge`: what Qwen2 was trained in


class MonitorSection(_Section):
    # NVML samples of every GPU into the running job's event log, this often (0: off). docs/gpu.md
    gpu_sample_s: float = Field(5.0, ge=0, le=3600)


ENGINE_OWNED_TRAIN = ("data", "out", "resume", "run_dir", "job")


class PipelineConfig(_Section):
    # Not a stage's setting: where this project's runs live (engine/pipeline/runsdir.py).
    runs_dir: str | None = Field(None, description="where `po-tui run` puts new run directories and `po-tui` looks for runs, "
                                                   "relative to this file; --runs-dir and $PO_TUI_RUNS_DIR come first (null: ./runs)")
    concepts: ConceptsSection = Field(default_factory=ConceptsSection)
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    prep: PrepSection = Field(default_factory=PrepSection)
    tiny_model: TinyModelSection = Field(default_factory=TinyModelSection)
    train: TrainSettings = Field(default_factory=TrainSettings)
    eval: EvalSection = Field(default_factory=EvalSection)
    gate: GateSection = Field(default_factory=GateSection)
    report: ReportSection = Field(default_factory=ReportSection)
    export: ExportSection = Field(default_factory=ExportSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)

    def section(self, name: str) -> dict[str, Any]:
        """One section as plain JSON data (what a job's fingerprint hashes)."""
        return getattr(self, name).model_dump(mode="json")


def _check_engine_owned(doc: Any, path: str | Path | None, lines: dict) -> None:
    train = doc.get("train") if isinstance(doc, dict) else None
    if not isinstance(train, dict):
        return
    for key in ENGINE_OWNED_TRAIN:
        if train.get(key) not in (None, "", False):
            line = lines.get(("train", key)) if lines else None
            raise InputError("set by the engine (the run directory decides it), remove it", path=path, line=line, field=f"train.{key}")


def _check_input_file(file: str, path: str | Path | None, line: int | None, field: str) -> None:
    """A missing file, a directory, a device or a FIFO named in the config is found now, in one
    line at the config's key, not hours later by the job that reads it (or by the fingerprint
    of the job's inputs, which would read /dev/zero forever)."""
    try:
        open_input(file).close()
    except InputError as exc:
        raise InputError(f"{file}: {exc.message}", path=path, line=line, field=field) from None


def parse_config(doc: Any, *, path: str | Path | None = None, lines: dict | None = None) -> PipelineConfig:
    if doc is not None and not isinstance(doc, dict):
        raise InputError("expected a mapping of sections (concepts, teacher, prep, train, eval, gate, report, export, monitor)",
                         path=path, line=1)
    _check_engine_owned(doc, path, lines or {})
    config = validate(PipelineConfig, doc or {}, path=path, lines=lines)
    if config.concepts.file and path is not None:
        # Relative paths in a config are relative to the config file, not to the shell's cwd.
        file = Path(config.concepts.file)
        if not file.is_absolute():
            config.concepts.file = str((Path(path).parent / file).resolve())
    if config.concepts.file:
        _check_input_file(config.concepts.file, path, (lines or {}).get(("concepts", "file")), "concepts.file")
    if config.runs_dir is not None and not config.runs_dir.strip():
        raise InputError("empty: give a directory, or null for the default", path=path,
                         line=(lines or {}).get(("runs_dir",)), field="runs_dir")
    if config.runs_dir and path is not None and not Path(config.runs_dir).is_absolute():
        config.runs_dir = str((Path(path).parent / config.runs_dir).resolve())
    gates = config.gate.gates
    if gates and path is not None and not Path(gates).is_absolute():
        config.gate.gates = str((Path(path).parent / gates).resolve())
    try:
        if not config.teacher.phases:  # a planned run names a model per phase
            config.teacher.resolved_model()
    except ValueError as exc:
        raise InputError(str(exc), path=path, field="teacher.model") from None
    if not config.gate.gates and not config.eval.teacher_reference and load_gates(config.gate.preset).needs_teacher:
        # Found now, not after hours of training when the gate job would refuse.
        raise InputError(
            f"preset {config.gate.preset} compares the student with the teacher: set eval.teacher_reference: true",
            path=path, line=(lines or {}).get(("gate", "preset")), field="gate.preset",
        )
    return config


def load_config(path: str | Path) -> PipelineConfig:
    """Validate FILE; every error is one line with the file, line, dotted key and a suggestion."""
    doc, lines = load_yaml_file(path)
    return parse_config(doc, path=path, lines=lines)


def dump_config(config: PipelineConfig) -> str:
    """The resolved config as YAML (every setting explicit), for RUN/config.yaml."""
    data = config.model_dump(mode="json")
    for key in ENGINE_OWNED_TRAIN:
        data["train"].pop(key, None)
    return "# po-tui resolved pipeline config (every setting explicit)\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def run_gate_options(run_dir: Path) -> dict[str, Any]:
    """The gates a run's config.yaml asks for, as `run_gate` keywords (preset or gates_file,
    resamples, seed); {} for a directory without one. The cockpit's Gate tab and `po-tui report
    RUN_DIR` judge a run with these, so neither contradicts the run's own gate job."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return {}
    g = load_config(path).gate
    opts: dict[str, Any] = {"gates_file": g.gates} if g.gates else {"preset": g.preset}
    return {**opts, "resamples": g.resamples, "seed": g.seed}
