"""`po-tui eval`: score a local model (base or base + LoRA) or a teacher provider on concepts."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from engine.commands.settingsflags import add_settings_flags, resolve_settings
from engine.core.inert import clean
from engine.errors import StageFailed
from engine.runlog.job import add_job_args, job_events
from engine.stages.eval.settings import EvalSettings
from engine.store.lock import output_lock


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "eval",
        parents=[common],
        help="evaluate a base model, a LoRA student or a teacher provider on a fixed set of concepts",
        description=(
            "Generate the Product Owner answer for the first --max-samples concepts of --dataset (file order), "
            "batched on a local model loaded once (or through a teacher provider), re-ask after a format error, "
            "score with the PO metric and write OUT/TAG_<timestamp>.json. Finished cases are kept in "
            "OUT/TAG.cases.jsonl: rerunning the same command continues where it stopped."
        ),
    )
    add_settings_flags(p, EvalSettings, config_help="eval settings: keys named as the flags (max_samples, batch_size, ...), "
                       "at the top level or under `eval:`; a flag typed overrides its key")
    add_job_args(p)
    p.set_defaults(func=run)


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


def _case_line(tag: str):
    def line(r: dict[str, Any], done: int, total: int) -> None:
        what = f"score {_fmt(r['score'])}" if r["status"] == "ok" else f"{r['format_error']} (partial {_fmt(r['partial_score'])})"
        sys.stderr.write(
            clean(
                f"eval [{tag}] {done}/{total} {r['concept_id']}: {r['status']} {what}, {r['attempts']} attempt"
                f"{'s' if r['attempts'] != 1 else ''}, {r['output_tokens']} tokens, {r['latency_s']:.1f}s"
            )
            + "\n"
        )
        sys.stderr.flush()

    return line


def summary_lines(doc: dict[str, Any], path: Any) -> list[str]:
    m, sp, rt = doc["metrics"], doc["po_tui"]["speed"], doc["po_tui"]["retry_stats"]
    n, valid = doc["total_samples"], doc["valid_samples"]
    lines = [
        f"eval [{doc['tag']}] {doc['metric']}: {n} cases, {valid} valid ({100 * (m['valid_rate'] or 0):.1f}%), "
        f"mean {_fmt(m['mean'])} over valid (std {_fmt(m['std'])}, min {_fmt(m['min'])}, max {_fmt(m['max'])}), "
        f"{_fmt(m['mean_with_errors_as_zero'])} with format errors as 0",
    ]
    if rt["format_errors"] or rt["cases_retried"]:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(rt["format_errors"].items())) or "none"
        retried = rt["cases_retried"]
        lines.append(f"  format errors: {errors}; {retried} case{'s' if retried != 1 else ''} retried, "
                     f"{rt['fixed_by_retry']} fixed by a retry")
    lines.append(
        f"  speed: {_fmt(sp['s_per_sample'], '.2f')} s/case, {_fmt(sp['output_tokens_per_s'], ',.1f')} output tokens/s; "
        f"answers {_fmt(sp['output_tokens_mean'], '.0f')} tokens on average, {sp['output_tokens_max']} at most"
    )
    lines.append(f"  results: {path}")
    return [clean(x) for x in lines]


def _warn(message: str) -> None:
    sys.stderr.write(clean(f"po-tui eval: warning: {message}") + "\n")


def _echo(message: str) -> None:
    sys.stderr.write(clean(f"po-tui eval: {message}") + "\n")


def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    settings = resolve_settings(EvalSettings, args, section="eval")
    # One writer per results directory, held from before the cases file is read until the end;
    # taken before the event log is opened, so a refused second eval writes nothing.
    with output_lock(settings.out, stage="eval"):
        return _run_locked(args, settings)


def _run_locked(args: argparse.Namespace, settings: EvalSettings) -> int:
    from engine.stages.eval.stage import evaluate, prepare

    prepared = prepare(settings, warn=_warn)  # every bad-input error happens here; nothing is written
    if not args.run_dir:  # standalone: the events go beside the results, one log per tag
        args.run_dir = settings.out
        args.job = args.job or settings.tag
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        with job_events(args, "eval", resumed=prepared.resumed) as events:
            outcome = evaluate(prepared, events, on_case=_case_line(settings.tag), echo=_echo)
            if outcome.moved is not None:
                _echo(f"--restart: the previous cases file was moved to {outcome.moved}")
            if outcome.doc is None:
                failed = outcome.run.failed
                kinds = ", ".join(sorted({v.split(':')[0].split(' ')[0] for v in failed.values()}))
                raise StageFailed(
                    clean(
                        f"{len(failed)} of {len(prepared.cases)} cases not evaluated: provider calls failed "
                        f"after their retries ({kinds}); rerun the same command to retry them"
                    )
                )
    finally:
        signal.signal(signal.SIGTERM, previous)
    for line in summary_lines(outcome.doc, outcome.path):
        sys.stderr.write(line + "\n")
    print(outcome.path)
    return 0
