"""`po-tui train`: LoRA / QLoRA on prep's output, with events, resume and multi-process launch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.commands import argtypes
from engine.configfile import load_section, validate
from engine.errors import InputError, StageFailed
from engine.stages.train.launch import SETTINGS_FILE
from engine.stages.train.settings import TrainSettings
from engine.store.inputfile import read_json
from engine.store.lock import output_lock

# flag -> settings field; flags default to None so only what the user typed overrides the config.
FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--data", {"metavar": "DIR", "help": "prep output (train.jsonl, val.jsonl) or one JSONL file"}),
    ("--base-model", {"metavar": "ID_OR_PATH", "help": "default: Qwen/Qwen2.5-7B-Instruct (local dir or HF cache)"}),
    ("--out", {"metavar": "DIR", "help": "adapter, tokenizer, checkpoints, history, model card"}),
    ("--lora-r", {"type": int, "help": "default: 32"}),
    ("--lora-alpha", {"type": float, "help": "default: 64"}),
    ("--lora-dropout", {"type": float, "help": "default: 0.05"}),
    ("--target-modules", {"help": "all-linear (default) or q_proj,k_proj,..."}),
    ("--modules-to-save", {"metavar": "NAMES", "help": "whole modules trained beside the adapter, e.g. embed_tokens (default: none)"}),
    ("--epochs", {"type": float, "help": "default: 3"}),
    ("--max-steps", {"type": int, "help": "stop after N optimizer steps (overrides --epochs)"}),
    ("--batch-size", {"type": int, "help": "per device (default: 4)"}),
    ("--grad-accum", {"type": int, "help": "default: 1"}),
    ("--lr", {"type": float, "help": "default: 1e-4"}),
    ("--scheduler", {"choices": ("cosine", "linear", "constant", "constant_with_warmup"), "help": "default: cosine"}),
    ("--warmup-ratio", {"type": float, "help": "default: 0.05"}),
    ("--weight-decay", {"type": float}),
    ("--max-seq-len", {"type": int, "help": "default: 2048"}),
    ("--compute-dtype", {"choices": ("auto", "bfloat16", "float16", "float32"), "help": "default: bf16/fp16 on CUDA, fp32 on CPU"}),
    ("--gradient-checkpointing", {"nargs": "?", "const": "on", "choices": ("auto", "on", "off"),
                                  "help": "activation checkpointing (default: auto = on for CUDA, off on CPU; the bare flag: on)"}),
    ("--logging-steps", {"type": int, "help": "default: 10"}),
    ("--eval-steps", {"type": int, "help": "evaluate every N steps (default: each epoch)"}),
    ("--save-steps", {"type": int, "help": "checkpoint every N steps (default: each epoch)"}),
    ("--save-total-limit", {"type": int}),
    ("--seed", {"type": argtypes.seed}),
    ("--gpus", {"type": int, "help": "N > 1 runs DDP through torchrun"}),
    ("--cpu-processes", {"type": int, "help": "N CPU ranks on the gloo backend (testing the launch path)"}),
    ("--fsdp", {"help": "passed to TrainingArguments.fsdp, e.g. 'full_shard auto_wrap'"}),
    ("--deepspeed", {"metavar": "FILE", "help": "DeepSpeed config passed to TrainingArguments"}),
    ("--chat-template", {"choices": ("auto", "on", "off"), "help": "use the tokenizer's chat template (default: when it has one)"}),
    ("--probe-every", {"type": int, "metavar": "N", "help": "every N steps, answer held-out prompts greedily and score them (default: off)"}),
    ("--probe-prompts", {"type": int, "metavar": "K", "help": "held-out prompts per probe, the first K of val.jsonl (default: 4)"}),
    ("--probe-max-new-tokens", {"type": int, "metavar": "N", "help": "answer limit of a probe (default: 1.25 x the longest training answer)"}),
]
SWITCHES = ("--load-4bit", "--load-8bit", "--resume")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "train",
        parents=[common],
        help="train a LoRA / QLoRA student on prep's output",
        description=(
            "LoRA or QLoRA (4-bit nf4 / 8-bit) with transformers' Trainer: loss on the answer tokens only, "
            "dynamic padding, the base's chat template, events per logging step, resumable checkpoints."
        ),
    )
    for flag, kwargs in FLAGS:
        p.add_argument(flag, default=None, **kwargs)
    for flag in SWITCHES:
        p.add_argument(flag, action="store_true", default=None)
    p.add_argument("--config", metavar="FILE", help="pipeline config (its `train:` section) or a train settings file")
    p.add_argument("--run-dir", metavar="DIR", help="event log directory (default: --out)")
    p.add_argument("--job", metavar="NAME", help="job name in the run directory (default: train)")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> TrainSettings:
    base: dict[str, Any] = {}
    path = lines = None
    prefix: tuple = ()
    if args.config:
        base, lines, prefix = load_section(args.config, "train")
        path = args.config
    for flag, _ in FLAGS:
        dest = flag[2:].replace("-", "_")
        if getattr(args, dest) is not None:
            base[dest] = getattr(args, dest)
    for flag in SWITCHES:
        dest = flag[2:].replace("-", "_")
        if getattr(args, dest):
            base[dest] = True
    for dest in ("run_dir", "job"):
        if getattr(args, dest):
            base[dest] = getattr(args, dest)
    settings = validate(TrainSettings, base, path=path, lines=lines, prefix=prefix)
    for field in ("data", "out"):
        if not getattr(settings, field):
            raise InputError("required", field=f"--{field}")
    return settings


def run(args: argparse.Namespace) -> int:
    from engine.stages.train.device import cuda_count
    from engine.stages.train.launch import launch_plan, run_child, write_settings
    from engine.stages.train.runner import RUN_INFO, check_inputs
    from engine.stages.train.worker import run_worker

    settings = settings_from(args)
    # One writer per output directory, held by this (launching) process for the whole run, from
    # before the checkpoints are looked at; child processes do not inherit it and never take it.
    with output_lock(settings.out, stage="train"):
        plan = check_inputs(settings)  # everything that can fail does so before a model is loaded
        child = launch_plan(settings, plan.device, cuda_count(), Path(settings.out) / SETTINGS_FILE)
        if child is None:
            info = run_worker(settings, echo=sys.stderr)
        else:
            write_settings(settings)
            sys.stderr.write(f"po-tui train: {child.why}\n")
            rc = run_child(child)
            if rc != 0:
                return _child_failed(settings, rc)
            info = read_json(Path(settings.out) / RUN_INFO, what="the training record")
    loss = info["loss"]
    sys.stderr.write(
        f"po-tui train: {info['steps']} steps in {info['duration_s']:.1f}s on {info['hardware']}; "
        f"loss {loss['first']:.4f} -> {loss['final']:.4f} (mean {loss['mean']:.4f})"
        + (f", eval {loss['final_eval']:.4f}" if loss.get("final_eval") is not None else "")
        + f"; adapter in {settings.out}\n"
    )
    return 0


def _child_failed(settings: TrainSettings, rc: int) -> int:
    """The child has said why on stderr (one line for bad input; torchrun its summary); a
    failure ends with the job's own error line from its event log, a cancel quietly with 130."""
    from engine.runlog.events import events_path
    from engine.runlog.tail import read_events

    if rc == 2:  # bad input: the worker's one line
        return rc
    log = events_path(settings.run_dir or settings.out, settings.job or "train")
    events = read_events(log) if log.exists() else []
    starts = [i for i, e in enumerate(events) if e["type"] == "job_started"]
    attempt = events[starts[-1]:] if starts else []
    if rc == 130 or any(e["type"] == "job_finished" and e["data"].get("state") == "cancelled" for e in attempt):
        return 130
    errors = [e["data"].get("message") for e in attempt if e["type"] == "error"]
    raise StageFailed(f"{errors[-1]} (event log: {log})" if errors else f"the training process exited with {rc} (see above)")
