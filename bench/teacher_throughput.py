"""Teacher throughput against the fake Gemini server: accepted records/min vs the ideal C/latency.

    .venv/bin/python bench/teacher_throughput.py [--latency 0.5] [--concurrency 1 8 32 64] [--waves 6]

The fake server runs in a child process (so its answer writing does not compete with the stage for
the GIL) and answers every request after a fixed latency with a valid Product Owner answer. Each
row runs the real stage (`po-tui teacher --provider gemini`, real google-genai client) for
`waves x C` records and reports accepted records per minute and the ratio to C / latency.
Target: >= 0.85 of the ideal at C = 32.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "bench-key"


def serve(latency: float, port_queue: mp.Queue, stop: mp.Event) -> None:
    from tests.fakes.llm_servers import FakeGemini
    from tests.fakes.po_responder import po_responder

    with FakeGemini(po_responder, latency_s=latency) as server:
        port_queue.put(server.url)
        stop.wait()


def run_one(url: str, concurrency: int, records: int, workdir: Path) -> dict:
    from engine.cli import main
    from engine.stages.concepts import generate_concepts
    from engine.store.atomic import atomic_write_jsonl

    concepts = workdir / f"concepts-{concurrency}.jsonl"
    atomic_write_jsonl(concepts, generate_concepts(records, seed=concurrency))
    out = workdir / f"out-{concurrency}"
    argv = [
        "teacher", "--concepts", str(concepts), "--out", str(out), "--provider", "gemini",
        "--base-url", url, "--concurrency", str(concurrency), "--max-records", str(records),
    ]
    with contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"teacher failed at C={concurrency}")
    summary = json.loads((out / "teacher_run.json").read_text())["summary"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--waves", type=int, default=20, help="records per run = waves x C (at least 12)")
    args = parser.parse_args()
    os.environ["GEMINI_API_KEY"] = KEY

    ctx = mp.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve, args=(args.latency, port_queue, stop), daemon=True)
    server.start()
    url = port_queue.get(timeout=30)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in args.concurrency:
                records = max(12, args.waves * c)
                summary = run_one(url, c, records, Path(tmp))
                per_min = summary["accepted"] / summary["elapsed_s"] * 60
                ideal = c / args.latency * 60
                rows.append((c, records, summary["elapsed_s"], per_min, ideal, per_min / ideal))
    finally:
        stop.set()
        server.join(timeout=10)
    print(f"latency {args.latency:.2f}s per request, {args.waves} waves per run, cpus {os.cpu_count()}")
    print("| concurrency | records | wall s | accepted/min | ideal/min (C/latency) | ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c, n, wall, per_min, ideal, ratio in rows:
        print(f"| {c} | {n} | {wall:.2f} | {per_min:.1f} | {ideal:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
