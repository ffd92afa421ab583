"""Training settings: one validated model for the CLI flags and the pipeline config's `train:`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.configfile import Seed

# The seeds' recipe: r32 / alpha 64 / dropout 0.05, 3 epochs, lr 1e-4, max length 2048.
DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-7B-Instruct"


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data: str = ""
    base_model: str = DEFAULT_BASE_MODEL
    out: str = ""
    lora_r: int = Field(32, ge=1)
    lora_alpha: float = Field(64, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str = "all-linear"
    # Whole modules trained and saved beside the adapter, e.g. "embed_tokens". For a base with no
    # language of its own (the tiny random demo model) the embeddings must be learnt too; a real
    # base leaves this empty. Tied input/output embeddings stay tied (peft's ensure_weight_tying).
    modules_to_save: str = ""
    epochs: float = Field(3, gt=0)
    max_steps: int = Field(-1, ge=-1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_seq_len: int = Field(2048, ge=16)
    load_4bit: bool = False
    load_8bit: bool = False
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # Activation checkpointing: auto = on for CUDA (a 7B base at the seeds' batch runs out of
    # memory without it), off on CPU. `true`/`false` in a config file mean on/off.
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    logging_steps: int = Field(10, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    save_steps: int | None = Field(None, ge=1)
    save_total_limit: int = Field(3, ge=1)
    seed: Seed = 42
    gpus: int | None = Field(None, ge=0)  # None: one GPU when CUDA is there, else the CPU
    cpu_processes: int = Field(1, ge=1)
    fsdp: str | None = None
    deepspeed: str | None = None
    chat_template: Literal["auto", "on", "off"] = "auto"
    # Learning while it trains (engine/stages/train/probe.py): every N steps, greedy answers to the
    # first `probe_prompts` held-out prompts, judged by the metric. None: off.
    probe_every: int | None = Field(None, ge=1)
    probe_prompts: int = Field(4, ge=1, le=64)
    probe_max_new_tokens: int | None = Field(None, ge=1)  # None: 1.25 x the longest training answer
    resume: bool = False
    run_dir: str | None = None
    job: str | None = None

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _switch(cls, value: object) -> object:
        return ("on" if value else "off") if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one_quantisation(self) -> "TrainSettings":
        if self.load_4bit and self.load_8bit:
            raise ValueError("choose one of load_4bit and load_8bit")
        if self.probe_every and (self.fsdp or self.deepspeed):
            # Sharded weights: one rank cannot decode alone (probes run on rank 0 only).
            raise ValueError("probe_every cannot be used with fsdp or deepspeed")
        return self

    def modules_to_save_list(self) -> list[str] | None:
        names = [m.strip() for m in self.modules_to_save.split(",") if m.strip()]
        return names or None

    def target_module_list(self) -> str | list[str]:
        if self.target_modules == "all-linear":
            return "all-linear"
        return [m.strip() for m in self.target_modules.split(",") if m.strip()]

    @property
    def world_size(self) -> int:
        return max(self.gpus or 0, self.cpu_processes, 1)
