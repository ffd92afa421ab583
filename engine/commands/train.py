"""`po-tui train`: LoRA / QLoRA on prep's output, with events, resume and multi-process launch."""

from __future__ import annotations

import argparse
import sys

from engine.commands.settingsflags import add_settings_flags, resolve_settings
from engine.errors import InputError
from engine.stages.train.settings import TrainSettings
from engine.store.lock import output_lock


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
    add_settings_flags(p, TrainSettings, config_help="pipeline config (its `train:` section) or a train settings file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.stages.train.launch import launch
    from engine.stages.train.runner import check_inputs
    from engine.stages.train.worker import run_worker

    settings = resolve_settings(TrainSettings, args, section="train")
    for field in ("data", "out"):  # optional in a pipeline config (the engine sets them), not here
        if not getattr(settings, field):
            raise InputError("required", field=f"--{field}")
    # One writer per output directory, held by this (launching) process for the whole run, from
    # before the checkpoints are looked at; torchrun's ranks do not inherit it and never take it.
    with output_lock(settings.out, stage="train"):
        check_inputs(settings)  # everything that can fail does so before a model is loaded
        if settings.world_size > 1:
            return launch(settings)
        info = run_worker(settings, echo=sys.stderr)
    loss = info["loss"]
    sys.stderr.write(
        f"po-tui train: {info['steps']} steps in {info['duration_s']:.1f}s on {info['hardware']}; "
        f"loss {loss['first']:.4f} -> {loss['final']:.4f} (mean {loss['mean']:.4f})"
        + (f", eval {loss['final_eval']:.4f}" if loss.get("final_eval") is not None else "")
        + f"; adapter in {settings.out}\n"
    )
    return 0
