"""Training settings: one validated model for the CLI flags and the pipeline config's `train:`.

Each field declares its flag too (type, default, bounds, help: engine/commands/settingsflags.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.configfile import Seed
from engine.flagmeta import Flag

# The seeds' recipe: r32 / alpha 64 / dropout 0.05, 3 epochs, lr 1e-4, max length 2048.
DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-7B-Instruct"

# Experiment trackers the Trainer can report to (transformers' report_to), and the package each
# needs; tensorboard is served by either of two.
TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",), "trackio": ("trackio",)}
# Settings that say where a training is reported, not what it computes: left out of the
# pipeline's resume fingerprint, so adding a tracker to a run never trains it again.
REPORTING_ONLY = ("report_to",)


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data: Annotated[str, Flag(metavar="DIR")] = Field("", description="prep output (train.jsonl, val.jsonl) or one JSONL file")
    base_model: Annotated[str, Flag(metavar="ID_OR_PATH")] = Field(
        DEFAULT_BASE_MODEL, min_length=1, description="the base model: a local folder or a Hugging Face cache id")
    out: Annotated[str, Flag(metavar="DIR")] = Field("", description="adapter, tokenizer, checkpoints, history, model card")
    lora_r: int = Field(32, ge=1, description="LoRA rank")
    lora_alpha: float = Field(64, gt=0, description="LoRA alpha")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: str = Field("all-linear", description="all-linear or q_proj,k_proj,...")
    # Whole modules trained and saved beside the adapter, e.g. "embed_tokens". For a base with no
    # language of its own (the tiny random demo model) the embeddings must be learnt too; a real
    # base leaves this empty. Tied input/output embeddings stay tied (peft's ensure_weight_tying).
    modules_to_save: Annotated[str, Flag(metavar="NAMES", default_means="none")] = Field(
        "", description="whole modules trained beside the adapter, e.g. embed_tokens")
    epochs: float = Field(3, gt=0, description="training epochs")
    max_steps: int = Field(-1, ge=-1, description="stop after N optimizer steps (overrides --epochs; -1: no limit)")
    batch_size: int = Field(4, ge=1, description="per device")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    lr: float = Field(1e-4, gt=0, description="learning rate")
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field("cosine", description="learning-rate schedule")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="share of the steps spent warming up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    # The bound catches a typo (an extra digit) at the config, not as an overflow in the tokenizer.
    max_seq_len: int = Field(2048, ge=16, le=1_048_576, description="longest training sequence, tokens")
    load_4bit: bool = Field(False, description="QLoRA: load the base in 4-bit nf4")
    load_8bit: bool = Field(False, description="load the base in 8-bit")
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="compute dtype; auto: bf16/fp16 on CUDA, fp32 on CPU")
    # Activation checkpointing: auto = on for CUDA (a 7B base at the seeds' batch runs out of
    # memory without it), off on CPU. `true`/`false` in a config file mean on/off.
    gradient_checkpointing: Annotated[Literal["auto", "on", "off"], Flag(bare="on")] = Field(
        "auto", description="activation checkpointing; auto: on for CUDA, off on CPU; the bare flag: on")
    logging_steps: int = Field(10, ge=1, description="a progress event every N steps")
    eval_steps: Annotated[int | None, Flag(default_means="each epoch")] = Field(None, ge=1, description="evaluate every N steps")
    save_steps: Annotated[int | None, Flag(default_means="each epoch")] = Field(None, ge=1, description="checkpoint every N steps")
    save_total_limit: int = Field(3, ge=1, description="checkpoints kept")
    seed: Seed = Field(42, description="training seed")
    gpus: Annotated[int | None, Flag(default_means="one GPU when CUDA is there, else the CPU")] = Field(
        None, ge=0, description="N > 1 runs DDP through torchrun")
    cpu_processes: int = Field(1, ge=1, description="N CPU ranks on the gloo backend (testing the launch path)")
    fsdp: str | None = Field(None, description="passed to TrainingArguments.fsdp, e.g. 'full_shard auto_wrap'")
    deepspeed: Annotated[str | None, Flag(metavar="FILE")] = Field(None, description="DeepSpeed config passed to TrainingArguments")
    chat_template: Literal["auto", "on", "off"] = Field(
        "auto", description="use the tokenizer's chat template; auto: when it has one")
    # Learning while it trains (engine/stages/train/probe.py): every N steps, greedy answers to the
    # first `probe_prompts` held-out prompts, judged by the metric. None: off.
    probe_every: Annotated[int | None, Flag(metavar="N", default_means="off")] = Field(
        None, ge=1, description="every N steps, answer held-out prompts greedily and score them")
    probe_prompts: Annotated[int, Flag(metavar="K")] = Field(
        4, ge=1, le=64, description="held-out prompts per probe, the first K of val.jsonl")
    probe_max_new_tokens: Annotated[int | None, Flag(metavar="N", default_means="1.25 x the longest training answer")] = Field(
        None, ge=1, description="answer limit of a probe")
    # A list in a config file (`report_to: [tensorboard, wandb]`), comma-separated as a flag.
    report_to: Annotated[str, Flag(metavar="NAMES", default_means="none")] = Field(
        "", description="experiment trackers the Trainer reports to: tensorboard, wandb, mlflow, trackio, comma-separated "
                        "(tensorboard logs in OUT/tb)")
    resume: bool = Field(False, description="continue from the newest complete checkpoint in --out")
    run_dir: Annotated[str | None, Flag(metavar="DIR", default_means="--out")] = Field(None, description="event log directory")
    job: Annotated[str | None, Flag(metavar="NAME", default_means="train")] = Field(None, description="job name in the run directory")

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _switch(cls, value: object) -> object:
        return ("on" if value else "off") if isinstance(value, bool) else value

    @field_validator("report_to", mode="before")
    @classmethod
    def _trackers(cls, value: object) -> object:
        if value is None:
            return ""
        if isinstance(value, str):
            items: list[object] = value.split(",")
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            return value  # pydantic says what is wrong with it
        names = [str(item).strip() for item in items if str(item).strip()]
        if names == ["none"]:
            return ""
        unknown = [n for n in names if n not in TRACKERS]
        if unknown:
            raise ValueError(f"unknown tracker {unknown[0]!r} (one of: {', '.join(TRACKERS)})")
        return ",".join(dict.fromkeys(names))

    @model_validator(mode="after")
    def _one_quantisation(self) -> "TrainSettings":
        if self.load_4bit and self.load_8bit:
            raise ValueError("choose one of load_4bit and load_8bit")
        if self.probe_every and (self.fsdp or self.deepspeed):
            # Sharded weights: one rank cannot decode alone (probes run on rank 0 only).
            raise ValueError("probe_every cannot be used with fsdp or deepspeed")
        return self

    def trackers(self) -> list[str]:
        return [n for n in self.report_to.split(",") if n]

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
