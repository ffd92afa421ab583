"""The commented example config `po-tui init` writes: every setting, at the seeds' values.

Generated from the settings models (so it can never drift from what validates), with their
fields' descriptions (the stages' --help texts) as comments; FIELD_HELP adds or overrides a few.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from engine.flagmeta import Flag
from engine.pipeline.config import ENGINE_OWNED_TRAIN, PipelineConfig

SECTION_HELP = {
    "concepts": "Product concepts: a file (any layout carrying concepts), or `count` generated with `seed`.",
    "teacher": "The teacher (po-tui teacher). API keys come from the environment only: GEMINI_API_KEY, "
               "or the variable `api_key_env` names.",
    "prep": "Train/val preparation (po-tui prep); val is the held-out set the evals use.",
    "tiny_model": "Build a tiny random model locally as the base (offline demos and tests only).",
    "train": "LoRA / QLoRA training (po-tui train); the seeds' recipe: r32 / alpha 64, 3 epochs, lr 1e-4.",
    "eval": "Evaluation of the baseline and the student on the held-out concepts (po-tui eval).",
    "gate": "The acceptance gate (po-tui gate): a preset (seeds, v2-closeout) or a gates file.",
    "report": "The Markdown report (po-tui report).",
    "export": "Exports after training (po-tui export).",
}

FIELD_HELP = {
    ("concepts", "file"): "null: generate",
    ("concepts", "conflict_rate"): "share of generated concepts with out-of-scope requirements",
    ("teacher", "provider"): "gemini | vertex | openai | synthetic",
    ("teacher", "min_score"): "accept answers at or above this score",
    ("teacher", "max_records"): "stop at exactly N accepted records (null: all concepts)",
    ("teacher", "api_key_env"): "name of the env var holding the key (never the key itself)",
    ("teacher", "synthetic.style"): "full: varied prose | compact: fixed sentences citing the ids (the demo's)",
    ("tiny_model", "style"): "full | compact: the synthetic answers its tokenizer learns (as teacher.synthetic.style)",
    ("teacher", "budget_usd"): "stop starting requests once this much was spent",
    ("prep", "val_fraction"): "share of concepts held out",
    ("eval", "max_samples"): "0: every held-out concept",
    ("eval", "max_new_tokens"): "null: 1200 for local models",
    ("eval", "teacher_reference"): "also evaluate the teacher provider as a reference column",
    ("gate", "preset"): "seeds | v2-closeout (ignored when `gates` is set: the file's preset: decides)",
    ("gate", "gates"): "a gates YAML file (docs/gate.md); null: the preset",
    ("export", "merge"): "write a merged full model beside the adapter (needs the base's size on disk)",
}


def _describe(field: FieldInfo, value: Any) -> str | None:
    """A field's description, with what its null or empty value means (as --help says it)."""
    means = next((m.default_means for m in field.metadata if isinstance(m, Flag) and m.default_means), None)
    if field.description and means and value in (None, ""):
        return f"{field.description} ({'null' if value is None else 'empty'}: {means})"
    return field.description


def _value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").removesuffix("...").strip()


def _lines(model: BaseModel, path: tuple[str, ...], helps: dict, indent: int) -> list[str]:
    out = []
    pad = "  " * indent
    for name in type(model).model_fields:
        if path == ("train",) and name in ENGINE_OWNED_TRAIN:
            continue
        value = getattr(model, name)
        key = (path[0], name) if len(path) == 1 else (path[0], ".".join((*path[1:], name)))
        if isinstance(value, BaseModel):
            out.append(f"{pad}{name}:")
            out += _lines(value, path + (name,), helps, indent + 1)
            continue
        text = helps.get(key) or _describe(type(model).model_fields[name], value)
        comment = f"  # {text}" if text else ""
        out.append(f"{pad}{name}: {_value(value)}{comment}")
    return out


def example_config() -> str:
    """The full example as YAML text with comments."""
    config = PipelineConfig()
    config.teacher.model = config.teacher.resolved_model()
    helps = FIELD_HELP
    lines = [
        "# po-tui pipeline config: `po-tui run THIS_FILE --headless` (see docs/config.md).",
        "# Every setting is listed at its default (the seeds' values). Secrets never go here:",
        "# providers read their keys from environment variables.",
    ]
    for section, field in type(config).model_fields.items():
        value = getattr(config, section)
        if not isinstance(value, BaseModel):  # a top-level setting (runs_dir), not a section
            lines += ["", f"# {field.description}", f"{section}: {_value(value)}"]
            continue
        lines += ["", f"# {SECTION_HELP.get(section, section)}", f"{section}:"]
        lines += _lines(value, (section,), helps, 1)
    return "\n".join(lines) + "\n"
