"""`po-tui eval` from checked settings to the results file.

`prepare` does everything that can fail on bad input -- dataset, model folders, adapter,
provider credentials, the resume check -- and writes nothing. `evaluate` then loads the model
once, runs the cases, and writes the results file atomically (and, for an adapter, its
evaluation summary and model card).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.core.prompts import template_id
from engine.core.timefmt import utc_stamp
from engine.stages.eval.dataset import EvalCase, cases_digest, read_cases
from engine.stages.eval.results import OK, document
from engine.stages.eval.runner import EvalRun
from engine.stages.eval.settings import EvalSettings
from engine.stages.eval.store import CaseStore, Stored
from engine.store.atomic import atomic_write_json
from engine.store.jsonl import Warn
from engine.store.outpath import check_out_dir

EVAL_INFO = "po_tui_eval.json"  # beside the adapter, read by its model card


@dataclass
class Prepared:
    s: EvalSettings
    cases: list[EvalCase]
    store: CaseStore
    stored: Stored
    fingerprint: dict[str, Any]
    plan: Any = None  # LocalPlan for a local model
    provider: Any = None  # a teacher Provider otherwise
    warnings: list[str] = field(default_factory=list)

    @property
    def resumed(self) -> bool:
        return self.stored.header is not None


def prepare(s: EvalSettings, *, warn: Warn | None = None) -> Prepared:
    out = check_out_dir(s.out)
    cases = read_cases(s.dataset, s.max_samples, warn=warn)
    plan = provider = None
    adapter_sha = base_sha = device = None
    warnings: list[str] = []
    if s.local:
        from engine.stages.eval.local import plan_local

        plan = plan_local(s)
        adapter_sha, base_sha, warnings, device = plan.adapter_sha256, plan.base_config_sha256, plan.warnings, plan.device
    else:
        from engine.stages.eval.remote import make_eval_provider

        provider = make_eval_provider(s)
    fingerprint = s.fingerprint(
        cases=cases_digest(cases), prompt=template_id(), adapter_sha256=adapter_sha, base_config_sha256=base_sha,
        device=device,
    )
    store = CaseStore(out, s.tag, warn=warn)
    stored = store.load()
    store.check(stored, fingerprint, restart=s.restart)
    if s.restart:
        stored = Stored()  # the old file is moved aside when the run starts
    return Prepared(s, cases, store, stored, fingerprint, plan, provider, warnings)


def _header(p: Prepared) -> dict[str, Any]:
    s = p.s
    now = time.time()
    return {
        "fingerprint": p.fingerprint,
        "timestamp": time.strftime("%Y%m%d_%H%M%S", time.localtime(now)),
        "started_at": utc_stamp(now),
        "model": s.resolved_model(),
        "adapter_path": str(p.plan.adapter) if p.plan is not None and p.plan.adapter else None,
        "dataset": s.dataset,
        "tag": s.tag,
        "metric": s.metric,
        "total": len(p.cases),
        "settings": s.model_dump(mode="json", exclude={"restart"}),
    }


def _hardware(p: Prepared) -> str:
    if p.s.local:
        from engine.stages.train.runner import hardware

        return hardware()
    return f"remote ({p.s.provider})"


def _generation(p: Prepared, model: Any) -> dict[str, Any]:
    s = p.s
    g: dict[str, Any] = {
        "batch_size": s.batch_size if s.local else None,
        "max_new_tokens": s.resolved_max_new_tokens(),
        "temperature": s.temperature,
        "top_p": s.top_p if s.temperature > 0 and s.local else None,  # the provider interface has no top_p
        "seed": s.seed,
        "retries": s.retries,
        "load_4bit": s.load_4bit,
        "chat_template": p.plan.chat if p.plan is not None else None,
        "repetition_penalty": s.repetition_penalty if s.sends_repetition_penalty else None,
        "greedy": s.temperature == 0,
        "prompt_template": template_id(),
    }
    if s.local:
        if model is not None:  # None when every case came from the cases file
            g["dtype"] = model.dtype
            g["device"] = model.device
            g["eos_token_ids"] = model.eos_ids
            g["oom_splits"] = model.oom_splits  # > 0: some answers were decoded in smaller batches
    else:
        g["concurrency"] = s.concurrency
        g["prompt_format"] = s.resolved_prompt_format()
        g["system_prompt"] = "none" if s.student_prompt else "teacher"
    return g


def _adapter_summary(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    m = doc["metrics"]
    return {
        "tag": doc["tag"],
        "dataset": doc["dataset"],
        "metric": doc["metric"],
        "cases": doc["total_samples"],
        "valid": doc["valid_samples"],
        "valid_rate": m["valid_rate"],
        "mean": m["mean"],
        "std": m["std"],
        "min": m["min"],
        "max": m["max"],
        "mean_with_errors_as_zero": m["mean_with_errors_as_zero"],
        "results": str(path),
        "evaluated_at": doc["po_tui"]["finished_at"],
    }


def write_adapter_summary(adapter: Path, doc: dict[str, Any], path: Path) -> None:
    """po_tui_eval.json beside the adapter, and its model card rebuilt when training wrote one."""
    from engine.stages.train.card import write_model_card

    atomic_write_json(adapter / EVAL_INFO, _adapter_summary(doc, path))
    if (adapter / "po_tui_train.json").is_file():
        write_model_card(adapter)


@dataclass
class Outcome:
    doc: dict[str, Any] | None  # None when some cases could not be evaluated (provider errors)
    path: Path | None
    run: EvalRun
    load_s: float
    moved: Path | None


def evaluate(p: Prepared, events: Any, *, on_case: Callable[[dict[str, Any], int, int], None] | None = None,
             echo: Warn | None = None) -> Outcome:
    s = p.s
    started = time.time()
    header = p.stored.header or _header(p)
    moved = p.store.open(None if p.resumed else header, restart=s.restart)
    try:
        if p.resumed:
            done = len(p.stored.cases)
            message = f"resuming {p.store.path}: {done}/{len(p.cases)} cases already evaluated"
            events.log(message)
            if echo:
                echo(message)
        for w in p.warnings:
            events.warning(w, code="eval_setup")
            if echo:
                echo(f"warning: {w}")
        if s.local:
            generator: Any = _LazyLocalModel(p, events, echo)
        else:
            from engine.stages.eval.remote import ProviderGenerator

            generator = ProviderGenerator(p.provider, s, events)
        run = EvalRun(s, p.cases, p.store, p.stored, generator, events, on_case=on_case)
        try:
            results = run.run()
        finally:
            generator.close()
    finally:
        p.store.close()
    model = generator.model if s.local else None
    load_s = generator.load_s if s.local else 0.0
    if len(results) < len(p.cases):
        return Outcome(None, None, run, load_s, moved)
    finished = time.time()
    po_tui = {
        "provider": s.provider,
        "generation": _generation(p, model),
        "hardware": _hardware(p),
        "started_at": header["started_at"],
        "finished_at": utc_stamp(finished),
        "duration_s": round(finished - started, 3),
        "load_s": round(load_s, 3),
        "resumed": p.resumed,
        "replayed_attempts": run.replayed,
        "cases_file": str(p.store.path),
        "dataset_cases_sha": p.fingerprint["cases"],
        "max_samples": s.max_samples,
        "adapter_sha256": p.fingerprint.get("adapter_sha256"),
        "train": p.plan.train_info if p.plan is not None else None,
        "host": platform.node(),
        "pid": os.getpid(),
    }
    if s.local:
        import torch
        import transformers

        po_tui["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    doc = document(header, results, po_tui)
    path = atomic_write_json(Path(s.out) / f"{s.tag}_{header['timestamp']}.json", doc)
    events.artifact(str(path), "eval_results")
    if p.plan is not None and p.plan.adapter is not None:
        try:
            write_adapter_summary(p.plan.adapter, doc, path)
        except OSError as exc:
            events.warning(f"could not write {EVAL_INFO} beside the adapter: {exc}", code="adapter_readonly")
            if echo:
                echo(f"warning: could not write {EVAL_INFO} beside the adapter: {exc}")
    m = doc["metrics"]
    events.summary.update(
        n=doc["total_samples"], valid=doc["valid_samples"], mean=m["mean"], valid_rate=m["valid_rate"],
        mean_with_errors_as_zero=m["mean_with_errors_as_zero"], std=m["std"], results=str(path), tag=s.tag,
        ok=sum(1 for r in results if r["status"] == OK),
    )
    return Outcome(doc, path, run, load_s, moved)


class _LazyLocalModel:
    """Loads the model on the first request: a rerun whose cases are all stored loads nothing."""

    def __init__(self, p: Prepared, events: Any, echo: Warn | None) -> None:
        self.p, self.events, self.echo = p, events, echo
        self.model: Any = None
        self.load_s = 0.0

    def run(self, requests, on_done) -> None:  # noqa: ANN001 - the Generator interface
        if not requests:
            return
        if self.model is None:
            self._load()
        self.model.run(requests, on_done)

    def _load(self) -> None:
        from engine.stages.eval.local import LocalModel

        s = self.p.s
        if self.echo:
            self.echo(f"loading {s.base_model}" + (f" + {s.adapter}" if s.adapter else "") + (" (4-bit)" if s.load_4bit else ""))
        self.events.heartbeat(phase="loading model")
        started = time.time()
        self.model = LocalModel.load(s, self.p.plan).configure(s)
        self.model.on_warning = self._warn_split
        self.load_s = time.time() - started
        self.events.log(f"model loaded in {self.load_s:.1f}s on {self.model.device} ({self.model.dtype})")

    def _warn_split(self, message: str) -> None:
        """An out-of-memory split, in the event log and on the terminal: never silent."""
        self.events.warning(message, code="oom_split")
        if self.echo:
            self.echo(f"warning: {message}")

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
