"""bench/gpu_check.py keeps working: its dry run (every step on the tiny shapes, on the CPU) passes,
and the memory estimates in docs/gpu.md are what bench/gpu_memory.py computes.

The GPU run itself cannot happen here; the dry run goes through the same step functions and the
same product code (train, resume, QLoRA, 4-bit eval, the out-of-memory split, batched-vs-single
agreement, merge), so breakage shows before someone takes the check to a GPU box.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["device", "build", "lora_train", "checkpoint_resume", "qlora_train", "eval_4bit", "oom_split",
         "agreement_bf16", "agreement_fp32", "merge"]


def _bench(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    import importlib

    return importlib.import_module(name)


def test_dry_run_passes_every_step_through_the_product_code(tmp_path):
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--workdir", str(tmp_path / "w"), "--json", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows = {r["step"]: r for r in doc["steps"]}
    assert list(rows) == STEPS and doc["passed"] is True and doc["dry_run"] is True
    assert all(r["status"] == "pass" for r in rows.values()), {n: r["detail"] for n, r in rows.items()}
    for name in STEPS:  # one table row per step
        assert re.search(rf"^\| {name} \| pass \| [0-9.]+ \| - \| .+ \|$", proc.stdout, re.M), name
    assert rows["checkpoint_resume"]["data"]["steps"] == 3
    oom = rows["oom_split"]["data"]
    assert oom["oom_splits"] >= 1 and min(oom["batch_sizes"]) >= 2  # split, and stopped where it fits
    assert rows["eval_4bit"]["data"]["device"] == "cpu"
    assert rows["agreement_fp32"]["data"]["answers"] == 1.0
    assert rows["merge"]["data"]["dtypes"] == ["bfloat16"] and rows["merge"]["data"]["config"]["rope_theta"] == 1e6


def test_without_cuda_and_without_dry_run_the_device_step_fails_and_names_the_way_out(tmp_path):
    check = _bench("gpu_check")
    row = check.measured("device", check.Context(str(tmp_path), "tiny-random", "tiny-random-tied", dry_run=False))
    assert row["status"] == "fail" and "--dry-run" in row["detail"]


def test_a_failed_step_fails_the_check_and_skips_what_needs_it(tmp_path, monkeypatch):
    check = _bench("gpu_check")

    def broken(_ctx):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")

    steps = [("device", lambda _ctx: check.result(True, "ok"), ()), ("build", broken, ("device",)),
             ("lora_train", lambda _ctx: check.result(True, "ok"), ("build",))]
    monkeypatch.setattr(check, "STEPS", steps)
    rows = check.run_all(check.Context(str(tmp_path), "tiny-random", "tiny-random-tied", True), isolate=False, timeout=10)
    assert [(r["step"], r["status"]) for r in rows] == [("device", "pass"), ("build", "fail"), ("lora_train", "skip")]
    assert rows[1]["detail"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert "| build | fail |" in check.table(rows)


def test_documented_memory_table_is_what_gpu_memory_computes():
    table = _bench("gpu_memory").table()
    doc = (ROOT / "docs" / "gpu.md").read_text(encoding="utf-8")
    assert table in doc
    # The seeds' T4 run (QLoRA, batch 1, checkpointing) is the one 16 GB configuration in reach.
    assert "| QLoRA (nf4) | 1 x 2,048 | on |" in table
