"""Evaluation settings: one validated model for the CLI flags, and the fingerprint resume checks.

`fingerprint()` holds what decides the answers (dataset cases, model, adapter weights, prompt,
decoding, retries, metric). Resuming a partial evaluation with any of them changed would mix two
evaluations in one results file, so the stage refuses and names what changed. The batch size is
part of it only when sampling: greedy output does not depend on it (batched decoding is checked
token for token against one-at-a-time decoding).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.configfile import Seed
from engine.stages.teacher.settings import DEFAULT_MODELS, EnvVarName, SyntheticSettings

LOCAL = "local"
PROVIDERS = ("gemini", "vertex", "openai", "synthetic")
DEFAULT_MAX_NEW_TOKENS = 1200  # the seeds' value: enough for both YAML blocks
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class EvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dataset: str
    out: str
    tag: str
    provider: Literal["local", "gemini", "vertex", "openai", "synthetic"] = LOCAL
    base_model: str | None = None
    adapter: str | None = None
    model: str | None = None
    max_samples: int = Field(20, ge=0)  # 0: every case
    seed: Seed = 42
    batch_size: int = Field(8, ge=1, le=4096)
    max_new_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    retries: int = Field(2, ge=0, le=20)
    load_4bit: bool = False
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    chat_template: Literal["auto", "on", "off"] | None = None  # None: as the adapter was trained
    metric: Literal["po-v1", "po-v2"] = "po-v2"
    restart: bool = False
    # providers
    concurrency: int = Field(4, ge=1, le=1024)
    api_retries: int = Field(6, ge=0)
    backoff_base_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    base_url: str | None = None
    api_key_env: EnvVarName = None
    project: str | None = None
    location: str | None = None
    system_prompt: Literal["teacher", "none"] = "teacher"
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)

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
        return self

    @property
    def local(self) -> bool:
        return self.provider == LOCAL

    def resolved_model(self) -> str:
        if self.local:
            return str(self.base_model)
        return self.model or DEFAULT_MODELS[self.provider]

    def resolved_max_new_tokens(self) -> int | None:
        """1200 for local models; providers keep their own default unless asked."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return DEFAULT_MAX_NEW_TOKENS if self.local else None

    def fingerprint(self, *, cases: str, prompt: str, adapter_sha256: str | None, base_config_sha256: str | None) -> dict:
        """What the answers depend on; `cases` hashes the selected concepts, `prompt` the template."""
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
            if self.local:
                fp["batch_size"] = self.batch_size
        if not self.local:
            fp["system_prompt"] = self.system_prompt
            if self.provider == "synthetic":
                fp["synthetic"] = self.synthetic.model_dump()
        return fp
