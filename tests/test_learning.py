"""Training works: the real `po-tui train` teaches the tiny model the answer format, and the real
eval path sees it on held-out prompts (>= 6 of 8 valid two-block answers with every required
VISION and REVIEW key). A negative control (the same adapter trained one step at a learning rate
too small to move it) must fail the same check, so this test can fail.

The recipe is the demo's (docs/BENCHMARKS.md, "Learning on CPU"): compact answers, a quiet tiny
base (weights at 0.02) whose tied embeddings train beside a rank-64 adapter, batch 4, here 450
steps: at 300 (the demo's) every answer is valid but the first VISION line still wavers in most;
at 450 all 8 held-out answers had every key.
A bug in the label mask, the chat template or the prompt renderer leaves the student writing
nothing valid, and this test red. It asserts structure, not a loss value.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from engine.cli import main  # noqa: E402
from engine.core.blocks import check_text  # noqa: E402
from engine.core.prompts import render_student_prompt  # noqa: E402
from engine.providers.po_writer import write_answer  # noqa: E402
from engine.stages.concepts import generate_concepts  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")]

VISION_KEYS = ("product_name", "product_summary", "target_users", "value_proposition", "key_capabilities",
               "non_goals", "success_metrics", "last_updated")
REVIEW_KEYS = ("status", "summary", "requirements_alignment", "recommended_actions", "narrative")
RECIPE = ["--lora-r", "64", "--lora-alpha", "128", "--lora-dropout", "0", "--modules-to-save", "embed_tokens",
          "--batch-size", "4", "--seed", "7", "--logging-steps", "50"]
HELD_OUT = 8


def cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("learning")
    rows = generate_concepts(200 + HELD_OUT, 7)
    train, held = rows[:200], rows[200:]

    def record(row: dict) -> dict:
        answer = write_answer(row["concept"], row["requirements_yaml"], random.Random(0), style="compact")
        return {"prompt": render_student_prompt(row["concept"], row["requirements_yaml"]), "response": answer,
                "concept_id": row["concept_id"]}

    (root / "train.jsonl").write_text("".join(json.dumps(record(r)) + "\n" for r in train), encoding="utf-8")
    (root / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held), encoding="utf-8")
    rc, err = cli(["make-tiny-model", "--out", str(root / "tiny"), "--seed", "7", "--style", "compact",
                   "--vocab-size", "4096", "--init-range", "0.02"])
    assert rc == 0, err
    return {"root": root, "data": root / "train.jsonl", "held": root / "held.jsonl", "tiny": root / "tiny"}


def held_out_answers(work: dict[str, Path], tag: str, adapter: Path) -> list[str]:
    out = work["root"] / f"eval-{tag}"
    rc, err = cli(["eval", "--dataset", str(work["held"]), "--base-model", str(work["tiny"]), "--adapter", str(adapter),
                   "--tag", tag, "--out", str(out), "--max-new-tokens", "400", "--retries", "0"])
    assert rc == 0, err
    results = json.loads(next(out.glob(f"{tag}_*.json")).read_text(encoding="utf-8"))["results"]
    assert len(results) == HELD_OUT
    return [r["raw_response"] or "" for r in results]


def keys_found(text: str) -> tuple[int, int] | None:
    """(VISION keys present, REVIEW keys present) when both blocks parse to mappings, else None."""
    extraction, check = check_text(text)
    if not check.valid:
        return None
    import yaml

    vision = yaml.safe_load(extraction.vision.text)
    review = yaml.safe_load(extraction.review.text)
    return sum(k in vision for k in VISION_KEYS), sum(k in review for k in REVIEW_KEYS)


def learnt(text: str) -> bool:
    """A valid two-block answer with every required VISION and REVIEW key."""
    return keys_found(text) == (len(VISION_KEYS), len(REVIEW_KEYS))


def test_the_trained_student_writes_the_format_and_an_untrained_adapter_does_not(work):
    student = work["root"] / "student"
    rc, err = cli(["train", "--data", str(work["data"]), "--base-model", str(work["tiny"]), "--out", str(student),
                   *RECIPE, "--lr", "5e-3", "--max-steps", "450"])
    assert rc == 0, err
    control = work["root"] / "control"
    rc, err = cli(["train", "--data", str(work["data"]), "--base-model", str(work["tiny"]), "--out", str(control),
                   *RECIPE, "--lr", "1e-9", "--max-steps", "1"])
    assert rc == 0, err

    trained = [learnt(t) for t in held_out_answers(work, "student", student)]
    untrained = [learnt(t) for t in held_out_answers(work, "control", control)]
    assert sum(trained) >= 6, f"only {sum(trained)} of {HELD_OUT} held-out answers have the format with every key"
    assert sum(untrained) <= 1, f"the untrained control wrote {sum(untrained)} answers in the format: the check cannot fail"
