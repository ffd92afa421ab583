"""`po-tui teacher`: generate, rescore or summarise a scored teacher dataset."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from engine.commands.settingsflags import add_settings_flags, resolve_settings
from engine.core.numbers import percent
from engine.core.records import Concept, read_concept_list
from engine.core.timefmt import utc_stamp
from engine.errors import InputError, StageFailed
from engine.runlog.job import add_job_args, job_events
from engine.stages.teacher.phasecount import phase_line
from engine.stages.teacher.pricing import PriceTable, load_prices
from engine.stages.teacher.settings import DEFINING, TeacherSettings
from engine.stages.teacher.store import TeacherStore
from engine.stages.teacher.tally import TeacherTally
from engine.store.lock import output_lock
from engine.store.outpath import check_out_dir


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "teacher",
        parents=[common],
        help="generate a scored teacher dataset (Gemini, Vertex, OpenAI-compatible, synthetic)",
        description=(
            "Generate Product Owner answers with a teacher model, score them, keep those above "
            "--min-score. Every raw answer is kept in DIR/responses.jsonl before it is parsed; "
            "--resume continues without repeating or duplicating anything."
        ),
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--rescore", action="store_true", help="rebuild DIR's dataset from responses.jsonl, no API call")
    mode.add_argument("--stats", metavar="FILE", help="summarise a teacher dataset and exit")
    mode.add_argument(
        "--cancel-batches", action="store_true",
        help="cancel the open Gemini batch jobs DIR's batch_jobs.jsonl records (a teacher killed before it could) and exit",
    )
    p.add_argument("--concepts", metavar="FILE", help="concepts JSONL (any layout carrying concepts)")
    p.add_argument("--out", metavar="DIR", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue the run in DIR")
    p.add_argument("--allow-change", action="store_true", help="resume although dataset-defining settings changed")
    p.add_argument("--json", action="store_true", help="with --stats: print JSON")
    add_settings_flags(p, TeacherSettings, config_help="pipeline config (its `teacher:` section) or a teacher settings file")
    add_job_args(p)
    p.set_defaults(func=run)


def _warn(message: str) -> None:
    sys.stderr.write(f"po-tui teacher: warning: {message}\n")


def _settings(args: argparse.Namespace) -> TeacherSettings:
    """The settings (config file < typed flags), with the model the provider resolves to."""
    settings = resolve_settings(TeacherSettings, args, section="teacher")
    try:
        if not settings.phases:  # a planned run names a model per phase
            settings.resolved_model()
    except ValueError as exc:
        raise InputError(str(exc), field="--model") from None
    # A planned run's budgets are each phase's (its own or the run's), for the phase's model.
    plan = [settings.phase_settings(p) for p in settings.phases] if settings.phases else [settings]
    for n, warning in enumerate((s.thinking_budget_warning() for s in plan), 1):
        if warning:
            _warn(f"phase {n}: {warning}" if settings.phases else warning)
    return settings


def concept_list(path: str) -> list[tuple[str, Concept]]:
    """(id, concept) in file order; the same id twice with different content is an error."""
    seen: dict[str, Concept] = {}
    out: list[tuple[str, Concept]] = []
    for concept in read_concept_list(path, warn=_warn, for_prompts=True):
        cid = concept.concept_id or concept.key
        known = seen.get(cid)
        if known is not None:
            if known.key != concept.key:
                raise InputError(f"concept_id {cid!r} appears twice with different content", path=path, field="concept_id")
            _warn(f"{path}: concept {cid} listed twice: used once")
            continue
        seen[cid] = concept
        out.append((cid, concept))
    if not out:
        raise InputError("no concepts", path=path)
    return out


def check_resume(store: TeacherStore, settings: TeacherSettings, args: argparse.Namespace) -> dict[str, Any]:
    """The manifest to write for this segment; refuses a silent change of what the dataset is."""
    current = settings.fingerprint()
    manifest = store.read_manifest()
    if store.exists() and not args.resume:
        raise InputError("already holds a teacher run: pass --resume to continue it, or choose another --out", path=store.dir)
    if manifest is None:
        manifest = {"version": 1, "segments": []}
    previous = manifest.get("fingerprint")
    if args.resume and previous:
        changed = [f"{k} {previous.get(k)!r} -> {current.get(k)!r}" for k in DEFINING if previous.get(k) != current.get(k)]
        if changed and not args.allow_change:
            raise InputError(
                "dataset-defining settings changed since the last run: " + "; ".join(changed)
                + " (pass --allow-change to continue on purpose)",
                path=store.manifest_path,
            )
    manifest["fingerprint"] = current
    manifest["settings"] = settings.model_dump(mode="json")
    manifest.setdefault("segments", []).append({"started_at": utc_stamp(), **current, "allow_change": bool(args.allow_change)})
    return manifest


class TerminalProgress:
    """A rich progress bar on a terminal; a plain line every few seconds otherwise (nohup, CI)."""

    def __init__(self, target: int | None) -> None:
        self.console = Console(stderr=True)
        self.tty = self.console.is_terminal
        self.target = target
        self._last = 0.0
        self.bar: Progress | None = None
        if self.tty:
            self.bar = Progress(
                TextColumn("teacher"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.bar.add_task("teacher", total=target, info="")
            self.bar.start()

    def update(self, t: TeacherTally) -> None:
        info = f"{t.rejected} rejected, {t.records_per_min():.1f}/min, ${t.cost_usd:.4f}"
        if self.bar is not None:
            self.bar.update(self.task, completed=t.accepted, info=info)
            return
        now = time.monotonic()
        if now - self._last >= 10:
            self._last = now
            target = f"/{self.target}" if self.target else ""
            sys.stderr.write(f"{time.strftime('%H:%M:%S')} teacher: {t.accepted}{target} accepted, {info}\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    target = f"/{summary['target']}" if summary.get("target") else ""
    lines = [
        f"teacher: {summary['accepted']}{target} accepted, {summary['rejected']} rejected ({summary['stop_reason']})",
        f"  {summary['requests']} requests, {summary['replayed']} replayed from responses.jsonl, {summary['retries']} retries; "
        f"acceptance {percent(summary['acceptance_rate'])}, retry success {percent(summary['retry_success_rate'])}",
        f"  {summary['records_per_min']:.1f} records/min; cost ${summary['cost_usd']:.4f} in total, ${summary['cost_usd_run']:.4f} this run"
        + (f", ${summary['cost_per_accepted_usd']:.5f} per accepted" if summary.get("cost_per_accepted_usd") is not None else "")
        + f" (prices as of {summary['prices_as_of']})",
    ]
    for ph in summary.get("per_phase") or []:
        lines.append(f"  {phase_line(ph)}")
    if summary.get("thinking_tokens"):
        lines.append(f"  {summary['output_tokens']} output tokens, {summary['thinking_tokens']} of them thinking (billed as output)")
    if summary["provider_errors"]:
        lines.append("  provider errors: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["provider_errors"].items())))
    if summary["reject_reasons"]:
        lines.append("  reject reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["reject_reasons"].items())))
    if summary.get("unpriced_requests"):
        lines.append(f"  {summary['unpriced_requests']} requests to a model without a price: counted as $0")
    if summary.get("fatal_error"):
        lines.append(f"  stopped: {summary['fatal_error']}")
    return lines


async def _generate(settings: TeacherSettings, concepts, store: TeacherStore, events, prices: PriceTable) -> dict[str, Any]:
    from engine.providers import make_provider
    from engine.stages.teacher.runner import TeacherRun

    progress = TerminalProgress(settings.max_records)
    if settings.phases:
        from engine.stages.teacher.phases import PhasedRun

        provider = None  # one per phase, made and closed by the phased run
        run: Any = PhasedRun(settings, concepts, store, make_provider, events, prices=prices, on_change=progress.update)
    else:
        provider = make_provider(settings)
        run = TeacherRun(settings, concepts, store, provider, events, prices=prices, resume=store.load(), on_change=progress.update)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, run.cancel)
    try:
        return await run.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        progress.close()
        if provider is not None:
            await provider.aclose()


def run(args: argparse.Namespace) -> int:
    if args.stats:
        from engine.stages.teacher.stats import dataset_stats, format_stats

        st = dataset_stats(args.stats, warn=_warn)
        if args.json:
            print(json.dumps(st, indent=2))
        else:
            print("\n".join(format_stats(st)))
        return 0
    if not args.out:
        raise InputError("required", field="--out")
    if args.cancel_batches:
        return cancel_batches(args.out, _settings(args))
    if args.rescore:
        from engine.stages.teacher.rescore import rescore

        settings = _settings(args)
        with output_lock(args.out, stage="teacher --rescore"):
            result = rescore(args.out, metric=settings.metric, min_score=settings.min_score, warn=_warn)
        sys.stderr.write(
            f"po-tui teacher --rescore: {result['samples']} samples from {result['responses']} stored answers -> "
            f"{result['accepted']} accepted, {result['rejected']} rejected ({settings.metric}, min-score {settings.min_score:.2f})\n"
        )
        return 0
    if not args.concepts:
        raise InputError("required (or use --rescore / --stats)", field="--concepts")
    settings = _settings(args)
    concepts = concept_list(args.concepts)
    prices = load_prices(settings.prices) if settings.prices else PriceTable()
    check_out_dir(args.out)
    check_resume(TeacherStore(args.out, warn=_warn), settings, args)  # bad input refused before the lock writes anything
    if not args.run_dir:
        args.run_dir = args.out  # standalone: the output directory is the run directory
    # One writer per output directory, from before its state is read until the last record is
    # written; taken before the event log is opened, so a refused second run writes nothing.
    with output_lock(args.out, stage="teacher"):
        return _generate_locked(args, settings, concepts, prices)


def cancel_batches(out: str, settings: TeacherSettings) -> int:
    """`--cancel-batches` (and `po-tui cancel` of a run whose teacher is gone): cancel the open
    remote jobs a killed teacher left, under the output lock (a live teacher cancels its own)."""
    from engine.stages.teacher.batch import BATCH_JOBS, cancel_open_jobs

    if settings.provider != "gemini":
        raise InputError("batch jobs exist only with --provider gemini", field="--provider")
    if not (Path(out) / BATCH_JOBS).exists():
        raise InputError(f"no {BATCH_JOBS}: no batch job was created here", path=out)

    def say(message: str) -> None:
        sys.stderr.write(f"po-tui teacher: {message}\n")

    with output_lock(out, stage="teacher --cancel-batches"):
        done, total = cancel_open_jobs(out, settings, say, warn=_warn)
    say(f"{done} of {total} open batch job(s) cancelled")
    return 0 if done == total else 1


def _generate_locked(args: argparse.Namespace, settings: TeacherSettings, concepts, prices: PriceTable) -> int:
    store = TeacherStore(args.out, warn=_warn)
    manifest = check_resume(store, settings, args)
    resumed = store.exists()  # earlier answers or outcomes are picked up (check_resume required --resume)
    with job_events(args, "teacher", resumed=resumed) as events:
        store.write_manifest(manifest)
        try:
            summary = asyncio.run(_generate(settings, concepts, store, events, prices))
        finally:
            store.close()
        manifest["summary"] = summary
        store.write_manifest(manifest)
        events.summary.update(summary)
        for line in _summary_lines(summary):
            sys.stderr.write(line + "\n")
        if summary["stop_reason"] == "cancelled":
            raise KeyboardInterrupt
        if summary.get("fatal_error"):
            raise InputError(f"{settings.provider}: {summary['fatal_error']}", field="provider")
        if not summary["accepted"]:
            # An empty dataset is no result: the stage fails with the reason (prep would only
            # say the dataset is missing), and a resume retries what the provider failed.
            raise StageFailed(nothing_accepted(summary))
    return 0


def nothing_accepted(summary: dict[str, Any]) -> str:
    """Why a teacher run ended without one accepted record, in one line."""
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary["reject_reasons"].items(), key=lambda kv: (-kv[1], kv[0])))
    errors = ", ".join(f"{k} {v}" for k, v in sorted(summary["provider_errors"].items(), key=lambda kv: (-kv[1], kv[0])))
    why = f"no record accepted ({summary['stop_reason']}): {summary['rejected']} rejected"
    why += f" ({reasons})" if reasons else ""
    why += f"; provider errors: {errors}" if errors else ""
    if any(k.startswith("provider_error") for k in summary["reject_reasons"]):
        why += "; fix the provider, then resume with --resume --retry-errors (po-tui run --resume RUN --retry-failed)"
    return why
