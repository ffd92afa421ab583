"""Learning on CPU: does a recipe teach the tiny model the Product Owner task on held-out concepts?

Runs the product's own commands (make-tiny-model, train with probes, eval) per recipe on the same
synthetic data (compact teacher answers), then prints one table: steps, training seconds, final
loss, held-out valid rate, po-v2 mean (format errors as 0) and grounding (name match, id
precision, id coverage). The probes show when the format appears during training.

    .venv/bin/python bench/learning.py                          # the demo's recipe
    .venv/bin/python bench/learning.py --variants demo,frozen-0.3,rank8 --steps 300

Results and the exact commands: docs/BENCHMARKS.md, "Learning on CPU".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from engine.cli import main as po_tui
from engine.core.blocks import check_text
from engine.core.prompts import render_student_prompt
from engine.providers.po_writer import write_answer
from engine.stages.concepts import generate_concepts
from engine.stages.grounding import IdScheme, ground_answer

# name -> (make-tiny-model flags, train flags). "demo" is engine/commands/demo.py's recipe.
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "demo": (["--init-range", "0.02"], ["--lora-r", "64", "--lora-alpha", "128", "--modules-to-save", "embed_tokens", "--lr", "5e-3"]),
    # The old tiny-model recipe: a loud random base (0.3), embeddings frozen.
    "frozen-0.3": (["--init-range", "0.3"], ["--lora-r", "64", "--lora-alpha", "128", "--lr", "5e-3"]),
    "rank8-0.3": (["--init-range", "0.3"], ["--lora-r", "8", "--lora-alpha", "16", "--lr", "1e-2"]),
    # Quiet base, embeddings frozen: the logits stay flat.
    "frozen-0.02": (["--init-range", "0.02"], ["--lora-r", "64", "--lora-alpha", "128", "--lr", "5e-3"]),
    # Depth for copying the product name and ids from the prompt (induction needs layers).
    "demo-4layers": (["--init-range", "0.02", "--layers", "4"],
                     ["--lora-r", "64", "--lora-alpha", "128", "--modules-to-save", "embed_tokens", "--lr", "5e-3"]),
    "demo-rank32": (["--init-range", "0.02"],
                    ["--lora-r", "32", "--lora-alpha", "64", "--modules-to-save", "embed_tokens", "--lr", "5e-3"]),
}


def cli(argv: list[str]) -> None:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = po_tui(argv)
    if rc != 0:
        raise SystemExit(f"po-tui {' '.join(argv)} failed ({rc}):\n{err.getvalue()}")


def write_data(root: Path, train_n: int, held_n: int, seed: int) -> tuple[Path, Path]:
    rows = generate_concepts(train_n + held_n, seed)

    def record(row: dict) -> dict:
        answer = write_answer(row["concept"], row["requirements_yaml"], random.Random(0), style="compact")
        return {"prompt": render_student_prompt(row["concept"], row["requirements_yaml"]), "response": answer}

    data = root / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(record(r)) + "\n" for r in rows[:train_n]), encoding="utf-8")
    (data / "val.jsonl").write_text("".join(json.dumps(record(r)) + "\n" for r in rows[train_n:]), encoding="utf-8")
    held = root / "held.jsonl"
    held.write_text("".join(json.dumps(r) + "\n" for r in rows[train_n:]), encoding="utf-8")
    return data, held


def run_variant(name: str, root: Path, data: Path, held: Path, args: argparse.Namespace) -> dict:
    tiny_flags, train_flags = VARIANTS[name]
    work = root / name
    cli(["make-tiny-model", "--out", str(work / "tiny"), "--seed", str(args.seed), "--style", "compact", "--vocab-size", "4096",
         *tiny_flags])
    started = time.monotonic()
    cli(["train", "--data", str(data), "--base-model", str(work / "tiny"), "--out", str(work / "student"), *train_flags,
         "--lora-dropout", "0", "--batch-size", "4", "--max-steps", str(args.steps), "--seed", str(args.seed),
         "--logging-steps", "10", "--probe-every", str(max(1, args.steps // 3)), "--probe-prompts", "4"])
    train_s = time.monotonic() - started
    cli(["eval", "--dataset", str(held), "--base-model", str(work / "tiny"), "--adapter", str(work / "student"), "--tag", "student",
         "--out", str(work / "eval"), "--max-new-tokens", "400", "--retries", "0"])
    results = json.loads(next((work / "eval").glob("student_*.json")).read_text(encoding="utf-8"))["results"]
    scheme = IdScheme.of(r["requirements_yaml"] for r in results)
    names, precision, coverage, scores, valid = [], [], [], [], 0
    for r in results:
        extraction, check = check_text(r["raw_response"] or "")
        vision = extraction.vision.text if extraction.vision else None
        review = extraction.review.text if extraction.review else None
        g = ground_answer(vision, review, r["requirements_yaml"], scheme, valid=check.valid)
        valid += check.valid
        scores.append(r["score"] if check.valid and r.get("score") is not None else 0.0)
        names.append(bool(g.name_match))
        precision.append(len(g.existing) / len(g.cited) if g.cited else 0.0)
        coverage.append(g.coverage or 0.0)
    n = len(results)
    history = json.loads((work / "student" / "loss_history.json").read_text(encoding="utf-8"))
    losses = [h["loss"] for h in history if isinstance(h, dict) and h.get("loss") is not None] if isinstance(history, list) else []
    probes = [json.loads(line) for line in (work / "student" / "probes.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return {
        "variant": name, "steps": args.steps, "train_s": round(train_s, 1), "final_loss": losses[-1] if losses else None,
        "probes": " ".join(f"{p['step']}:{p['valid']}/{p['prompts']}" for p in probes),
        "valid": valid / n, "mean": sum(scores) / n, "name": sum(names) / n,
        "id_precision": sum(precision) / n, "id_coverage": sum(coverage) / n, "held_out": n,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="demo", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--train", type=int, default=200, help="training concepts")
    ap.add_argument("--held-out", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="po-tui-learning-") as tmp:
        root = Path(tmp)
        data, held = write_data(root, args.train, args.held_out, args.seed)
        for name in names:
            rows.append(run_variant(name, root, data, held, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    cols = ("variant", "steps", "train_s", "final_loss", "probes", "valid", "mean", "name", "id_precision", "id_coverage")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
