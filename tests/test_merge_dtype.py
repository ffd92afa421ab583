"""`po-tui export merge` writes bf16 unless told otherwise.

Qwen2 was trained in bf16 and its activations overflow in fp16 in transformers, so a merged
student saved in fp16 by default would be a worse model than the adapter it came from; llama.cpp's
GGUF conversion and Ollama's import read bf16 as well.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from engine.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # --help
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def test_merge_help_names_bfloat16_as_the_default():
    rc, stdout, _ = _cli(["export", "merge", "--help"])
    assert rc == 0 and "default: bfloat16" in " ".join(stdout.split())


def test_merge_without_dtype_writes_bfloat16_weights(tmp_path):
    from peft import LoraConfig, get_peft_model
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from engine.stages.tiny_model import make_tiny_model

    tiny = make_tiny_model(tmp_path / "tiny", seed=0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32, local_files_only=True)
    adapter = tmp_path / "adapter"
    get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")).save_pretrained(str(adapter))
    out = tmp_path / "merged"
    rc, _, err = _cli(["export", "merge", "--adapter", str(adapter), "--base-model", str(tiny), "--out", str(out)])
    assert rc == 0, err
    assert json.loads((out / "po_tui_export.json").read_text())["dtype"] == "bfloat16"
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(str(out / "model.safetensors"), framework="pt") as fh:
        dtypes = {fh.get_tensor(name).dtype for name in fh.keys()}
    assert dtypes == {torch.bfloat16}


def test_the_pipeline_merges_with_the_same_default():
    from engine.pipeline.config import ExportSection
    from engine.stages.export import DEFAULT_DTYPE

    assert ExportSection().dtype == DEFAULT_DTYPE == "bfloat16"
