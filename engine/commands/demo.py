"""`po-tui demo`: run the available pipeline offline on CPU, each stage a subprocess job.

Each job reports through its event log in the run directory; the summary printed at the end
is folded from those logs, exactly as `po-tui status` and the TUI will read a real run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.runlog.state import RunState


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="run the pipeline offline on CPU (synthetic data) into a fresh run directory",
        description="Run every available stage offline, each as a subprocess job with its own event log.",
    )
    p.add_argument("--out", metavar="DIR", help="run directory (default: artifacts/demo/run-<timestamp>)")
    p.add_argument("--count", type=int, default=24, help="concepts to generate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7, help="seed for every stage (default: %(default)s)")
    p.add_argument("--train-steps", type=int, default=40, metavar="N", help="LoRA steps on the tiny model (default: %(default)s)")
    p.set_defaults(func=run)


def newest(folder: Path, tag: str) -> Path:
    found = sorted(folder.glob(f"{tag}_*.json"))
    if not found:
        raise FileNotFoundError(f"no {tag} results in {folder}")
    return found[-1]


# The gate's exit code 1 is a verdict (the student failed), not a failed job: the run goes on.
VERDICT_JOBS = {"gate": (0, 1)}


def plan(run_dir: Path, count: int, seed: int, train_steps: int = 40) -> list[tuple[str, list[str] | Callable[[], list[str]]]]:
    """(job, po-tui arguments, or a function giving them when the job starts) for each stage, in order."""
    concepts = str(run_dir / "concepts.jsonl")
    teacher_dir = run_dir / "teacher"
    eval_dir = run_dir / "eval"
    evaluate = ["eval", "--dataset", str(run_dir / "data" / "val.jsonl"), "--out", str(eval_dir), "--max-samples", "0"]
    # The tiny student has not learnt the format in a few CPU steps: short answers, one retry.
    local = ["--base-model", str(run_dir / "tiny-model"), "--batch-size", "8", "--max-new-tokens", "128", "--retries", "1"]
    return [
        ("concepts", ["concepts", "--count", str(count), "--seed", str(seed), "--conflict-rate", "0.2", "-o", concepts]),
        (
            "teacher",
            [
                "teacher", "--provider", "synthetic", "--concepts", concepts, "--out", str(teacher_dir),
                "--max-records", str(max(1, count * 2 // 3)), "--concurrency", "8", "--seed", str(seed),
                "--low-score-retries", "1", "--synthetic-latency", "0.05",
            ],
        ),
        (
            "score",
            ["score", str(teacher_dir / "po_teacher_dataset.jsonl"), "--metric", "po-v1", "-o", str(run_dir / "teacher_scores_po-v1.jsonl")],
        ),
        (
            "prep",
            ["prep", "--teacher", str(teacher_dir / "po_teacher_dataset.jsonl"), "--out", str(run_dir / "data"),
             "--min-score", "0.80", "--val-fraction", "0.25", "--seed", str(seed), "--dedupe"],
        ),
        ("tiny-model", ["make-tiny-model", "--out", str(run_dir / "tiny-model"), "--seed", str(seed)]),
        (
            "train",
            # The tiny model's recipe (r8/alpha16 on all linear layers, lr 1e-2): short, to show the
            # loss moving, the events and the checkpoint; not enough steps to learn the format.
            ["train", "--data", str(run_dir / "data"), "--base-model", str(run_dir / "tiny-model"),
             "--out", str(run_dir / "student"), "--lora-r", "8", "--lora-alpha", "16", "--lr", "1e-2",
             "--batch-size", "4", "--max-steps", str(train_steps), "--logging-steps", "5",
             "--save-steps", str(max(1, train_steps // 2)), "--seed", str(seed)],
        ),
        (
            "export",
            ["export", "merge", "--adapter", str(run_dir / "student"), "--base-model", str(run_dir / "tiny-model"),
             "--out", str(run_dir / "student-merged")],
        ),
        # Held-out concepts (prep's val.jsonl, which carries the teacher's answers for the diff view).
        ("eval-teacher", [*evaluate, "--provider", "synthetic", "--tag", "teacher", "--seed", str(seed)]),
        ("eval-baseline", [*evaluate, *local, "--tag", "baseline"]),
        ("eval-student", [*evaluate, *local, "--adapter", str(run_dir / "student"), "--tag", "student"]),
        # A callable: the results files are named when the evals finish.
        ("gate", lambda: ["gate", str(newest(eval_dir, "baseline")), str(newest(eval_dir, "student"))]),
        ("report", ["report", str(run_dir), "-o", str(run_dir / "report.md")]),
    ]


def run_job(run_dir: Path, job: str, argv: list[str]) -> int:
    """One stage as a subprocess in its own process group, stdout/stderr kept in the run dir."""
    with open(run_dir / f"{job}.stdout.log", "wb") as out, open(run_dir / f"{job}.stderr.log", "wb") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "engine", *argv, "--run-dir", str(run_dir), "--job", job],
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    return proc.returncode


HEADLINE_KEYS = ("count", "conflicts", "accepted", "rejected", "requests", "retries", "stop_reason", "metric", "n", "mean", "train", "val", "invalid",
                "parameters", "steps", "final_loss", "final_eval_loss", "dtype",
                "valid_rate", "verdict", "ratio")


def headline(summary: dict) -> str:
    """The few numbers of a job summary worth a table cell."""
    parts = []
    for key in HEADLINE_KEYS:
        value = summary.get(key)
        if value is None:
            continue
        parts.append(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts)


def state_table(state: RunState) -> Table:
    table = Table(title="run summary", title_justify="left")
    for column in ("job", "state", "progress", "time", "summary"):
        table.add_column(column)
    for name in state.order:
        job = state.jobs[name]
        done, total = job.progress_done, job.progress_total
        progress = f"{done:g}/{total:g} {job.progress_unit or ''}" if done is not None and total else "-"
        elapsed = f"{job.duration_s:.2f}s" if job.duration_s is not None else "-"
        summary = headline(job.summary)
        table.add_row(Text(name), Text(job.state), Text(progress), Text(elapsed), Text(summary))
    return table


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    run_dir = Path(args.out or Path("artifacts") / "demo" / time.strftime("run-%Y%m%d-%H%M%S"))
    run_dir.mkdir(parents=True, exist_ok=True)
    console.print(Text(f"po-tui demo: run directory {run_dir}"))
    status = 0
    for job, argv in plan(run_dir, args.count, args.seed, args.train_steps):
        console.print(Text(f"  {job}: running"))
        code = run_job(run_dir, job, argv() if callable(argv) else argv)
        if code not in VERDICT_JOBS.get(job, (0,)):
            tail = (run_dir / f"{job}.stderr.log").read_text(errors="replace").strip().splitlines()[-5:]
            console.print(Text(f"  {job}: failed (exit {code})", style="bold red"))
            for line in tail:
                console.print(Text(f"    {line}"))
            status = 1
            break
    state = RunState.from_run_dir(run_dir)
    console.print(state_table(state))
    console.print(Text(f"outputs and event logs: {run_dir}"))
    gate = state.jobs.get("gate")
    if status == 0 and gate is not None and (run_dir / "report.md").exists():
        verdict = str(gate.summary.get("verdict", "?")).upper()
        console.print(Text(f"report: {run_dir / 'report.md'}  gate verdict: {verdict}"))
    return status
