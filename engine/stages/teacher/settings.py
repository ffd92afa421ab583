"""Teacher settings: one validated model for the CLI flags and the pipeline config's `teacher:`.

Each field declares its flag too (type, default, bounds, help: engine/commands/settingsflags.py).

`fingerprint()` holds the settings that define what the dataset *is* (prompt, metric,
min-score, provider, model, thinking budget): resuming with any of them changed would silently mix two datasets,
so resume refuses unless the user says `--allow-change` (how a hybrid pro-then-flash run
continues on purpose).

`phases` plans that switch instead: one run, model after model, each phase until its own number of
accepted records (engine/stages/teacher/phases.py runs them). The plan's models and thinking
budgets are part of the fingerprint; its record counts are not (a resume may extend a phase, as
it may raise max_records).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from engine.configfile import Seed
from engine.core.prompts import student_template, teacher_system_prompt
from engine.flagmeta import CONFIG_ONLY, Flag

PROVIDERS = ("gemini", "vertex", "openai", "synthetic")
DEFAULT_MODELS = {"gemini": "gemini-2.5-flash", "vertex": "gemini-2.5-flash", "synthetic": "synthetic-po-1"}
# The synthetic writer's styles (engine.providers.po_writer.STYLES, kept here so that
# settings and command lines need not import the writer).
SYNTHETIC_STYLES = ("full", "compact")
DEFINING = ("prompt", "metric", "min_score", "provider", "model", "style", "thinking_budget", "phases")
# Gemini's thinking budget per model family, in tokens (Google's "Thinking" guide): the lowest
# budget that keeps thinking on, the highest, and whether 0 may turn it off. -1 (dynamic: the
# model decides) is accepted by every one. A model name is matched by its longest prefix here,
# so `gemini-2.5-flash-preview-05-20` is checked as flash and `-lite` stays `-lite`.
DYNAMIC_THINKING = -1
THINKING_RANGES: dict[str, tuple[int, int, bool]] = {
    "gemini-2.5-pro": (128, 32768, False),
    "gemini-2.5-flash": (1, 24576, True),
    "gemini-2.5-flash-lite": (512, 24576, True),
}
THINKING_PROVIDERS = ("gemini", "vertex")
MAX_CONCURRENCY = 1024
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
    latency_s: Annotated[float, Flag("latency", metavar="X")] = Field(0.0, ge=0, description="seconds each answer takes")
    latency_jitter_s: Annotated[float, CONFIG_ONLY] = Field(0.0, ge=0, description="up to this many seconds more, drawn per answer")
    defect_rate: Annotated[float, Flag(metavar="X")] = Field(
        0.15, ge=0, le=1, description="share of first answers with a format defect or another flaw")
    fix_rate: Annotated[float, Flag(metavar="X")] = Field(0.85, ge=0, le=1, description="share of retries that write a good answer")
    low_quality_rate: Annotated[float, Flag(metavar="X")] = Field(
        0.1, ge=0, le=1, description="share of first answers written weakly (a low score)")
    # full: varied prose like a real teacher; compact: fixed sentences with the product name and
    # requirement ids slotted in, short enough for the demo's tiny student to learn.
    style: Literal[SYNTHETIC_STYLES] = Field(
        "full", description="synthetic answers: full prose or compact fixed sentences citing the ids")


def thinking_family(model: str) -> str | None:
    """The THINKING_RANGES key a model name belongs to (None: a model this table does not know)."""
    name = model.split("/")[-1]
    matches = [key for key in THINKING_RANGES if name.startswith(key)]
    return max(matches, key=len) if matches else None


def _range_text(family: str) -> str:
    low, high, can_off = THINKING_RANGES[family]
    if can_off and low <= 1:
        return f"{family} 0-{high} (0: off)"
    return f"{family} {'0 (off) or ' if can_off else ''}{low}-{high}"


def batch_problem(provider: str | None) -> str | None:
    """Why batch mode cannot run on `provider` (None: it can). Batch jobs with inline requests
    exist only on the Gemini API."""
    if provider is None or provider == "gemini":
        return None
    if provider == "vertex":
        return "batch needs --provider gemini: Vertex AI batch jobs read only GCS or BigQuery sources, not inline requests"
    return f"batch is for the Gemini Batch API (--provider gemini), not the {provider} provider"


def thinking_budget_problem(model: str, budget: int) -> str | None:
    """Why `budget` is not valid for a known `model` (None: valid, or a model not in the table)."""
    family = thinking_family(model)
    if family is None or budget == DYNAMIC_THINKING:
        return None
    low, high, can_off = THINKING_RANGES[family]
    if (budget == 0 and can_off) or low <= budget <= high:
        return None
    ranges = "; ".join(_range_text(f) for f in THINKING_RANGES)
    off = "" if can_off or budget != 0 else f" ({family} cannot turn thinking off)"
    return f"{budget} is not a valid thinking budget for {model}{off}: valid are {ranges}; -1 (dynamic) for all"


class PhaseSettings(BaseModel):
    """One planned phase of a teacher run: `model` until `max_records` of its answers are accepted.

    Unset fields take the run's value (`teacher.temperature`, `teacher.thinking_budget`, ...), so a
    phase says only what differs. A budget the phase's own model cannot take is refused here, at
    its line in the config, before any request is sent."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    model: str = Field(min_length=1, description="the provider's model for this phase")
    max_records: int = Field(ge=1, description="accepted records this phase contributes")
    mode: Literal["interactive", "batch"] | None = Field(None, description="interactive calls or the batch API (null: the run's)")
    thinking_budget: int | None = Field(None, ge=DYNAMIC_THINKING, description="thinking tokens per answer (null: the run's)")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature (null: the run's)")

    @field_validator("thinking_budget")
    @classmethod
    def _budget_fits_the_phase_model(cls, budget: int | None, info: ValidationInfo) -> int | None:
        model = info.data.get("model")
        problem = thinking_budget_problem(model, budget) if budget is not None and model else None
        if problem:
            raise ValueError(problem)
        return budget


# What a null `model` means, shown in --help: from DEFAULT_MODELS, not copied by hand.
DEFAULT_MODEL_TEXT = f"{DEFAULT_MODELS['gemini']}; synthetic: {DEFAULT_MODELS['synthetic']}"


class TeacherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    provider: Literal["gemini", "vertex", "openai", "synthetic"] = Field("gemini", description="the teacher's API")
    model: Annotated[str | None, Flag(default_means=DEFAULT_MODEL_TEXT)] = Field(None, description="the provider's model")
    temperature: float = Field(0.2, ge=0, le=2, description="sampling temperature")
    max_output_tokens: Annotated[int | None, Flag(metavar="N", default_means="the provider's")] = Field(
        None, ge=1, description="answer token limit")
    min_score: float = Field(0.80, ge=0, le=1, description="accept samples scoring at least this")
    max_records: Annotated[int | None, Flag(metavar="N", default_means="every concept")] = Field(
        None, ge=1, description="stop after N accepted records")
    samples_per_concept: Annotated[int, Flag(metavar="K")] = Field(1, ge=1, description="variants per concept")
    concurrency: Annotated[int, Flag(metavar="C")] = Field(
        8, ge=1, le=MAX_CONCURRENCY, description="requests in flight (batch mode: samples waiting in jobs; unset, up to 1000)")
    rpm: Annotated[float | None, Flag(metavar="R", default_means="no limit")] = Field(None, gt=0, description="requests per minute limit")
    tpm: Annotated[float | None, Flag(metavar="T", default_means="no limit")] = Field(None, gt=0, description="tokens per minute limit")
    max_retries: int = Field(2, ge=0, description="retries after a format error")
    low_score_retries: int = Field(0, ge=0, description="retries below --min-score")
    api_retries: int = Field(6, ge=0, description="retries of a failed API call: 429, 5xx, timeouts")
    backoff_base_s: Annotated[float, Flag("backoff-base", metavar="S")] = Field(1.0, gt=0, description="first backoff delay, seconds")
    backoff_max_s: Annotated[float, CONFIG_ONLY] = Field(60.0, gt=0, description="longest backoff delay, seconds")
    timeout_s: Annotated[float, Flag("timeout", metavar="S")] = Field(120.0, gt=0, description="per-request timeout, seconds")
    metric: Literal["po-v1", "po-v2"] = Field("po-v2", description="the metric that scores the answers")
    seed: Seed = Field(0, description="provider seed (and the synthetic teacher's choices)")
    budget_usd: Annotated[float | None, Flag(metavar="X", default_means="no limit")] = Field(
        None, gt=0, description="stop cleanly once this much was spent")
    base_url: str | None = Field(None, description="override the API endpoint (gemini/vertex/openai)")
    project: str | None = Field(None, description="vertex: GCP project (or GOOGLE_CLOUD_PROJECT)")
    location: str | None = Field(None, description="vertex: region (or GOOGLE_CLOUD_LOCATION)")
    api_key_env: Annotated[EnvVarName, Flag(metavar="VAR")] = Field(
        None, description="read the API key from this environment variable")
    prices: Annotated[str | None, Flag(metavar="FILE")] = Field(
        None, description="price table override (YAML: as_of, models: {name: {input, output, batch_input, batch_output}})")
    # Prompt files change what the dataset is (the fingerprint's `prompt`): set in a config file.
    system_prompt: Annotated[str | None, CONFIG_ONLY] = Field(
        None, description="a file holding the teacher's system prompt (null: the built-in one)")
    student_template: Annotated[str | None, CONFIG_ONLY] = Field(
        None, description="a file holding the student prompt template (null: the built-in one)")
    # Gemini 2.5 thinks by default and bills its thoughts as output: the largest lever on cost and
    # latency, and it changes the answers, so it is part of the fingerprint.
    thinking_budget: Annotated[int | None, Flag(metavar="N", default_means="the model's")] = Field(
        None, ge=DYNAMIC_THINKING,
        description="gemini/vertex thinking tokens per answer (flash 0 = off, 0-24576; pro 128-32768; -1 dynamic)")
    retry_errors: bool = Field(False, description="on resume, retry samples rejected for provider errors")
    # The Gemini Batch API: half the price, answers within 24 hours (docs/cli.md, "Batch mode").
    # Not dataset-defining: the same requests, answered later and cheaper.
    mode: Literal["interactive", "batch"] = Field(
        "interactive", description="interactive calls, or Gemini Batch API jobs (gemini only; half the price, up to 24 h)")
    batch_poll_s: Annotated[float, Flag("batch-poll", metavar="S")] = Field(
        30.0, gt=0, description="batch mode: seconds between polls of an open batch job")
    batch_max_requests: Annotated[int, Flag(metavar="N")] = Field(
        1000, ge=1, description="batch mode: most requests in one batch job (each job also stays under the 20 MB inline limit)")
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    # Last, so that its check sees every run-level value a phase inherits.
    phases: Annotated[list[PhaseSettings] | None, CONFIG_ONLY] = Field(
        None, min_length=1, description="planned phases: [{model, max_records, mode?, thinking_budget?, temperature?}], run in order")

    @field_validator("phases")
    @classmethod
    def _phases_fit(cls, phases: list[PhaseSettings] | None, info: ValidationInfo) -> list[PhaseSettings] | None:
        """The plan adds up and every phase's effective settings are valid for its model."""
        if phases is None or "provider" not in info.data:
            return phases
        provider = info.data["provider"]
        total = sum(p.max_records for p in phases)
        top = info.data.get("max_records")
        if top is not None and top != total:
            raise ValueError(f"the phases' max_records add up to {total}, not to max_records {top}: "
                             f"set max_records to {total} or leave it out")
        for n, phase in enumerate(phases, 1):
            budget = phase.thinking_budget if phase.thinking_budget is not None else info.data.get("thinking_budget")
            if budget is not None:
                if provider not in THINKING_PROVIDERS:
                    raise ValueError(f"phase {n}: a thinking budget applies to gemini and vertex only, not to the {provider} provider")
                problem = thinking_budget_problem(phase.model, budget)
                if problem:
                    raise ValueError(f"phase {n} (thinking_budget {budget} of the run): {problem}")
            problem = batch_problem(provider) if phase.mode == "batch" else None
            if problem:
                raise ValueError(f"phase {n}: {problem}")
        return phases

    @model_validator(mode="after")
    def _phases_set_the_target(self) -> "TeacherSettings":
        if self.phases and self.max_records is None:
            self.max_records = sum(p.max_records for p in self.phases)
        return self

    def phase_settings(self, phase: PhaseSettings) -> "TeacherSettings":
        """The settings one phase runs with: the run's, with what the phase sets (its target is the
        phase runner's to set, counted over the whole run)."""
        # Only what was set is carried over, so defaults that depend on the phase's own settings
        # (batch mode's concurrency) are worked out for the phase.
        data = self.model_dump(include=self.model_fields_set - {"phases"})
        data.update(model=phase.model, max_records=None)
        for name in ("mode", "thinking_budget", "temperature"):
            value = getattr(phase, name)
            if value is not None:
                data[name] = value
        return type(self).model_validate(data)

    @field_validator("thinking_budget")
    @classmethod
    def _thinking_budget_fits(cls, budget: int | None, info: ValidationInfo) -> int | None:
        """Refuse a budget the API would answer with 400 on every request, before any is sent."""
        if budget is None or "provider" not in info.data:
            return budget
        provider = info.data["provider"]
        if provider not in THINKING_PROVIDERS:
            raise ValueError(f"applies to gemini and vertex only, not to the {provider} provider")
        model = info.data.get("model") or DEFAULT_MODELS[provider]
        problem = thinking_budget_problem(model, budget)
        if problem:
            raise ValueError(problem)
        return budget

    @field_validator("mode")
    @classmethod
    def _mode_fits_provider(cls, mode: str, info: ValidationInfo) -> str:
        """Batch jobs with inline requests exist only on the Gemini API: refuse the rest up front."""
        problem = batch_problem(info.data.get("provider")) if mode == "batch" else None
        if problem:
            raise ValueError(problem)
        return mode

    @model_validator(mode="after")
    def _batch_concurrency(self) -> "TeacherSettings":
        """Batch mode: samples in flight are requests waiting in jobs, so an unset --concurrency
        fills a whole job (`batch_max_requests`) instead of 8; a value the user set is kept."""
        if self.mode == "batch" and "concurrency" not in self.model_fields_set:
            self.concurrency = min(MAX_CONCURRENCY, self.batch_max_requests)
        return self

    def thinking_budget_warning(self) -> str | None:
        """A budget for a model the range table does not know is passed through unchecked: say so."""
        if self.thinking_budget is None or self.thinking_budget == DYNAMIC_THINKING:
            return None
        model = self.resolved_model()
        if thinking_family(model) is not None:
            return None
        return f"--thinking-budget {self.thinking_budget}: {model} has no known range here; sent unchecked"

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
        # Likewise recorded only when set: None (the model's default) keeps older fingerprints.
        if self.thinking_budget is not None:
            fp["thinking_budget"] = self.thinking_budget
        # The plan's models and budgets define the dataset; its counts do not (a resume may extend them).
        if self.phases:
            plan = [self.phase_settings(p) for p in self.phases]
            fp["model"] = " then ".join(s.resolved_model() for s in plan)
            fp["phases"] = [{"model": s.resolved_model(), "thinking_budget": s.thinking_budget} for s in plan]
        return fp
