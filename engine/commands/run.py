"""`po-tui run`: drive a pipeline config through the engine: in the cockpit, headless, detached, or resumed.

On a terminal without --headless, the engine starts detached (engine/pipeline/launch.py) and the
cockpit follows it: quitting the cockpit can leave the run going or cancel it. Without a cockpit
(`python -m engine run`, engine/commands/__init__.py) it runs headless.

Exit codes follow the run: 0 the gate passed, 1 it failed, 2 bad input or a failed stage,
130 cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from engine.commands import Cockpit, argtypes, can_show_cockpit, cockpit_of
from engine.core.inert import one_line
from engine.errors import InputError

EXIT_PASS, EXIT_FAIL, EXIT_ERROR, EXIT_CANCELLED = 0, 1, 2, 130


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="run a pipeline config in the cockpit (or --headless, --detach, --resume RUN_DIR)",
        description=(
            "Validate CONFIG, plan the jobs and run each as a subprocess with its own event log in a run "
            "directory (docs/runs.md). Exit 0 when the gate passes, 1 when it fails, 2 on error."
        ),
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="pipeline config YAML (`po-tui init` writes one)")
    p.add_argument("--headless", action="store_true", help="no cockpit: progress on stdout (rich on a terminal, plain lines otherwise)")
    p.add_argument("--detach", action="store_true", help="with --headless: run in the background, print the run directory, exit")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR: unchanged finished jobs are skipped")
    p.add_argument("--retry-failed", action="store_true", help="with --resume: run the failed stage again and continue")
    p.add_argument("--runs-dir", metavar="DIR",
                   help="where new run directories go (default: $PO_TUI_RUNS_DIR, else the config's runs_dir, else ./runs)")
    p.add_argument("--run-dir", metavar="DIR", help="the new run's directory (default: RUNS_DIR/<run id>)")
    p.add_argument("--grace", type=argtypes.seconds, default=10.0, metavar="S",
                   help="seconds between SIGTERM and SIGKILL on cancel (default: 10)")
    p.add_argument("--engine-mode", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def prepare(args: argparse.Namespace):
    """(run_dir, config, resuming) — validating everything before a job starts."""
    from engine.pipeline.config import load_config
    from engine.pipeline.launch import check_resumable
    from engine.pipeline.manifest import new_run_id
    from engine.pipeline.runner import create_run
    from engine.pipeline.runsdir import runs_dir
    from engine.runlog.gpu_sampler import jobs_environment
    from engine.store.outpath import check_out_dir

    if args.resume:
        run_dir = Path(args.resume)
        check_resumable(run_dir)
        if args.config:
            raise InputError("resume uses the run's own config.yaml; edit it there to change settings", field="CONFIG")
        config = load_config(run_dir / "config.yaml")
        jobs_environment(config.monitor.gpu_sample_s)  # a bad PO_TUI_GPU_SAMPLE_S: refused before anything starts
        return run_dir, config, True
    if args.retry_failed:
        raise InputError("only with --resume RUN_DIR", field="--retry-failed")
    if not args.config:
        raise InputError("a pipeline config is required (or --resume RUN_DIR); `po-tui init` writes one", field="CONFIG")
    config = load_config(args.config)
    jobs_environment(config.monitor.gpu_sample_s)  # ... and before a run directory is created
    run_dir = Path(args.run_dir) if args.run_dir else runs_dir(args.runs_dir, configured=config.runs_dir, project=None) / new_run_id()
    check_out_dir(run_dir, field="--run-dir" if args.run_dir else "--runs-dir")
    create_run(run_dir, config)
    return run_dir, config, False


def follow(run_dir: Path, cockpit: Cockpit) -> int:
    """The TUI mode: the engine runs detached, the cockpit follows it and owns its controls.

    Once the run has ended the exit code is the headless one; left running, 0.
    """
    from engine.pipeline.manifest import read_manifest

    cockpit.attach(run_dir, owned=True)
    manifest = read_manifest(run_dir) or {}
    final = str(manifest.get("state"))
    if final in ("succeeded", "failed", "cancelled"):
        return exit_code(run_dir, final, manifest)
    return EXIT_PASS


def print_decisions(engine, out) -> None:
    decisions = engine.decisions()
    skip = [d.job for d in decisions if d.action == "skip"]
    redo = [f"{d.job} ({d.action}: {d.reason})" for d in decisions if d.action != "skip"]
    out.write(f"resume {engine.run_dir}: skip {', '.join(skip) or 'nothing'}\n")
    out.write(f"resume {engine.run_dir}: run {'; '.join(redo) or 'nothing'}\n")
    out.flush()


def drive(engine, *, tty: bool) -> str:
    """Run the engine with the headless printer subscribed; the final run state."""
    from engine.pipeline.headless import PlainPrinter, RichPrinter

    if tty:
        with RichPrinter() as printer:
            engine.add_listener(printer)
            return asyncio.run(engine.run())
    engine.add_listener(PlainPrinter(sys.stdout))
    return asyncio.run(engine.run())


def verdict_of(manifest: dict) -> str:
    """The run's gate verdict, `fail` when it has none (a run without a verdict proves nothing)."""
    return str((manifest.get("gate") or {}).get("verdict", "fail"))


def run_exit_code(final: str, manifest: dict) -> int:
    """What a run that ended exits with (`run` and `demo` alike): 0 succeeded and the gate passed,
    1 succeeded and the gate failed, 2 a failed stage, 130 cancelled."""
    if final == "succeeded":
        return EXIT_PASS if verdict_of(manifest) == "pass" else EXIT_FAIL
    return EXIT_CANCELLED if final == "cancelled" else EXIT_ERROR


def exit_code(run_dir: Path, final: str, manifest: dict) -> int:
    if final == "succeeded":
        print(one_line(f"run {run_dir}: succeeded; report {run_dir / 'report.md'}; gate verdict {verdict_of(manifest).upper()}"))
    else:
        advice = "" if final == "cancelled" else f"; fix it, then `po-tui run --resume {run_dir} --retry-failed`"
        print(one_line(f"run {run_dir}: {final}" + advice))
    return run_exit_code(final, manifest)


def run(args: argparse.Namespace) -> int:
    from engine.pipeline.runner import Engine

    if args.detach and not args.headless:
        raise InputError("--detach needs --headless", field="--detach")
    cockpit = cockpit_of(args)
    tui = not args.headless and cockpit is not None and can_show_cockpit()
    if not args.headless and not tui:
        why = "no terminal for the cockpit" if not can_show_cockpit() else "no cockpit in `python -m engine`"
        print(f"po-tui run: {why}: running headless")
    run_dir, config, resuming = prepare(args)
    if args.detach or tui:
        from engine.pipeline.launch import spawn_engine

        if resuming:
            Engine(run_dir, config, resume=True, retry_failed=args.retry_failed).decisions()  # refuse before detaching
        spawn_engine(run_dir, retry_failed=args.retry_failed, grace_s=args.grace)
        if args.detach:
            print(run_dir)
            return EXIT_PASS
        return follow(run_dir, cockpit)
    engine = Engine(run_dir, config, resume=resuming, retry_failed=args.retry_failed, grace_s=args.grace,
                    mode=args.engine_mode or "headless")
    print(one_line(f"run directory: {run_dir}"), flush=True)
    if resuming:
        print_decisions(engine, sys.stdout)
    final = drive(engine, tty=sys.stdout.isatty() and os.environ.get("TERM") != "dumb")
    return exit_code(run_dir, final, engine.manifest)
