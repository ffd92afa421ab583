"""bench/train_throughput.py keeps working: a one-step run of its random-weights path on CPU.

Not a timing test (numbers are not checked against targets): the 7B GPU path cannot run here,
so this runs the same builder and child processes on the `tiny-random` shape, with 4-bit, to
catch breakage before someone takes the script to a GPU box.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[1]


def test_random_weights_path_runs_both_recipes_with_4bit(tmp_path):
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--shape", "tiny-random", "--random-weights",
         "--quant", "4bit", "--records", "4", "--batch-size", "2", "--steps", "1", "--warmup-steps", "1",
         "--max-seq-len", "2048", "--workdir", str(tmp_path / "w"), "--json", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["recipe"], r["quant"]) for r in rows] == [("masked-dynamic", "4bit"), ("replaced", "4bit")]
    masked, replaced = rows
    # Same examples, same useful tokens; only the masked recipe leaves the prompt out of the loss.
    assert masked["tokens_per_example"] == replaced["tokens_per_example"]
    assert masked["supervised_per_example"] < replaced["supervised_per_example"] == replaced["tokens_per_example"]
    assert all(r["examples_per_s"] > 0 and r["peak_gib"] > 0 for r in rows)
    assert "| masked-dynamic | 4bit |" in proc.stdout and "1.00x" in proc.stdout
    config = json.loads((tmp_path / "w" / "tiny-random" / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["hidden_size"] == 64


def test_named_shapes_need_random_weights():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--shape", "qwen2.5-7b"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--random-weights" in proc.stderr
