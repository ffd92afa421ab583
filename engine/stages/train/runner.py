"""LoRA / QLoRA training with transformers' Trainer and peft.

`check_inputs` fails fast, before any model is loaded, on everything a user can get wrong; then
`train` builds the quantised (or not) base, wraps it with LoRA, and runs the library's Trainer
with prompt-masked labels and per-batch padding, resuming from the newest checkpoint when asked.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.timefmt import utc_stamp
from engine.errors import InputError
from engine.stages.train.device import auto_dtype, cuda_count, shards_weights, use_checkpointing
from engine.stages.train.settings import TRACKERS, TrainSettings
from engine.store.atomic import atomic_write_json
from engine.store.inputfile import read_json
from engine.store.outpath import check_out_dir

RUN_INFO = "po_tui_train.json"
CHECKPOINTS = "checkpoints"


@dataclass
class Plan:
    """What check_inputs found: the files and facts the run will use."""

    train_file: Path
    val_file: Path | None
    base_is_local: bool
    device: str  # cuda | cpu
    dtype: str
    checkpointing: bool = False  # activation checkpointing, resolved from `auto` for the device
    sharded: bool = False  # FSDP or ZeRO-3: weights are split across the ranks


def check_inputs(s: TrainSettings) -> Plan:
    """Everything that can be checked before loading a model, with one-line errors."""
    from engine.stages.train.data import data_files

    quiet_libraries()
    if not s.out:
        raise InputError("required", field="--out")
    check_out_dir(s.out)
    if s.run_dir:
        check_out_dir(s.run_dir, field="--run-dir")
    train_file, val_file = data_files(s.data)
    base = Path(s.base_model)
    base_is_local = base.exists()
    if base_is_local:
        if not (base / "config.json").exists():
            raise InputError("not a model directory (no config.json)", path=base, field="--base-model")
        if not isinstance(read_json(base / "config.json", field="--base-model"), dict):
            raise InputError("config.json: expected a JSON object", path=base, field="--base-model")
    else:
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(s.base_model, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means: not available here
            raise InputError(
                f"unknown model {s.base_model!r}: not a local directory and not in the Hugging Face cache "
                "(download it first, or pass a path)",
                field="--base-model",
            ) from exc
    if s.load_4bit or s.load_8bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            flag = "--load-4bit" if s.load_4bit else "--load-8bit"
            raise InputError("needs bitsandbytes (pip install bitsandbytes)", field=flag) from exc
    check_trackers(s)
    cuda = cuda_count()
    if s.gpus is not None and s.gpus > cuda:
        raise InputError(f"{s.gpus} GPUs asked for, {cuda} present", field="--gpus")
    if (s.gpus or 0) > 1 and s.cpu_processes > 1:
        raise InputError("use --gpus or --cpu-processes, not both", field="--cpu-processes")
    deepspeed = None
    if s.deepspeed:
        deepspeed = read_json(s.deepspeed, what="a DeepSpeed JSON config", field="--deepspeed")
        if not isinstance(deepspeed, dict):
            raise InputError("expected a JSON object", path=s.deepspeed, field="--deepspeed")
    out = Path(s.out)
    if (out / CHECKPOINTS).exists() and any((out / CHECKPOINTS).glob("checkpoint-*")) and not s.resume:
        raise InputError("already holds checkpoints: pass --resume to continue, or choose another --out", path=out)
    device = "cuda" if cuda and (s.gpus is None or s.gpus >= 1) and s.cpu_processes == 1 else "cpu"
    dtype = s.compute_dtype if s.compute_dtype != "auto" else auto_dtype(device)
    sharded = shards_weights(s.fsdp, deepspeed)
    if sharded and s.load_8bit:
        raise InputError("8-bit weights cannot be sharded by FSDP or ZeRO-3 (float tensors only): use --load-4bit",
                         field="--load-8bit")
    return Plan(train_file, val_file, base_is_local, device, dtype,
                checkpointing=use_checkpointing(s.gradient_checkpointing, device), sharded=sharded)


def check_trackers(s: TrainSettings) -> None:
    """Each tracker asked for has its package here: said before any model is loaded, not as a
    transformers traceback once the Trainer is built."""
    import importlib.util

    for name in s.trackers():
        packages = TRACKERS[name]
        if not any(_importable(p, importlib.util.find_spec) for p in packages):
            raise InputError(f"{name} needs the {packages[0]} package (pip install {packages[0]})", field="--report-to")


def _importable(package: str, find_spec: Any) -> bool:
    try:
        return find_spec(package) is not None
    except (ImportError, ValueError):  # a broken or half-installed package
        return False


def tensorboard_dir(s: TrainSettings) -> Path:
    """Where TensorBoard's event files go: OUT/tb, beside the adapter (not under the checkpoints,
    which are rotated and left out of fingerprints)."""
    return Path(s.out) / "tb"


def point_trackers(trainer: Any, s: TrainSettings) -> None:
    """Send the TensorBoard callback's files to OUT/tb (transformers 5 has no logging_dir argument;
    its default is a dated folder under the checkpoints)."""
    if "tensorboard" not in s.trackers():
        return
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(tensorboard_dir(s))


def _torch_dtype(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def quantization_config(s: TrainSettings, plan: Plan):
    """bitsandbytes settings, or None: nf4 with double quantisation computing in the run's dtype.

    Sharded (FSDP / ZeRO-3), the packed 4-bit weights are stored in that dtype too instead of
    uint8: FSDP only shards float tensors, and only wraps a unit whose tensors share one dtype
    (bitsandbytes' FSDP-QLoRA guide)."""
    from transformers import BitsAndBytesConfig

    dtype = _torch_dtype(plan.dtype)
    if s.load_4bit:
        storage = {"bnb_4bit_quant_storage": dtype} if plan.sharded else {}
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=dtype, **storage)
    if s.load_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_base(s: TrainSettings, plan: Plan):
    """The base model, 4-bit nf4 (double quantisation) or 8-bit through bitsandbytes when asked.

    Call it after the TrainingArguments exist: they set this rank's GPU and, for ZeRO-3, the
    DeepSpeed config that makes loading sharded (transformers reads it at load time)."""
    from transformers import AutoModelForCausalLM

    dtype = _torch_dtype(plan.dtype)
    quantised = s.load_4bit or s.load_8bit
    kwargs: dict[str, Any] = {"local_files_only": True}  # hubs are unreachable: local dirs or the cache
    config = quantization_config(s, plan)
    if config is not None:
        kwargs["quantization_config"] = config
    if plan.sharded:
        # FSDP / ZeRO-3 place the shards themselves (ZeRO-3 refuses a device_map); the weights
        # load in the dtype the 4-bit storage uses, so each wrapped unit has one float dtype.
        kwargs["dtype"] = dtype
    elif plan.device == "cuda":
        kwargs["dtype"] = dtype
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    elif quantised:
        kwargs["device_map"] = {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(s.base_model, **kwargs)
    if quantised and not plan.sharded:
        # Sharded, this is skipped (as TRL does): its fp32 upcast of the unquantised weights
        # would leave units of mixed dtype that FSDP cannot flatten; get_peft_model freezes the
        # base either way, and the Trainer turns checkpointing on.
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=plan.checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def with_lora(model, s: TrainSettings):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=s.target_module_list(),
        modules_to_save=s.modules_to_save_list(),
        ensure_weight_tying=bool(s.modules_to_save_list()),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def file_digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"path": str(path), "sha256": h.hexdigest(), "bytes": path.stat().st_size}


def hardware() -> str:
    import torch

    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"{torch.cuda.device_count()} x {', '.join(sorted(names))}"
    return f"CPU ({os.cpu_count()} cores, {platform.machine()})"


def training_arguments(s: TrainSettings, plan: Plan, *, has_eval: bool, **overrides: Any):
    """The Trainer's arguments for these settings; `overrides` (e.g. save_strategy="no" for the
    benchmark) replace any of them."""
    from transformers import TrainingArguments

    out = Path(s.out) / CHECKPOINTS
    cuda = plan.device == "cuda"
    kwargs: dict[str, Any] = dict(
        output_dir=str(out),
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        learning_rate=s.lr,
        lr_scheduler_type=s.scheduler,
        warmup_steps=s.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=s.weight_decay,
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        logging_steps=s.logging_steps,
        logging_first_step=True,
        # Off: the Trainer would log a NaN or inf step loss as the mean of the others, hiding the
        # fp16 overflow the loss guard (engine/stages/train/loss_guard.py) must stop on.
        logging_nan_inf_filter=False,
        save_strategy="steps" if s.save_steps else "epoch",
        save_total_limit=s.save_total_limit,
        eval_strategy=("steps" if s.eval_steps else "epoch") if has_eval else "no",
        bf16=cuda and plan.dtype == "bfloat16",
        fp16=cuda and plan.dtype == "float16",
        report_to=s.trackers() or "none",
        # The trackers' run name: the run directory's (a pipeline run's id), else the output folder's.
        run_name=Path(s.run_dir or s.out).resolve().name,
        seed=s.seed,
        data_seed=s.seed,
        use_cpu=not cuda,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        dataloader_num_workers=0,
        optim="adamw_torch",
    )
    if "logging_dir" in TrainingArguments.__dataclass_fields__:  # transformers 4.x
        kwargs["logging_dir"] = str(tensorboard_dir(s))
    if s.save_steps:
        kwargs["save_steps"] = s.save_steps
    if s.eval_steps and has_eval:
        kwargs["eval_steps"] = s.eval_steps
    if plan.checkpointing:
        # transformers 5 renamed it; older 5.x and 4.x only know the first name. Non-reentrant:
        # the frozen base's inputs need no requires_grad hook for the adapters' gradients to flow.
        fields = TrainingArguments.__dataclass_fields__
        name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
        kwargs[name] = True
        kwargs[f"{name}_kwargs"] = {"use_reentrant": False}
    if s.world_size > 1:
        kwargs["ddp_backend"] = "nccl" if cuda else "gloo"
        kwargs["ddp_find_unused_parameters"] = False
    if s.fsdp:
        kwargs["fsdp"] = s.fsdp
    if s.deepspeed:
        kwargs["deepspeed"] = s.deepspeed
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def last_checkpoint(out: str | Path) -> str | None:
    """The newest COMPLETE checkpoint: a run killed while saving leaves a folder without
    trainer_state.json (written last), which resuming from would crash on; it is passed over."""
    folder = Path(out) / CHECKPOINTS
    if not folder.is_dir():
        return None
    steps = []
    for path in folder.glob("checkpoint-*"):
        suffix = path.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            steps.append((int(suffix), path))
    return str(max(steps)[1]) if steps else None


def quiet_libraries() -> None:
    """Keep headless output to our lines: no weight-loading bars, no library deprecation chatter,
    no bitsandbytes note about an optional hub kernel (the hub is out of reach anyway)."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*deprecated and will be removed in v6", category=FutureWarning)


@dataclass
class Inputs:
    """The checked plan, the tokenizer and the encoded data: all that bad input can fail."""

    plan: Plan
    tokenizer: Any
    chat: bool
    train_enc: Any
    val_enc: Any
    started: float
    probes: Any = None  # a probe.ProbeSet when `probe_every` is set


def prepare(s: TrainSettings) -> Inputs:
    """Check the settings, read and encode the data: every bad-input error is raised here, before
    the caller opens the event log or writes anything (a failed start leaves no trace)."""
    from engine.core.prompts import use_chat_template
    from engine.stages.export import load_tokenizer
    from engine.stages.train.data import encode_pairs, read_pairs

    plan = check_inputs(s)
    started = time.time()
    train_pairs = read_pairs(plan.train_file)  # the data first: cheaper than loading a tokenizer
    val_pairs = read_pairs(plan.val_file) if plan.val_file else None
    tokenizer = load_tokenizer(s.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    chat = use_chat_template(tokenizer, s.chat_template)
    train_enc = encode_pairs(train_pairs, tokenizer, max_seq_len=s.max_seq_len, chat=chat)
    val_enc = encode_pairs(val_pairs, tokenizer, max_seq_len=s.max_seq_len, chat=chat) if val_pairs is not None else None
    probes = None
    if s.probe_every:
        from engine.stages.train.probe import longest_answer, probe_set

        probes = probe_set(plan.val_file, tokenizer, chat=chat, count=s.probe_prompts,
                           longest_answer=longest_answer(train_enc.examples), max_new_tokens=s.probe_max_new_tokens)
    return Inputs(plan, tokenizer, chat, train_enc, val_enc, started, probes)


def _probes(s: TrainSettings) -> list[dict[str, Any]] | None:
    """The probes of this training (earlier segments' too, after a resume); None when off."""
    if not s.probe_every:
        return None
    from engine.stages.train.probe import read_probes

    keep = ("step", "prompts", "valid", "complete", "valid_rate", "mean", "max_new_tokens")
    return [{k: row.get(k) for k in keep} for row in read_probes(s.out)]


def train(s: TrainSettings, events: Any, *, echo: Any = None, inputs: Inputs | None = None) -> dict[str, Any]:
    """Run (or resume) one training; write adapter, tokenizer, history, model card."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, set_seed
    from transformers.trainer_callback import PrinterCallback

    from engine.stages.train.callback import EventsCallback
    from engine.stages.train.card import write_model_card
    from engine.stages.train.data import ListDataset
    from engine.stages.train.loss_guard import LossGuard
    from engine.stages.train.ranks import test_hooks

    inputs = inputs or prepare(s)
    plan, tokenizer, chat = inputs.plan, inputs.tokenizer, inputs.chat
    train_enc, val_enc, started = inputs.train_enc, inputs.val_enc, inputs.started
    set_seed(s.seed)
    if train_enc.truncated:
        events.warning(f"{train_enc.truncated} training answers were cut at --max-seq-len {s.max_seq_len}", code="truncated")

    # The arguments first: they start the process group, pick this rank's GPU and, for ZeRO-3,
    # hold the DeepSpeed config that makes from_pretrained load the weights sharded.
    args = training_arguments(s, plan, has_eval=val_enc is not None)
    model = with_lora(load_base(s, plan), s)
    trainable, total = model.get_nb_trainable_parameters()
    callback = EventsCallback(events, echo=echo)
    callbacks: list[Any] = [callback, LossGuard(plan.dtype), *test_hooks()]
    if inputs.probes is not None:
        from engine.stages.train.probe import ProbeCallback

        callbacks.append(ProbeCallback(events, tokenizer, inputs.probes, every=s.probe_every, chat=chat, out=s.out,
                                       resume=s.resume, echo=echo))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ListDataset(train_enc.examples),
        eval_dataset=ListDataset(val_enc.examples) if val_enc else None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # its raw dicts would duplicate our step lines
    point_trackers(trainer, s)
    resume_from = last_checkpoint(s.out) if s.resume else None
    if resume_from:
        events.log(f"resuming from {resume_from}")
    result = trainer.train(resume_from_checkpoint=resume_from)
    duration = time.time() - started

    # Every rank: under FSDP / ZeRO-3 the adapter is gathered from the shards (a collective),
    # and only then written, by rank 0 alone.
    trainer.save_model(s.out)
    info: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        out = Path(s.out)
        tokenizer.save_pretrained(out)
        history = [row for row in trainer.state.log_history]
        atomic_write_json(out / "loss_history.json", history)
        atomic_write_json(out / "training_args.json", {"po_tui": s.model_dump(mode="json"), "transformers": args.to_dict()})
        losses = [row["loss"] for row in history if "loss" in row]
        evals = [row["eval_loss"] for row in history if "eval_loss" in row]
        info = {
            "base_model": s.base_model,
            "data": file_digest(plan.train_file),
            "val_data": file_digest(plan.val_file) if plan.val_file else None,
            "train_examples": len(train_enc.examples),
            "val_examples": len(val_enc.examples) if val_enc else 0,
            "truncated_answers": train_enc.truncated,
            "train_tokens": train_enc.tokens,
            "prompt_format": {"chat_template": chat, "max_seq_len": s.max_seq_len},
            "hyperparameters": {
                k: getattr(s, k)
                for k in (
                    "lora_r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "epochs", "max_steps", "batch_size",
                    "grad_accum", "lr", "scheduler", "warmup_ratio", "max_seq_len", "load_4bit", "load_8bit", "seed",
                )
            } | {"gradient_checkpointing": plan.checkpointing},  # as resolved for the device
            "compute_dtype": plan.dtype,
            "sharded": plan.sharded,
            "parameters": {"trainable": trainable, "total": total},
            "steps": trainer.state.global_step,
            "resumed_from": resume_from,
            "loss": {
                "first": losses[0] if losses else None,
                "final": losses[-1] if losses else None,
                "mean": sum(losses) / len(losses) if losses else None,
                "final_eval": evals[-1] if evals else None,
            },
            "probes": _probes(s),
            "train_runtime_s": result.metrics.get("train_runtime"),
            "duration_s": round(duration, 2),
            "hardware": hardware(),
            "world_size": s.world_size,
            "torch": torch.__version__,
            "finished_at": utc_stamp(),
        }
        atomic_write_json(out / RUN_INFO, info)
        write_model_card(out)
        events.artifact(str(out), "adapter")
    return info
