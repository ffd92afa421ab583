"""`po-tui eval`: score a local model (base or base + LoRA) or a teacher provider on concepts."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from engine.commands import argtypes
from engine.configfile import validate
from engine.core.inert import clean
from engine.errors import InputError, StageFailed
from engine.runlog.job import add_job_args, job_events
from engine.stages.eval.settings import PROMPT_FORMATS, PROVIDERS, EvalSettings
from engine.stages.teacher.settings import SYNTHETIC_STYLES
from engine.store.lock import output_lock

# flag -> settings field; defaults live in EvalSettings (flags default to None).
FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--dataset", {"metavar": "FILE", "help": "concepts, teacher records (prep's val.jsonl), the validation layout, "
                   "prompt/response pairs, or an eval-results JSON that carries its concepts"}),
    ("--base-model", {"metavar": "ID_OR_PATH", "help": "local model folder or Hugging Face cache id (never downloaded)"}),
    ("--adapter", {"metavar": "DIR", "help": "LoRA adapter folder (po-tui train's output)"}),
    ("--tag", {"metavar": "NAME", "help": "baseline, student or any name: results go to OUT/NAME_<timestamp>.json"}),
    ("--out", {"metavar": "DIR", "help": "results directory"}),
    ("--max-samples", {"type": int, "metavar": "N", "help": "evaluate the FIRST N distinct concepts in file order, "
                       "never a shuffle, so every run compares the same cases; 0 = all (default: 20)"}),
    ("--seed", {"type": argtypes.seed, "metavar": "S", "help": "sampling seed (temperature > 0) and provider seeds (default: 42)"}),
    ("--batch-size", {"type": int, "metavar": "B", "help": "sequences decoded together, local models (default: 8)"}),
    ("--max-new-tokens", {"type": int, "metavar": "N", "help": "answer token limit (default: 1200 local, provider default otherwise)"}),
    ("--temperature", {"type": float, "metavar": "T", "help": "0 = greedy (default); > 0 samples with --top-p and --seed"}),
    ("--top-p", {"type": float, "metavar": "P", "help": "nucleus sampling when --temperature > 0 (default: 0.9)"}),
    ("--repetition-penalty", {"type": float, "metavar": "R", "help": "local models and served students (default: 1.0, i.e. none)"}),
    ("--retries", {"type": int, "metavar": "N", "help": "re-asks after a format error, naming what was wrong (default: 2)"}),
    ("--dtype", {"choices": ("auto", "bfloat16", "float16", "float32"), "help": "compute dtype (default: bf16/fp16 on CUDA, fp32 on CPU)"}),
    ("--chat-template", {"choices": ("auto", "on", "off"), "help": "default: as the adapter was trained (po_tui_train.json), else auto"}),
    ("--metric", {"choices": ("po-v1", "po-v2"), "help": "default: po-v2"}),
    ("--provider", {"choices": PROVIDERS, "help": "evaluate through a provider instead of a local model: a teacher, or "
                    "a served student/baseline (openai: vLLM, llama-server, Ollama)"}),
    ("--model", {"metavar": "M", "help": "the provider's model: for a served student the served name (vLLM's LoRA "
                 "module, the Ollama model) (default: gemini-2.5-flash; synthetic-po-1)"}),
    ("--concurrency", {"type": int, "metavar": "C", "help": "provider calls in flight (default: 4)"}),
    ("--rpm", {"type": float, "metavar": "R", "help": "provider requests per minute limit (default: none)"}),
    ("--tpm", {"type": float, "metavar": "T", "help": "provider tokens per minute limit, estimated before each call (default: none)"}),
    ("--api-retries", {"type": int, "metavar": "N", "help": "retries of a failed provider call: 429, 5xx, timeouts (default: 6)"}),
    ("--backoff-base", {"type": float, "dest": "backoff_base_s", "metavar": "S", "help": "first backoff delay (default: 1s)"}),
    ("--timeout", {"type": float, "dest": "timeout_s", "metavar": "S", "help": "per-call timeout (default: 120s)"}),
    ("--base-url", {"metavar": "URL", "help": "provider endpoint override; openai: the API root, e.g. "
                    "http://localhost:8000/v1 (a bare host gets /v1)"}),
    ("--api-key-env", {"metavar": "VAR", "help": "read the API key from this environment variable"}),
    ("--project", {"help": "vertex: GCP project (or GOOGLE_CLOUD_PROJECT)"}),
    ("--location", {"help": "vertex: region (or GOOGLE_CLOUD_LOCATION)"}),
    ("--prompt-format", {"choices": PROMPT_FORMATS, "help": "providers: student = exactly the training input (the student "
                         "prompt as the only message), teacher = the teacher's system prompt first (default: student "
                         "for baseline/student tags, teacher otherwise)"}),
    ("--system-prompt", {"choices": ("teacher", "none"), "help": argparse.SUPPRESS}),  # older spelling: none = student
]
SWITCHES = {
    "--load-4bit": "load the base in 4-bit nf4 (bitsandbytes, double quantisation)",
    "--restart": "move a partial evaluation with other settings aside and start over",
}
SYNTHETIC_FLAGS = [
    ("--synthetic-latency", "latency_s"),
    ("--synthetic-defect-rate", "defect_rate"),
    ("--synthetic-fix-rate", "fix_rate"),
    ("--synthetic-low-quality-rate", "low_quality_rate"),
]
SYNTHETIC_STYLE_FLAG = "--synthetic-style"  # as `po-tui teacher` spells it


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
    for flag, kwargs in FLAGS:
        p.add_argument(flag, default=None, **kwargs)
    for flag, text in SWITCHES.items():
        p.add_argument(flag, action="store_true", default=None, help=text)
    for flag, _field in SYNTHETIC_FLAGS:
        p.add_argument(flag, type=float, default=None, metavar="X", help=argparse.SUPPRESS)
    p.add_argument(SYNTHETIC_STYLE_FLAG, choices=SYNTHETIC_STYLES, default=None, help=argparse.SUPPRESS)
    add_job_args(p)
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> EvalSettings:
    data: dict[str, Any] = {}
    for flag, kwargs in FLAGS:
        dest = kwargs.get("dest") or flag[2:].replace("-", "_")
        value = getattr(args, dest)
        if value is not None:
            data[dest] = value
    for flag in SWITCHES:
        if getattr(args, flag[2:].replace("-", "_")):
            data[flag[2:].replace("-", "_")] = True
    synthetic = {field: getattr(args, flag[2:].replace("-", "_")) for flag, field in [*SYNTHETIC_FLAGS, (SYNTHETIC_STYLE_FLAG, "style")]}
    synthetic = {k: v for k, v in synthetic.items() if v is not None}
    if synthetic:
        data["synthetic"] = synthetic
    for name in ("dataset", "tag", "out"):
        if not data.get(name):
            raise InputError("required", field=f"--{name}")
    try:
        return validate(EvalSettings, data)
    except InputError as exc:
        if exc.field and "." not in exc.field:  # name the flag the user typed
            flag = next((f for f, kw in FLAGS if kw.get("dest") == exc.field), "--" + exc.field.replace("_", "-"))
            exc.field = flag
        raise


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
        lines.append(f"  format errors: {errors}; {retried} case{'s' if retried != 1 else ''} retried, {rt['fixed_by_retry']} fixed by a retry")
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
    settings = settings_from(args)
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
