"""`po-tui train`: LoRA / QLoRA on prep's output, with events, resume and multi-process launch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.commands.settingsflags import add_settings_flags, resolve_settings
from engine.errors import InputError, StageFailed
from engine.stages.train.launch import SETTINGS_FILE
from engine.stages.train.settings import TrainSettings
from engine.store.inputfile import read_json
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
    from engine.stages.train.device import cuda_count
    from engine.stages.train.launch import launch_plan, run_child, write_settings
    from engine.stages.train.runner import RUN_INFO, check_inputs
    from engine.stages.train.worker import run_worker

    settings = resolve_settings(TrainSettings, args, section="train")
    for field in ("data", "out"):  # optional in a pipeline config (the engine sets them), not here
        if not getattr(settings, field):
            raise InputError("required", field=f"--{field}")
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
