"""Small synthetic evaluation-results files (old and new layouts) and training outputs for tests.

Written here from the docs/formats.md shape, independent of the eval stage's own writer, so the
gate and report are tested against the contract rather than one implementation of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.core.blocks import render_response
from engine.core.records import population_stats
from tests.po_samples import REQUIREMENTS_YAML, dump, review, vision

CONCEPT = "Field Service Scheduler for utilities, targeting simple operations with emphasis on dispatch."
BROKEN_REVIEW = "status: aligned\nsummary:\n- Covers FR001: dispatch: fast\n  narrative: [unclosed\n"


def answer(*, status: str = "aligned", broken: bool = False, product: str = "Field Service Scheduler") -> tuple[str, str, str]:
    """(vision_yaml, review_yaml, raw_response) of one synthetic answer."""
    v = dump(vision(product_name=product))
    r = BROKEN_REVIEW if broken else dump(review(status=status))
    return v, r, render_response(v, r)


def case(
    cid: str,
    score: float | None,
    *,
    tier: str = "simple",
    status: str = "ok",
    legacy: bool = False,
    review_status: str = "aligned",
    broken: bool = False,
    latency: float = 2.0,
    tokens: int = 400,
    reason: str | None = None,
    raw: str | None = None,
    product: str = "Field Service Scheduler",
    reference: dict | None = None,
) -> dict[str, Any]:
    v, r, full = answer(status=review_status, broken=broken, product=product)
    if raw is not None:  # a given raw answer: the blocks are whatever a reader extracts from it
        v = r = None
        full = raw
    if legacy:  # the replaced system's case: attempts as a string, nothing else
        return {"concept_id": cid, "tier": tier, "status": status, "attempts": "1", "score": score,
                "vision_yaml": v, "review_yaml": r, "raw_response": full}
    return {
        "concept_id": cid, "tier": tier, "status": status, "attempts": 2 if reason else 1, "score": score,
        "vision_yaml": v, "review_yaml": r, "raw_response": full, "error": None,
        "format_error": reason, "error_detail": f"{reason} detail" if reason else None,
        "review_status": review_status, "breakdown": {"schema": 30.0, "vision": 30.0, "alignment": 30.0, "specificity": 30.0},
        "partial_score": score, "latency_s": latency, "output_tokens": tokens, "tokens_per_s": tokens / latency,
        "finish_reason": "stop",
        "attempt_log": [{"attempt": 1, "reason": reason, "detail": None, "output_tokens": tokens, "latency_s": latency}],
        "reference": reference, "concept": CONCEPT, "requirements_yaml": REQUIREMENTS_YAML,
    }


def write_results(
    folder: Path,
    tag: str,
    stamp: str,
    cases: list[dict],
    *,
    model: str = "Qwen/Qwen2.5-7B-Instruct",
    adapter: str | None = None,
    legacy: bool = False,
    metric: str | None = "po-v2",
    train: dict | None = None,
    duration_s: float = 60.0,
) -> Path:
    valid = [c["score"] for c in cases if c["status"] != "format_error" and c["score"] is not None]
    stats = population_stats(valid)
    doc: dict[str, Any] = {
        "model": model, "adapter_path": adapter, "timestamp": stamp,
        "dataset": "artifacts/eval/val.jsonl",
        "total_samples": len(cases), "valid_samples": len(valid), "failed_samples": len(cases) - len(valid),
        "metrics": {k: stats[k] for k in ("mean", "std", "min", "max")},
    }
    if not legacy:
        doc.update(tag=tag, metric=metric)
        doc["po_tui"] = {
            "format": "po-tui-eval/1", "provider": "transformers",
            "generation": {"batch_size": 4, "max_new_tokens": 1200, "temperature": 0.0, "top_p": 1.0, "seed": 0,
                           "retries": 2, "load_4bit": True, "chat_template": True},
            "hardware": "1 x NVIDIA H100 80GB HBM3", "started_at": "2025-11-20T10:00:00Z",
            "finished_at": "2025-11-20T10:01:00Z", "duration_s": duration_s,
            "speed": {"s_per_sample": duration_s / max(len(cases), 1), "output_tokens_per_s": 200.0,
                      "output_tokens_mean": 400.0, "output_tokens_max": 400},
            "train": train,
        }
    doc["results"] = cases
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{tag}_{stamp}.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def train_info(**changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "base_model": "Qwen/Qwen2.5-7B-Instruct",
        "data": {"path": "runs/r1/prep/train.jsonl", "bytes": 123456, "sha256": "ab" * 32},
        "train_examples": 305, "val_examples": 54, "truncated_answers": 0,
        "prompt_format": {"chat_template": True, "max_seq_len": 2048},
        "hyperparameters": {"lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.05, "target_modules": "all-linear",
                            "epochs": 4, "max_steps": None, "batch_size": 1, "grad_accum": 12, "lr": 8e-05,
                            "scheduler": "cosine", "warmup_ratio": 0.05, "max_seq_len": 2048, "load_4bit": True,
                            "load_8bit": False, "gradient_checkpointing": True, "seed": 42},
        "steps": 100,
        "loss": {"first": 1.46, "final": 0.43, "mean": 0.65, "final_eval": 0.51},
        "duration_s": 6000.0, "hardware": "1 x NVIDIA T4", "world_size": 1,
        "finished_at": "2025-11-19T12:00:00Z",
    }
    info.update(changes)
    return info


def write_adapter(folder: Path, info: dict | None = None, losses: list[float] | None = None) -> Path:
    """An adapter folder as `po-tui train` leaves it (the JSON files only; no weights needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "po_tui_train.json").write_text(json.dumps(info or train_info()), encoding="utf-8")
    losses = losses if losses is not None else [1.46, 1.1, 0.9, 0.7, 0.55, 0.43]
    history = [{"loss": v, "step": (i + 1) * 10, "epoch": (i + 1) / len(losses) * 4} for i, v in enumerate(losses)]
    history.append({"eval_loss": 0.51, "step": len(losses) * 10, "epoch": 4.0})
    (folder / "loss_history.json").write_text(json.dumps(history), encoding="utf-8")
    return folder


def scored_cases(scores: list[float | None], prefix: str = "POCON", tiers: list[str] | None = None, **kwargs: Any) -> list[dict]:
    """One case per score (None = a format_error), ids POCON-0001.. in order."""
    out = []
    for i, s in enumerate(scores, start=1):
        if tiers:
            kwargs["tier"] = tiers[i - 1]
        if s is None:
            out.append(case(f"{prefix}-{i:04d}", None, status="format_error", broken=True,
                            reason="invalid_review_yaml", **kwargs))
        else:
            out.append(case(f"{prefix}-{i:04d}", s, **kwargs))
    return out
