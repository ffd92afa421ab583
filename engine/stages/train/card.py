"""The adapter's model card (README.md), rebuilt from the facts the stages record beside it.

Training writes `po_tui_train.json`; evaluation adds `po_tui_eval.json` once one exists; the card
is regenerated from both, so it never drifts from the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.store.atomic import atomic_write_text

EVAL_INFO = "po_tui_eval.json"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_card(info: dict[str, Any], evaluation: dict[str, Any] | None) -> str:
    hp = info.get("hyperparameters", {})
    loss = info.get("loss", {})
    data = info.get("data") or {}
    lines = [
        "---",
        f"base_model: {info.get('base_model')}",
        "library_name: peft",
        "tags: [lora, po-tui, product-owner]",
        "---",
        "",
        "# Product Owner student (LoRA adapter)",
        "",
        "A LoRA adapter trained by po-tui to write the Product Owner answer: two fenced YAML blocks,",
        "VISION and REVIEW, for a product concept and its requirements.",
        "",
        "## Training",
        "",
        f"- Base model: `{info.get('base_model')}`",
        f"- Data: `{data.get('path')}` ({_fmt(data.get('bytes'))} bytes, sha256 `{data.get('sha256')}`), "
        f"{_fmt(info.get('train_examples'))} examples, {_fmt(info.get('val_examples'))} validation",
        f"- Prompt: {'the tokenizer chat template' if (info.get('prompt_format') or {}).get('chat_template') else 'plain text'}, "
        "loss on the answer tokens only, dynamic padding",
        f"- Hardware: {info.get('hardware')} (world size {_fmt(info.get('world_size'))}), torch {info.get('torch')}",
        f"- Duration: {_fmt(info.get('duration_s'))} s, {_fmt(info.get('steps'))} steps",
        "",
        "| hyperparameter | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in hp.items()]
    lines += [
        "",
        "| loss | value |",
        "|---|---|",
        f"| first | {_fmt(loss.get('first'))} |",
        f"| final | {_fmt(loss.get('final'))} |",
        f"| mean | {_fmt(loss.get('mean'))} |",
        f"| final eval | {_fmt(loss.get('final_eval'))} |",
        "",
        "## Evaluation",
        "",
    ]
    if evaluation:
        lines += [f"- {k}: {_fmt(v)}" for k, v in evaluation.items()]
    else:
        lines.append("Not evaluated yet: run `po-tui eval` with this adapter.")
    lines.append("")
    return "\n".join(lines)


def write_model_card(adapter_dir: str | Path) -> Path:
    d = Path(adapter_dir)
    info = json.loads((d / "po_tui_train.json").read_text(encoding="utf-8"))
    eval_path = d / EVAL_INFO
    evaluation = json.loads(eval_path.read_text(encoding="utf-8")) if eval_path.exists() else None
    return atomic_write_text(d / "README.md", render_card(info, evaluation))
