"""Teacher settings: one validated model for the CLI flags and the pipeline config's `teacher:`.

`fingerprint()` holds the settings that define what the dataset *is* (prompt, metric,
min-score, provider, model): resuming with any of them changed would silently mix two datasets,
so resume refuses unless the user says `--allow-change` (how a hybrid pro-then-flash run
continues on purpose).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from engine.configfile import Seed
from engine.core.prompts import student_template, teacher_system_prompt

PROVIDERS = ("gemini", "vertex", "openai", "synthetic")
DEFAULT_MODELS = {"gemini": "gemini-2.5-flash", "vertex": "gemini-2.5-flash", "synthetic": "synthetic-po-1"}
# The synthetic writer's styles (engine.providers.po_writer.STYLES, kept here so that
# settings and command lines need not import the writer).
SYNTHETIC_STYLES = ("full", "compact")
DEFINING = ("prompt", "metric", "min_score", "provider", "model", "style")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _env_var_name(value: str | None) -> str | None:
    # Anything but a variable name here is most likely a pasted key: refuse it before it can be
    # copied into a config, an event or a log, and never repeat it in the message.
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError("must be the name of an environment variable (A-Z, 0-9, _), never the key itself")
    return value


# `api_key_env`: the name of the variable holding a provider's key (secrets live only in the environment).
EnvVarName = Annotated[str | None, AfterValidator(_env_var_name)]


class SyntheticSettings(BaseModel):
    """Knobs of the offline synthetic provider (demo and tests)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    latency_s: float = Field(0.0, ge=0)
    latency_jitter_s: float = Field(0.0, ge=0)
    defect_rate: float = Field(0.15, ge=0, le=1)
    fix_rate: float = Field(0.85, ge=0, le=1)
    low_quality_rate: float = Field(0.1, ge=0, le=1)
    # full: varied prose like a real teacher; compact: fixed sentences with the product name and
    # requirement ids slotted in, short enough for the demo's tiny student to learn.
    style: Literal[SYNTHETIC_STYLES] = "full"


class TeacherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    provider: Literal["gemini", "vertex", "openai", "synthetic"] = "gemini"
    model: str | None = None
    temperature: float = Field(0.2, ge=0, le=2)
    max_output_tokens: int | None = Field(None, ge=1)
    min_score: float = Field(0.80, ge=0, le=1)
    max_records: int | None = Field(None, ge=1)
    samples_per_concept: int = Field(1, ge=1)
    concurrency: int = Field(8, ge=1, le=1024)
    rpm: float | None = Field(None, gt=0)
    tpm: float | None = Field(None, gt=0)
    max_retries: int = Field(2, ge=0)
    low_score_retries: int = Field(0, ge=0)
    api_retries: int = Field(6, ge=0)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    metric: Literal["po-v1", "po-v2"] = "po-v2"
    seed: Seed = 0
    budget_usd: float | None = Field(None, gt=0)
    base_url: str | None = None
    project: str | None = None
    location: str | None = None
    api_key_env: EnvVarName = None
    prices: str | None = None
    system_prompt: str | None = None
    student_template: str | None = None
    retry_errors: bool = False
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)

    def resolved_model(self) -> str:
        if self.model:
            return self.model
        if self.provider in DEFAULT_MODELS:
            return DEFAULT_MODELS[self.provider]
        raise ValueError("--model is required with --provider openai")

    def prompt_hash(self) -> str:
        text = teacher_system_prompt(self.system_prompt) + "\x00" + student_template(self.student_template)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def fingerprint(self) -> dict[str, object]:
        fp: dict[str, object] = {
            "prompt": self.prompt_hash(),
            "metric": self.metric,
            "min_score": self.min_score,
            "provider": self.provider,
            "model": self.resolved_model(),
        }
        # The synthetic writer's style changes what the answers are. Recorded only when it is not
        # the default, so runs made before the setting existed resume unchanged.
        if self.provider == "synthetic" and self.synthetic.style != "full":
            fp["style"] = self.synthetic.style
        return fp
