"""The CUDA paths of `po-tui train`, checked on a CPU box by stating the hardware.

A test states the GPUs (count, native bf16 or not) by monkeypatching torch.cuda, then checks
what the run decides: the compute dtype (a T4 emulates bf16), activation checkpointing (on by
default for CUDA), the one GPU a single-process run is pinned to on a multi-GPU host, sharded
QLoRA's storage dtype, that the TrainingArguments exist before the model loads (ZeRO-3) and that
every rank saves through the Trainer (FSDP gathers). The parts that run on CPU also run: training
with checkpointing, and a NaN loss stopping the run with one line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from engine.runlog.tail import read_events  # noqa: E402
from engine.stages.tiny_model import make_tiny_model  # noqa: E402
from engine.stages.train.runner import check_inputs, training_arguments  # noqa: E402
from engine.stages.train.settings import TrainSettings  # noqa: E402
from tests.test_train import QUICK, lora_b_norm, records, run_cli, write_jsonl  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gpu-paths")


@pytest.fixture(scope="module")
def tiny(work) -> Path:
    return make_tiny_model(work / "tiny", seed=0)


@pytest.fixture(scope="module")
def data(work) -> Path:
    rows = records(6)
    d = work / "data"
    write_jsonl(d / "train.jsonl", rows[:4])
    write_jsonl(d / "val.jsonl", rows[4:])
    return d


@pytest.fixture
def gpus(monkeypatch):
    """gpus(count, native_bf16): what torch.cuda reports. A T4 (sm75) has no native bf16, yet
    torch.cuda.is_bf16_supported() says True there unless asked `including_emulation=False`."""

    def state(count: int, native_bf16: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16 or including_emulation)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0) if native_bf16 else (7, 5))

    return state


def settings(tiny: Path, data: Path, out: Path, **kw) -> TrainSettings:
    return TrainSettings(data=str(data), base_model=str(tiny), out=str(out), **kw)


# --- item 5: the compute dtype ------------------------------------------------------------------


def test_a_t4_computes_in_fp16_not_in_emulated_bf16(tiny, data, work, gpus):
    gpus(1, native_bf16=False)
    plan = check_inputs(settings(tiny, data, work / "t4"))
    assert (plan.device, plan.dtype) == ("cuda", "float16")
    gpus(1, native_bf16=True)  # an A100, L4, H100
    assert check_inputs(settings(tiny, data, work / "a100")).dtype == "bfloat16"
    gpus(1, native_bf16=False)
    assert check_inputs(settings(tiny, data, work / "t4", compute_dtype="float32")).dtype == "float32"
    gpus(0)
    assert check_inputs(settings(tiny, data, work / "cpu")).dtype == "float32"


def test_eval_on_a_t4_decodes_in_fp16(gpus, tmp_path):
    from engine.stages.eval.local import _device_and_dtype
    from engine.stages.eval.settings import EvalSettings

    s = EvalSettings(dataset="d.jsonl", out=str(tmp_path), tag="student", base_model="b")
    gpus(1, native_bf16=False)
    assert _device_and_dtype(s) == ("cuda", "float16")
    gpus(1, native_bf16=True)
    assert _device_and_dtype(s) == ("cuda", "bfloat16")


def test_a_nan_loss_message_names_the_fp16_overflow_and_the_fix():
    from engine.stages.train.loss_guard import nonfinite_loss_message

    line = nonfinite_loss_message("loss", float("nan"), 12, "float16")
    assert "nan at step 12 in float16" in line and "--compute-dtype float32" in line and "bf16" in line
    assert "\n" not in line
    other = nonfinite_loss_message("eval_loss", float("inf"), 3, "bfloat16")
    assert "validation loss is inf at step 3 in bfloat16" in other and "--lr" in other


@pytest.fixture(scope="module")
def poisoned(work, tiny) -> Path:
    """The tiny model with a NaN in its final norm: every logit, so every loss, is NaN."""
    from safetensors.torch import load_file, save_file

    out = work / "poisoned"
    shutil.copytree(tiny, out)
    weights = load_file(str(out / "model.safetensors"))
    weights["model.norm.weight"][0] = float("nan")
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


@pytest.mark.slow
def test_a_nan_loss_stops_training_with_one_line_and_a_failed_job(work, poisoned, data):
    out = work / "nan"
    rc, _, err = run_cli(["train", "--data", str(data / "train.jsonl"), "--base-model", str(poisoned), "--out", str(out),
                          *QUICK, "--max-steps", "4", "--logging-steps", "1"])
    assert rc == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("po-tui train: failed: the training loss is nan at step 1 in float32"), err
    events = read_events(out / "train.events.jsonl")
    steps = [e["data"] for e in events if e["type"] == "train_step"]
    assert [s["step"] for s in steps] == [1] and steps[0]["loss"] == "NaN"  # logged as it was, not hidden
    error = next(e["data"] for e in events if e["type"] == "error")
    assert error["code"] == "stage_failed" and "loss is nan at step 1" in error["message"]
    assert events[-1]["type"] == "job_finished" and events[-1]["data"]["state"] == "failed"
    assert not (out / "adapter_model.safetensors").exists()


# --- item 2: activation checkpointing -----------------------------------------------------------


def test_checkpointing_is_on_by_default_on_cuda_and_off_on_cpu(tiny, data, work, gpus):
    assert TrainSettings().gradient_checkpointing == "auto"
    gpus(1)
    assert check_inputs(settings(tiny, data, work / "c1")).checkpointing is True
    assert check_inputs(settings(tiny, data, work / "c1", gradient_checkpointing="off")).checkpointing is False
    gpus(0)
    assert check_inputs(settings(tiny, data, work / "c2")).checkpointing is False
    plan = check_inputs(settings(tiny, data, work / "c2", gradient_checkpointing="on"))
    assert plan.checkpointing is True
    # A config file's true/false still mean on/off.
    assert TrainSettings(gradient_checkpointing=True).gradient_checkpointing == "on"
    assert TrainSettings(gradient_checkpointing=False).gradient_checkpointing == "off"
    # The Trainer gets it, non-reentrant (peft's frozen inputs need no requires_grad hook).
    args = training_arguments(settings(tiny, data, work / "c2"), plan, has_eval=False)
    name = "activation_checkpointing" if hasattr(args, "activation_checkpointing") else "gradient_checkpointing"
    assert getattr(args, name) is True and getattr(args, f"{name}_kwargs") == {"use_reentrant": False}


def test_the_checkpointing_flag_takes_a_value_or_none():
    from engine.commands import train as train_cmd
    from engine.commands.settingsflags import resolve_settings
    from engine.stages.train.settings import TrainSettings

    parser = argparse.ArgumentParser()
    train_cmd.register(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))

    def parsed(*flags: str) -> str:
        args = parser.parse_args(["train", "--data", "d", "--out", "o", *flags])
        return resolve_settings(TrainSettings, args, section="train").gradient_checkpointing

    assert parsed() == "auto"
    assert parsed("--gradient-checkpointing") == "on"
    assert parsed("--gradient-checkpointing", "off") == "off"


@pytest.mark.slow
@pytest.mark.parametrize("quant", [[], ["--load-4bit"]], ids=["lora", "qlora"])
def test_training_with_checkpointing_recomputes_and_still_moves_the_adapter(work, tiny, data, monkeypatch, quant):
    if quant:
        pytest.importorskip("bitsandbytes")
    import transformers.modeling_utils as modeling_utils

    calls = []
    original = modeling_utils.checkpoint

    def counted(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return original(*args, **kwargs)

    monkeypatch.setattr(modeling_utils, "checkpoint", counted)
    out = work / f"ckpt-{'-'.join(quant) or 'lora'}"
    rc, _, err = run_cli(["train", "--data", str(data / "train.jsonl"), "--base-model", str(tiny), "--out", str(out),
                          *QUICK, *quant, "--max-steps", "2", "--gradient-checkpointing"])
    assert rc == 0, err
    assert calls and set(calls) == {False}  # every decoder layer, non-reentrant
    assert lora_b_norm(out) > 0  # gradients reached the adapter through the recomputed layers
    assert json.loads((out / "po_tui_train.json").read_text())["hyperparameters"]["gradient_checkpointing"] is True


# --- item 7: one GPU unless --gpus says more ------------------------------------------------------


def test_launch_plan_pins_one_gpu_unless_gpus_asks_for_ddp(tmp_path):
    from engine.stages.train.launch import launch_plan

    path = tmp_path / "train_settings.json"
    plain = TrainSettings(data="d", out=str(tmp_path))
    one = launch_plan(plain, "cuda", 4, path, environ={})
    assert one is not None and one.argv[1:] == ["-m", "engine.stages.train.worker", str(path)]
    assert one.env["CUDA_VISIBLE_DEVICES"] == "0"
    narrowed = launch_plan(plain, "cuda", 2, path, environ={"CUDA_VISIBLE_DEVICES": "GPU-ab12,GPU-cd34"})
    assert narrowed is not None and narrowed.env["CUDA_VISIBLE_DEVICES"] == "GPU-ab12"
    assert launch_plan(TrainSettings(data="d", out="o", gpus=1), "cuda", 8, path, environ={}).env["CUDA_VISIBLE_DEVICES"] == "0"
    ddp = launch_plan(TrainSettings(data="d", out="o", gpus=2), "cuda", 4, path, environ={})
    assert ddp is not None and "torch.distributed.run" in ddp.argv and "--nproc_per_node=2" in ddp.argv
    assert "CUDA_VISIBLE_DEVICES" not in ddp.env and "OMP_NUM_THREADS" not in ddp.env
    assert launch_plan(plain, "cuda", 1, path, environ={}) is None  # one GPU: in this process
    assert launch_plan(plain, "cpu", 0, path, environ={}) is None


class FakeChild:
    """Stands in for the launched process: records what it was started with, exits with 2."""

    started: list[tuple[list[str], dict[str, str]]] = []

    def __init__(self, argv, env=None, **_):
        FakeChild.started.append((list(argv), dict(env or {})))

    def wait(self, timeout=None):
        return 2

    def poll(self):
        return 2


@pytest.mark.parametrize("flags,expect", [([], "pinned"), (["--gpus", "1"], "pinned"), (["--gpus", "3"], "torchrun")])
def test_a_four_gpu_host_trains_on_one_unless_told(work, tiny, data, gpus, monkeypatch, flags, expect):
    import engine.stages.train.launch as launch

    gpus(4)
    monkeypatch.setattr(launch.subprocess, "Popen", FakeChild)
    FakeChild.started = []
    out = work / f"four-{expect}-{len(flags)}"
    rc, _, err = run_cli(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(out), *flags])
    assert rc == 2, err  # the fake child's exit code, passed on
    [(argv, env)] = FakeChild.started
    if expect == "pinned":
        assert argv[1:3] == ["-m", "engine.stages.train.worker"] and env["CUDA_VISIBLE_DEVICES"] == "0"
        assert "one process on GPU 0 of the 4 visible" in err
    else:
        assert "--nproc_per_node=3" in argv  # each rank takes its LOCAL_RANK's GPU: nothing narrowed
        assert env.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
    assert TrainSettings.model_validate_json(Path(argv[-1]).read_text()).out == str(out)


# --- item 3: sharded weights (FSDP / ZeRO-3) -------------------------------------------------------


def test_sharded_qlora_stores_the_4bit_weights_in_the_compute_dtype(tiny, data, work):
    pytest.importorskip("bitsandbytes")
    from engine.stages.train.runner import load_base

    def linear4bit(s):
        model = load_base(s, check_inputs(s))
        return model, next(m for m in model.modules() if type(m).__name__ == "Linear4bit")

    sharded = settings(tiny, data, work / "s1", load_4bit=True, compute_dtype="bfloat16", fsdp="full_shard auto_wrap")
    model, layer = linear4bit(sharded)
    assert layer.weight.dtype == torch.bfloat16 and layer.weight.quant_type == "nf4"
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # one float dtype: FSDP can flatten it
    _, plain = linear4bit(settings(tiny, data, work / "s2", load_4bit=True, compute_dtype="bfloat16"))
    assert plain.weight.dtype == torch.uint8  # unsharded: bitsandbytes' packed default


def test_zero3_counts_as_sharded_and_8bit_cannot_be(tiny, data, work):
    from engine.stages.train.device import shards_weights

    stage3, stage2 = work / "z3.json", work / "z2.json"
    stage3.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    stage2.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert check_inputs(settings(tiny, data, work / "z", deepspeed=str(stage3))).sharded is True
    assert check_inputs(settings(tiny, data, work / "z", deepspeed=str(stage2))).sharded is False
    assert shards_weights("full_shard auto_wrap", None) and not shards_weights(None, None)
    rc, _, err = run_cli(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(work / "z8"),
                          "--load-8bit", "--fsdp", "full_shard auto_wrap"])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--load-8bit" in err and "--load-4bit" in err


@pytest.mark.slow
def test_arguments_come_before_the_model_and_every_rank_saves_through_the_trainer(work, tiny, data, monkeypatch):
    """ZeRO-3 shards the load only when the TrainingArguments (its DeepSpeed config) exist first;
    FSDP gathers the adapter in Trainer.save_model, a collective every rank must enter. Here the
    run plays a rank other than 0: it must still call save_model with the output folder."""
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from engine.runlog.job import NullEvents
    from engine.stages.train.runner import train

    order: list[str] = []
    post_init = TrainingArguments.__post_init__
    monkeypatch.setattr(TrainingArguments, "__post_init__", lambda self: (order.append("arguments"), post_init(self))[1])
    load = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        classmethod(lambda cls, *a, **k: (order.append("model"), load(*a, **k))[1]))
    saved: list[str] = []
    save = Trainer.save_model  # checkpoints (_internal_call) still go through the real one
    monkeypatch.setattr(Trainer, "is_world_process_zero", lambda self: False)
    monkeypatch.setattr(Trainer, "save_model", lambda self, output_dir=None, _internal_call=False: (
        save(self, output_dir, _internal_call) if _internal_call else saved.append(output_dir)))
    out = work / "rank1"
    s = settings(tiny, data, out, lora_r=8, lora_alpha=16, batch_size=2, max_steps=1)
    assert train(s, NullEvents()) == {}  # not rank 0: no record of its own
    assert order.index("arguments") < order.index("model"), order
    assert saved == [str(out)]
    assert not (out / "adapter_model.safetensors").exists()  # the real save_model writes on rank 0 only
