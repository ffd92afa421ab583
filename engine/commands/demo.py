"""`po-tui demo`: the engine running an embedded config, offline on CPU.

Synthetic concepts, the synthetic teacher (with latency and injected defects), prep, a tiny
model built locally, a short LoRA training, the merge, the teacher, baseline and student
evaluated on held-out concepts, the `demo` gate and the report — the same engine, run directory
and event logs as `po-tui run`, so `po-tui status` reads a demo like any run.

The demo is a proof, so its exit code is a run's: 0 only when every stage succeeded and the demo
gate passed, 1 when the gate failed, 2 when a stage failed, 130 when cancelled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.commands import argtypes, can_show_cockpit, cockpit_of
from engine.core.inert import one_line
from engine.pipeline.config import PipelineConfig, parse_config
from engine.pipeline.headless import headline
from engine.runlog.state import RunState
from engine.store.outpath import check_out_dir


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="run the pipeline offline on CPU (synthetic data) into a fresh run directory",
        description="Run the whole pipeline offline through the engine, each stage a subprocess job with its own event log.",
    )
    p.add_argument("--out", metavar="DIR", help="run directory (default: artifacts/demo/<run id>)")
    p.add_argument("--headless", action="store_true", help="no cockpit: progress on stdout (the default without a terminal)")
    p.add_argument("--count", type=argtypes.positive_int, default=320, help="concepts to generate (default: %(default)s)")
    p.add_argument("--seed", type=argtypes.seed, default=7, help="seed for every stage (default: %(default)s)")
    p.add_argument("--train-steps", type=argtypes.positive_int, default=300, metavar="N",
                   help="LoRA steps on the tiny model (default: %(default)s)")
    p.add_argument("--latency", type=argtypes.seconds, default=0.2, metavar="S",
                   help="synthetic teacher latency per call (default: %(default)s)")
    p.set_defaults(func=run)


def demo_config(count: int = 320, seed: int = 7, train_steps: int = 300, latency: float = 0.2) -> PipelineConfig:
    """The embedded config: every stage offline, small enough for 2 CPU cores in a few minutes.

    The training recipe was found by measurement (docs/BENCHMARKS.md, "Learning on CPU"): the
    compact answers, a quiet tiny base (weights at 0.02) whose tied embeddings train beside a
    rank-64 adapter, 300 steps of batch 4. The student then writes valid, concept-specific
    answers on held-out concepts, while the untrained baseline writes none.
    """
    return parse_config({
        "concepts": {"count": count, "seed": seed, "conflict_rate": 0.2},
        "teacher": {
            "provider": "synthetic", "max_records": max(1, count * 3 // 4), "concurrency": 8, "seed": seed,
            "low_score_retries": 1,
            # A teacher that takes its time and makes mistakes, so every retry path shows; its
            # compact answers keep every key and cite the ids, in ~330 tiny-tokenizer tokens.
            "synthetic": {"latency_s": latency, "latency_jitter_s": latency / 2, "defect_rate": 0.15, "style": "compact"},
        },
        "prep": {"min_score": 0.80, "val_fraction": 0.2, "seed": seed, "dedupe": True},
        "tiny_model": {"build": True, "seed": seed, "style": "compact", "vocab_size": 4096, "init_range": 0.02},
        "train": {"lora_r": 64, "lora_alpha": 128, "lora_dropout": 0.0, "modules_to_save": "embed_tokens", "lr": 5e-3,
                  "batch_size": 4, "max_steps": train_steps, "logging_steps": 10, "save_steps": max(1, train_steps // 2),
                  "probe_every": train_steps // 3 if train_steps >= 30 else None, "probe_prompts": 4, "seed": seed},
        "export": {"merge": True},
        # Room for a whole compact answer (~330 tokens); no corrective retry, to keep the demo short.
        "eval": {"max_samples": 24, "batch_size": 8, "max_new_tokens": 400, "retries": 0, "seed": seed, "teacher_reference": True},
        # What the demo proves: valid answers, near the teacher, far above the untrained baseline,
        # grounded in each concept (clearly above the teacher's most common answer copied everywhere).
        "gate": {"preset": "demo"},
    })


def state_table(state: RunState) -> Table:
    table = Table(title="run summary", title_justify="left")
    for column in ("job", "state", "progress", "time", "summary"):
        table.add_column(column)
    for name in state.order:
        job = state.jobs[name]
        done, total = job.progress_done, job.progress_total
        progress = f"{done:g}/{total:g} {job.progress_unit or ''}" if done is not None and total else "-"
        elapsed = f"{job.duration_s:.2f}s" if job.duration_s is not None else "-"
        table.add_row(Text(name), Text(job.state), Text(progress), Text(elapsed), Text(headline(job.summary)))
    return table


def run(args: argparse.Namespace) -> int:
    from engine.commands.run import drive, run_exit_code, verdict_of
    from engine.pipeline.manifest import new_run_id
    from engine.pipeline.runner import Engine, create_run

    config = demo_config(args.count, args.seed, args.train_steps, args.latency)
    run_dir = check_out_dir(Path(args.out or Path("artifacts") / "demo" / new_run_id()))
    create_run(run_dir, config)
    console = Console(stderr=True)
    console.print(Text(one_line(f"po-tui demo: run directory {run_dir}")))
    cockpit = cockpit_of(args)
    if not args.headless and cockpit is not None and can_show_cockpit():
        from engine.pipeline.launch import spawn_engine
        from engine.pipeline.manifest import read_manifest

        spawn_engine(run_dir, mode="demo")  # detached: the cockpit follows it, quitting asks whether to stop it
        if cockpit.attach(run_dir, owned=True) == "detach":
            return 0
        manifest = read_manifest(run_dir) or {}
        final = str(manifest.get("state"))
    else:
        engine = Engine(run_dir, config, mode="demo")
        final = drive(engine, tty=sys.stdout.isatty())
        manifest = engine.manifest
    state = RunState.from_run_dir(run_dir)
    console.print(state_table(state))
    console.print(Text(one_line(f"outputs and event logs: {run_dir}")))
    if final not in ("succeeded", "failed", "cancelled"):
        return 0  # left running from the cockpit: nothing is decided yet (as `po-tui run`)
    if final != "succeeded":
        console.print(Text(f"po-tui demo: run {final}", style="bold red"))
        return run_exit_code(final, manifest)
    verdict = verdict_of(manifest)
    console.print(Text(one_line(f"report: {run_dir / 'report.md'}  gate verdict: {verdict.upper()}"),
                       style="" if verdict == "pass" else "bold red"))
    return run_exit_code(final, manifest)
