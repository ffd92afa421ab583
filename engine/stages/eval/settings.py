"""Evaluation settings: one validated model for the CLI flags, and the fingerprint resume checks.

Each field declares its flag too (type, default, bounds, help: engine/commands/settingsflags.py).

`fingerprint()` holds what decides the answers (dataset cases, model, adapter weights, prompt,
decoding, retries, metric). Resuming a partial evaluation with any of them changed would mix two
evaluations in one results file, so the stage refuses and names what changed. The batch size is
part of it when sampling (the seed is drawn per batch), and for greedy decoding on CUDA: there
bf16/fp16 kernels are chosen per batch shape and can flip a near-tied token, so batched greedy
output is not batch 1's (transformers issue 25921) and a resume at another batch size would mix
decodes of two batch shapes in one evaluation. On the CPU (fp32) greedy output does not depend on
it (checked token for token against one-at-a-time decoding), so a CPU evaluation resumes at any
batch size and its fingerprint is what it was before this rule.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.configfile import Seed
from engine.flagmeta import Flag
from engine.stages.teacher.settings import DEFAULT_MODEL_TEXT, DEFAULT_MODELS, PROVIDERS, EnvVarName, SyntheticSettings

LOCAL = "local"
DEFAULT_MAX_NEW_TOKENS = 1200  # the seeds' value: enough for both YAML blocks
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PROMPT_FORMATS = ("student", "teacher")
# `student`, `baseline`, and those words followed by a separator or digits (student-vllm,
# baseline_q4, student2): the sides `gate` and `report` compare, evaluated on the student's prompt.
_STUDENT_TAG = re.compile(r"^(student|baseline)(?:$|[-_.0-9])", re.IGNORECASE)


def is_student_tag(tag: str) -> bool:
    """Whether a tag names a model that is asked what the student is asked (baseline or student)."""
    return _STUDENT_TAG.match(tag) is not None


class EvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dataset: Annotated[str, Flag(metavar="FILE")] = Field(
        description="concepts, teacher records (prep's val.jsonl), the validation layout, prompt/response pairs, "
        "or an eval-results JSON that carries its concepts")
    out: Annotated[str, Flag(metavar="DIR")] = Field(description="results directory")
    tag: Annotated[str, Flag(metavar="NAME")] = Field(
        description="baseline, student or any name: results go to OUT/NAME_<timestamp>.json")
    # `local` is what leaving --provider out means: the flag offers the providers only.
    provider: Annotated[Literal["local", "gemini", "vertex", "openai", "synthetic"], Flag(choices=PROVIDERS)] = Field(
        LOCAL, description="evaluate through a provider instead of a local model: a teacher, or a served "
        "student/baseline (openai: vLLM, llama-server, Ollama)")
    base_model: Annotated[str | None, Flag(metavar="ID_OR_PATH")] = Field(
        None, description="local model folder or Hugging Face cache id (never downloaded)")
    adapter: Annotated[str | None, Flag(metavar="DIR")] = Field(None, description="LoRA adapter folder (po-tui train's output)")
    model: Annotated[str | None, Flag(metavar="M", default_means=DEFAULT_MODEL_TEXT)] = Field(
        None, description="the provider's model: for a served student the served name (vLLM's LoRA module, the Ollama model)")
    max_samples: Annotated[int, Flag(metavar="N")] = Field(
        20, ge=0, description="evaluate the FIRST N distinct concepts in file order, never a shuffle, so every run "
        "compares the same cases; 0 = all")
    seed: Annotated[Seed, Flag(metavar="S")] = Field(42, description="sampling seed (temperature > 0) and provider seeds")
    batch_size: Annotated[int, Flag(metavar="B")] = Field(8, ge=1, le=4096, description="sequences decoded together, local models")
    max_new_tokens: Annotated[
        int | None, Flag(metavar="N", default_means=f"{DEFAULT_MAX_NEW_TOKENS} local, provider default otherwise")
    ] = Field(None, ge=1, description="answer token limit")
    temperature: Annotated[float, Flag(metavar="T")] = Field(
        0.0, ge=0, le=2, description="0 = greedy; > 0 samples with --top-p and --seed")
    top_p: Annotated[float, Flag(metavar="P")] = Field(0.9, gt=0, le=1, description="nucleus sampling when --temperature > 0")
    repetition_penalty: Annotated[float, Flag(metavar="R")] = Field(
        1.0, gt=0, description="local models and served students; 1 = none")
    retries: Annotated[int, Flag(metavar="N")] = Field(
        2, ge=0, le=20, description="re-asks after a format error, naming what was wrong")
    load_4bit: bool = Field(False, description="load the base in 4-bit nf4 (bitsandbytes, double quantisation)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="compute dtype; auto: bf16/fp16 on CUDA, fp32 on CPU")
    chat_template: Annotated[Literal["auto", "on", "off"] | None,
                             Flag(default_means="as the adapter was trained (po_tui_train.json), else auto")] = Field(
        None, description="use the tokenizer's chat template")
    metric: Literal["po-v1", "po-v2"] = Field("po-v2", description="the metric that scores the answers")
    restart: bool = Field(False, description="move a partial evaluation with other settings aside and start over")
    # providers
    concurrency: Annotated[int, Flag(metavar="C")] = Field(4, ge=1, le=1024, description="provider calls in flight")
    # Per-minute limits on provider calls, as the teacher's (engine.providers.limiter). Not in the
    # fingerprint: they pace the calls, they do not change the answers.
    rpm: Annotated[float | None, Flag(metavar="R", default_means="none")] = Field(
        None, gt=0, description="provider requests per minute limit")
    tpm: Annotated[float | None, Flag(metavar="T", default_means="none")] = Field(
        None, gt=0, description="provider tokens per minute limit, estimated before each call")
    api_retries: Annotated[int, Flag(metavar="N")] = Field(
        6, ge=0, description="retries of a failed provider call: 429, 5xx, timeouts")
    backoff_base_s: Annotated[float, Flag("backoff-base", metavar="S")] = Field(1.0, gt=0, description="first backoff delay, seconds")
    timeout_s: Annotated[float, Flag("timeout", metavar="S")] = Field(120.0, gt=0, description="per-call timeout, seconds")
    base_url: Annotated[str | None, Flag(metavar="URL")] = Field(
        None, description="provider endpoint override; openai: the API root, e.g. http://localhost:8000/v1 (a bare host gets /v1)")
    api_key_env: Annotated[EnvVarName, Flag(metavar="VAR")] = Field(
        None, description="read the API key from this environment variable")
    project: str | None = Field(None, description="vertex: GCP project (or GOOGLE_CLOUD_PROJECT)")
    location: str | None = Field(None, description="vertex: region (or GOOGLE_CLOUD_LOCATION)")
    # What a provider is sent: `student` = exactly the training input (the student prompt as the
    # only user message, no system message), `teacher` = the teacher's system prompt plus that
    # message. None: `student` for baseline/student tags, `teacher` otherwise.
    prompt_format: Annotated[Literal["student", "teacher"] | None,
                             Flag(default_means="student for baseline/student tags, teacher otherwise")] = Field(
        None, description="providers: student = exactly the training input (the student prompt as the only message), "
        "teacher = the teacher's system prompt first")
    # The older spelling (none = student): accepted, not shown.
    system_prompt: Annotated[Literal["teacher", "none"] | None, Flag(hidden=True)] = Field(
        None, description="the older spelling of --prompt-format: none = student")
    # The synthetic provider's knobs are test aids here: accepted, not shown.
    synthetic: Annotated[SyntheticSettings, Flag(hidden=True)] = Field(default_factory=SyntheticSettings)

    @field_validator("tag")
    @classmethod
    def _tag_names_a_file(cls, value: str) -> str:
        if not _TAG.match(value) or ".." in value:
            raise ValueError("use letters, digits, '_', '-', '.' (it names the results file)")
        return value

    @model_validator(mode="after")
    def _local_or_provider(self) -> "EvalSettings":
        if self.provider == LOCAL:
            if not self.base_model:
                raise ValueError("--base-model is required for a local model (or pass --provider)")
            if self.model:
                raise ValueError("--model names a provider's model: use --base-model for a local one")
        else:
            for name, value in (("--base-model", self.base_model), ("--adapter", self.adapter)):
                if value:
                    raise ValueError(f"{name} is for local models, not --provider {self.provider}")
            if self.load_4bit:
                raise ValueError("--load-4bit is for local models")
            if self.provider == "openai" and not self.model:
                raise ValueError("--model is required with --provider openai")
        if self.local and "teacher" in (self.prompt_format, self.system_prompt):
            flag = "--prompt-format" if self.prompt_format == "teacher" else "--system-prompt"
            raise ValueError(f"{flag} teacher is for providers: a local model is always asked the student prompt")
        if self.prompt_format is not None and self.system_prompt is not None:
            if (self.system_prompt == "teacher") != (self.prompt_format == "teacher"):
                raise ValueError(
                    f"--prompt-format {self.prompt_format} contradicts --system-prompt {self.system_prompt}: "
                    "pass only --prompt-format"
                )
        return self

    @property
    def local(self) -> bool:
        return self.provider == LOCAL

    def resolved_model(self) -> str:
        if self.local:
            return str(self.base_model)
        return self.model or DEFAULT_MODELS[self.provider]

    def resolved_prompt_format(self) -> str:
        """`student` or `teacher`: the flag, else the older `--system-prompt`, else from the tag."""
        if self.prompt_format is not None:
            return self.prompt_format
        if self.system_prompt is not None:
            return "teacher" if self.system_prompt == "teacher" else "student"
        return "student" if is_student_tag(self.tag) else "teacher"

    @property
    def student_prompt(self) -> bool:
        """Whether the model is asked exactly what the student was trained on (always, locally)."""
        return self.local or self.resolved_prompt_format() == "student"

    @property
    def sends_repetition_penalty(self) -> bool:
        """Local models and served students (OpenAI-compatible servers take it) decode with it;
        the teacher providers have no such setting."""
        return self.local or (self.provider == "openai" and self.student_prompt)

    def resolved_max_new_tokens(self) -> int | None:
        """1200 for local models and served students (decoded as the local student eval decodes
        them, so a looping answer stops where it would locally); a teacher provider keeps its own
        default unless asked."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return DEFAULT_MAX_NEW_TOKENS if self.student_prompt else None

    def fingerprint(
        self, *, cases: str, prompt: str, adapter_sha256: str | None, base_config_sha256: str | None, device: str | None = None
    ) -> dict:
        """What the answers depend on; `cases` hashes the selected concepts, `prompt` the template,
        `device` is where a local model decodes (cuda | cpu)."""
        fp: dict = {
            "cases": cases,
            "prompt": prompt,
            "provider": self.provider,
            "model": self.resolved_model(),
            "base_config_sha256": base_config_sha256,
            "adapter_sha256": adapter_sha256,
            "metric": self.metric,
            "max_new_tokens": self.resolved_max_new_tokens(),
            "temperature": self.temperature,
            "retries": self.retries,
            "load_4bit": self.load_4bit,
            "dtype": self.dtype,
            "chat_template": self.chat_template,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.temperature > 0 or not self.local:  # greedy local decoding ignores the seed
            fp["seed"] = self.seed
        if self.temperature > 0:
            fp["top_p"] = self.top_p
        if self.local and (self.temperature > 0 or device == "cuda"):
            fp["batch_size"] = self.batch_size
        if not self.local:
            # "none" is the student format: the spelling resumable cases files already hold.
            fp["system_prompt"] = "none" if self.student_prompt else "teacher"
            if self.provider == "synthetic":
                fp["synthetic"] = self.synthetic.model_dump()
        return fp
