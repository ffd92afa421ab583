"""Teacher cost per 1,000 accepted records, by model, mode (interactive or batch) and thinking budget.

    .venv/bin/python bench/teacher_cost.py [--records 300 (concepts)] [--seed 0] [--dynamic-flash 2000] [--dynamic-pro 4000] [--json]

Why a script and not a price list: what a record costs is the price table times what a record
takes, and what it takes (requests per accepted record, tokens per request) comes from a run.
This one runs the real teacher stage with the synthetic provider (offline, deterministic, a few
seconds), measures from its responses.jsonl the requests per accepted record (retries and rejected
samples included: they are paid for too), the input and answer tokens per request and the
acceptance rate, and prices them with the built-in table (engine/stages/teacher/pricing.py) for
every (model, mode, thinking budget).

Assumptions, printed with the table:
- Thinking tokens per request: a budget is an upper bound, not a quantity; the table assumes the
  budget is used in full (the worst case: the real figure is at most this), 0 for off, and for
  dynamic (-1) the `--dynamic-*` figure. Measure your own with `po-tui teacher --stats`.
- The synthetic provider's token counts are characters / 4 and its acceptance comes from its
  default defect rates; a real teacher's answers and acceptance differ. Thinking is assumed not to
  change acceptance.
- gemini-2.5-pro cannot turn thinking off (its lowest budget is 128): no `off` row.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("gemini-2.5-flash", "gemini-2.5-pro")
BUDGETS = ("off", "1024", "8192", "dynamic")
MODES = ("interactive", "batch")


def measure(records: int, seed: int, workdir: Path) -> dict:
    """Requests per accepted record and tokens per request, from a synthetic teacher run."""
    from engine.cli import main
    from engine.stages.concepts import generate_concepts
    from engine.store.atomic import atomic_write_jsonl

    concepts = workdir / "concepts.jsonl"
    atomic_write_jsonl(concepts, generate_concepts(records, seed=seed))
    out = workdir / "teacher"
    argv = ["teacher", "--concepts", str(concepts), "--out", str(out), "--provider", "synthetic", "--seed", str(seed),
            "--concurrency", "16"]  # every concept once, no target: the same counts whatever the timing
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(argv)
    if code != 0:
        raise SystemExit(f"the synthetic teacher run failed (exit {code}): {err.getvalue().strip()}")
    summary = json.loads((out / "teacher_run.json").read_text())["summary"]
    requests = summary["requests"]
    if not summary["accepted"] or not requests:
        raise SystemExit("the synthetic teacher run accepted nothing: no cost per record to compute")
    return {
        "records": summary["accepted"],
        "rejected": summary["rejected"],
        "acceptance_rate": summary["acceptance_rate"],
        "requests_per_accepted": requests / summary["accepted"],
        "input_tokens_per_request": summary["input_tokens"] / requests,
        "answer_tokens_per_request": (summary["output_tokens"] - summary["thinking_tokens"]) / requests,
    }


def thinking_tokens(model: str, budget: str, dynamic: dict[str, int]) -> int | None:
    """Assumed thinking tokens per request (None: the model cannot take this budget)."""
    if budget == "off":
        return None if model == "gemini-2.5-pro" else 0
    if budget == "dynamic":
        return dynamic[model]
    return int(budget)


def cost_table(m: dict, dynamic: dict[str, int]) -> list[dict]:
    """$ per 1,000 accepted records for every (model, mode, budget) from measured counts `m`."""
    from engine.stages.teacher.pricing import PriceTable

    prices = PriceTable()
    rows = []
    for model in MODELS:
        for mode in MODES:
            for budget in BUDGETS:
                thinking = thinking_tokens(model, budget, dynamic)
                if thinking is None:
                    continue
                per_request = prices.cost(model, m["input_tokens_per_request"], m["answer_tokens_per_request"] + thinking,
                                          batch=mode == "batch")
                rows.append({"model": model, "mode": mode, "thinking_budget": budget, "thinking_tokens_per_request": thinking,
                             "usd_per_1000_accepted": round(1000 * m["requests_per_accepted"] * per_request, 4)})
    return rows


def markdown(m: dict, rows: list[dict], as_of: str) -> str:
    lines = [
        f"Measured (synthetic teacher, {m['records']} accepted, {m['rejected']} rejected): acceptance {m['acceptance_rate']:.1%}, "
        f"{m['requests_per_accepted']:.3f} requests per accepted record, {m['input_tokens_per_request']:.0f} input and "
        f"{m['answer_tokens_per_request']:.0f} answer tokens per request. Prices as of {as_of}.",
        "",
        "| model | mode | thinking budget | thinking tokens / request (assumed) | $ per 1,000 accepted |",
        "|---|---|---|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['mode']} | {r['thinking_budget']} | {r['thinking_tokens_per_request']:,} | "
              f"{r['usd_per_1000_accepted']:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300, help="concepts the synthetic run asks, each once (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dynamic-flash", type=int, default=2000, metavar="N", help="assumed thinking tokens, flash, dynamic budget")
    parser.add_argument("--dynamic-pro", type=int, default=4000, metavar="N", help="assumed thinking tokens, pro, dynamic budget")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the Markdown table")
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    from engine.stages.teacher.pricing import PRICES_AS_OF

    dynamic = {"gemini-2.5-flash": args.dynamic_flash, "gemini-2.5-pro": args.dynamic_pro}
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(args.records, args.seed, Path(tmp))
    rows = cost_table(measured, dynamic)
    if args.json:
        print(json.dumps({"measured": measured, "prices_as_of": PRICES_AS_OF, "assumed_dynamic_thinking": dynamic, "rows": rows}, indent=2))
    else:
        print(markdown(measured, rows, PRICES_AS_OF))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
