"""`po-tui train` on the tiny Qwen2 model: completion-only loss, QLoRA on CPU, resume, DDP launch.

The tiny model does not learn the answer format in a handful of CPU steps, so these tests check
what training must guarantee (masking, padding, events, files, resume continuity, sharding across
ranks) rather than the quality of generations.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from engine.cli import main  # noqa: E402
from engine.core.prompts import encode_prompt, render_student_prompt  # noqa: E402
from engine.providers.po_writer import write_answer  # noqa: E402
from engine.runlog.tail import read_events  # noqa: E402
from engine.stages.concepts import generate_concepts  # noqa: E402
from engine.stages.tiny_model import make_tiny_model  # noqa: E402
from engine.stages.train.data import IGNORE_INDEX, Pair, encode_pairs, read_pairs  # noqa: E402
from engine.stages.train.settings import TrainSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

# Small and quick: 8 examples, 2 per batch, the tiny model's recipe (r8/alpha16, all linear, lr 1e-2).
QUICK = ["--lora-r", "8", "--lora-alpha", "16", "--lr", "1e-2", "--batch-size", "2", "--seed", "3"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def records(n: int, seed: int = 5) -> list[dict]:
    rows = []
    for row in generate_concepts(n, seed):
        prompt = render_student_prompt(row["concept"], row["requirements_yaml"])
        answer = write_answer(row["concept"], row["requirements_yaml"], random.Random(row["concept_id"]))
        rows.append({"prompt": prompt, "response": answer, "concept_id": row["concept_id"]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def tiny(work) -> Path:
    return make_tiny_model(work / "tiny", seed=0)


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


@pytest.fixture(scope="module")
def data(work) -> Path:
    """prep's layout: train.jsonl and val.jsonl."""
    rows = records(10)
    d = work / "data"
    write_jsonl(d / "train.jsonl", rows[:8])
    write_jsonl(d / "val.jsonl", rows[8:])
    return d


def train_events(out: Path) -> list[dict]:
    return read_events(out / "train.events.jsonl")


def lora_b_norm(adapter: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    bs = [t for k, t in weights.items() if "lora_B" in k]
    assert bs, "no LoRA B matrices in the adapter"
    return float(sum(t.float().norm() for t in bs))


# --- data: completion-only labels and dynamic padding -------------------------------------------


def test_labels_mask_the_prompt_and_keep_the_answer_and_eos(tokenizer):
    pair = Pair(prompt="Concept: a bike map.\nrequirements: []", response="```yaml\nVISION: x\n```", path="f", line=1)
    enc = encode_pairs([pair], tokenizer, max_seq_len=512, chat=True)
    ex = enc.examples[0]
    prompt_ids = encode_prompt(tokenizer, pair.prompt, chat=True)
    n = len(prompt_ids)
    assert ex["input_ids"][:n] == prompt_ids
    assert ex["labels"][:n] == [IGNORE_INDEX] * n
    answer = ex["labels"][n:]
    assert IGNORE_INDEX not in answer and answer == ex["input_ids"][n:]
    assert answer[-1] == tokenizer.eos_token_id  # the student learns to stop
    assert tokenizer.decode(answer[:-1]) == pair.response
    # The chat template wraps the prompt: the model is conditioned on the assistant turn's opening.
    assert tokenizer.decode(prompt_ids).endswith("<|im_start|>assistant\n")
    assert len(ex["attention_mask"]) == len(ex["input_ids"])


def test_plain_prompt_without_chat_template(tokenizer):
    pair = Pair(prompt="P", response="R", path="f", line=1)
    ex = encode_pairs([pair], tokenizer, max_seq_len=64, chat=False).examples[0]
    n = ex["labels"].count(IGNORE_INDEX)
    assert tokenizer.decode(ex["input_ids"][:n]) == "P\n\n"


def test_answers_longer_than_the_room_are_cut_and_counted(tokenizer):
    pair = Pair(prompt="short prompt", response="word " * 400, path="f", line=1)
    enc = encode_pairs([pair], tokenizer, max_seq_len=64, chat=True)
    assert enc.truncated == 1 and len(enc.examples[0]["input_ids"]) == 64


def test_collator_pads_each_batch_to_its_longest_example(tokenizer):
    from transformers import DataCollatorForSeq2Seq

    pairs = [Pair("a", "short", "f", 1), Pair("b", "a much longer answer than the other one " * 3, "f", 2)]
    enc = encode_pairs(pairs, tokenizer, max_seq_len=2048, chat=True)
    batch = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)(enc.examples)
    longest = max(len(e["input_ids"]) for e in enc.examples)
    assert batch["input_ids"].shape == (2, longest) and longest < 2048
    short = len(enc.examples[0]["input_ids"])
    assert batch["labels"][0, short:].tolist() == [IGNORE_INDEX] * (longest - short)
    assert batch["attention_mask"][0, short:].sum() == 0


def test_reads_every_record_layout(work):
    rows = records(2)
    teacher = {
        "concept": "c", "requirements_yaml": "r: 1",
        "teacher_product_vision": "product_name: X", "teacher_product_owner_review": "status: aligned",
    }
    chat = {"messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "a"}]}
    path = write_jsonl(work / "layouts.jsonl", [rows[0], teacher, chat])
    pairs = read_pairs(path)
    assert [p.line for p in pairs] == [1, 2, 3]
    assert pairs[1].prompt.startswith("You are the Product Owner") and "```yaml" in pairs[1].response
    assert (pairs[2].prompt, pairs[2].response) == ("p", "a")


# --- a training run --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(work, tiny, data) -> tuple[Path, str]:
    out = work / "adapter"
    rc, _, err = run_cli(
        ["train", "--data", str(data), "--base-model", str(tiny), "--out", str(out), *QUICK,
         "--max-steps", "6", "--logging-steps", "2", "--eval-steps", "3", "--save-steps", "3"]
    )
    assert rc == 0, err
    return out, err


def test_training_writes_adapter_tokenizer_history_and_card(trained, tiny, data):
    out, err = trained
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "training_args.json",
                 "loss_history.json", "po_tui_train.json", "README.md"):
        assert (out / name).exists(), name
    assert lora_b_norm(out) > 0  # LoRA B starts at zero: training moved it
    info = json.loads((out / "po_tui_train.json").read_text())
    assert info["steps"] == 6 and info["train_examples"] == 8 and info["val_examples"] == 2
    assert info["prompt_format"] == {"chat_template": True, "max_seq_len": 2048}
    assert info["data"]["sha256"] and info["data"]["bytes"] == (data / "train.jsonl").stat().st_size
    assert info["hyperparameters"]["lora_r"] == 8 and info["hyperparameters"]["target_modules"] == "all-linear"
    loss = info["loss"]
    assert all(isinstance(loss[k], float) for k in ("first", "final", "mean", "final_eval"))
    config = json.loads((out / "adapter_config.json").read_text())
    projections = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {m.rsplit(".", 1)[-1] for m in config["target_modules"]} >= projections
    card = (out / "README.md").read_text()
    assert f"base_model: {tiny}" in card and info["data"]["sha256"] in card
    assert f"| first | {loss['first']:.4g} |" in card and "Not evaluated yet" in card
    # Headless progress: one plain line per logging step, not the Trainer's raw dicts.
    assert "step 2/6" in err and "loss " in err and "{'loss'" not in err
    assert "6 steps" in err.splitlines()[-1]


def test_training_events_follow_every_step_eval_and_checkpoint(trained):
    out, _ = trained
    events = train_events(out)
    types = [e["type"] for e in events]
    assert types[0] == "job_started" and types[-1] == "job_finished"
    assert events[-1]["data"]["state"] == "succeeded"
    steps = [e["data"] for e in events if e["type"] == "train_step"]
    assert [s["step"] for s in steps] == [1, 2, 4, 6]  # the first step, then every 2
    for s in steps:
        assert s["max_steps"] == 6 and s["loss"] > 0 and s["learning_rate"] >= 0 and s["epoch"] > 0
        assert s["grad_norm"] is not None and s["tokens_seen"] > 0
        assert "gpu_mem_peak_gb" not in s  # CPU run
    assert all(s["tokens_per_s"] > 0 for s in steps[1:])
    evals = [e["data"] for e in events if e["type"] == "train_eval"]
    assert [e["step"] for e in evals] == [3, 6] and all(e["eval_loss"] > 0 for e in evals)
    ckpts = [e["data"] for e in events if e["type"] == "checkpoint"]
    assert [c["step"] for c in ckpts] == [3, 6]
    assert all(Path(c["path"]).is_dir() for c in ckpts)
    summary = events[-1]["data"]["summary"]
    assert summary["steps"] == 6 and summary["adapter"] == str(out)


def test_the_loss_is_on_answer_tokens_only(work, tiny, data):
    """Train's first logged loss is the model's loss over the answer tokens of the first batch."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq

    out = work / "one-step"
    rc, _, err = run_cli(["train", "--data", str(data / "train.jsonl"), "--base-model", str(tiny), "--out", str(out),
                          *QUICK, "--batch-size", "8", "--max-steps", "1", "--lora-dropout", "0"])
    assert rc == 0, err
    first = next(e["data"]["loss"] for e in train_events(out) if e["type"] == "train_step")
    tok = AutoTokenizer.from_pretrained(tiny)
    enc = encode_pairs(read_pairs(data / "train.jsonl"), tok, max_seq_len=2048, chat=True)
    batch = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=IGNORE_INDEX)(enc.examples)
    base = AutoModelForCausalLM.from_pretrained(tiny)
    model = PeftModel.from_pretrained(base, out)
    with model.disable_adapter(), torch.no_grad():  # the loss at step 1 is before the update
        masked = model(**batch).loss.item()
        everything = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)).loss.item()
    assert first == pytest.approx(masked, rel=1e-3)
    assert abs(masked - everything) > 1e-3  # the two differ, so the check above means something


@pytest.mark.parametrize("flag,layer", [("--load-4bit", "Linear4bit"), ("--load-8bit", "Linear8bitLt")])
def test_quantised_base_loads_and_trains_on_cpu(work, tiny, data, flag, layer):
    pytest.importorskip("bitsandbytes")
    from engine.stages.train.runner import check_inputs, load_base

    settings = TrainSettings(data=str(data), base_model=str(tiny), out=str(work / f"q{flag}"),
                             load_4bit=flag == "--load-4bit", load_8bit=flag == "--load-8bit")
    model = load_base(settings, check_inputs(settings))
    kinds = {type(m).__name__ for m in model.modules()}
    assert layer in kinds
    if flag == "--load-4bit":
        q = next(m for m in model.modules() if type(m).__name__ == "Linear4bit")
        assert q.weight.quant_type == "nf4" and q.weight.quant_state.nested  # double quantisation
    del model

    out = work / f"q-adapter{flag}"
    rc, _, err = run_cli(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(out), *QUICK,
                          flag, "--max-steps", "3", "--logging-steps", "1"])
    assert rc == 0, err
    losses = [e["data"]["loss"] for e in train_events(out) if e["type"] == "train_step"]
    assert len(losses) == 3 and all(0 < x < 100 for x in losses)
    info = json.loads((out / "po_tui_train.json").read_text())
    assert info["hyperparameters"][flag[2:].replace("-", "_")] is True
    assert lora_b_norm(out) > 0


# --- resume after SIGKILL ---------------------------------------------------------------------------


def test_sigkill_after_a_checkpoint_then_resume_continues_the_count(work, tiny, data):
    out = work / "resume"
    argv = ["train", "--data", str(data / "train.jsonl"), "--base-model", str(tiny), "--out", str(out), *QUICK,
            "--max-steps", "16", "--save-steps", "3", "--logging-steps", "1", "--lora-dropout", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    killed_at = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            log = out / "train.events.jsonl"
            if log.exists():
                ckpts = [e["data"]["step"] for e in read_events(log) if e["type"] == "checkpoint"]
                if ckpts:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed_at = ckpts[-1]
                    break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_at is not None, proc.stderr.read().decode()
    assert proc.returncode == -signal.SIGKILL
    first_run = train_events(out)
    assert not any(e["type"] == "job_finished" for e in first_run)

    # Without --resume the checkpoints are protected, with a one-line error.
    rc, _, err = run_cli(argv)
    assert rc == 2 and "--resume" in err and len(err.strip().splitlines()) == 1

    rc, _, err = run_cli([*argv, "--resume"])
    assert rc == 0, err
    events = train_events(out)
    second = events[len(first_run):]
    assert second[0]["type"] == "job_started" and second[0]["data"]["resumed"] is True
    steps = [e["data"]["step"] for e in second if e["type"] == "train_step"]
    assert steps[0] == killed_at + 1 and steps == list(range(killed_at + 1, 17))
    assert second[-1]["type"] == "job_finished" and second[-1]["data"]["state"] == "succeeded"
    info = json.loads((out / "po_tui_train.json").read_text())
    assert info["steps"] == 16 and info["resumed_from"].endswith(f"checkpoint-{steps[0] - 1}")

    # Optimizer, scheduler and data order were restored: the resumed losses are those of a run
    # that was never interrupted.
    straight = work / "straight"
    argv_straight = [a if a != str(out) else str(straight) for a in argv]
    rc, _, err = run_cli(argv_straight)
    assert rc == 0, err
    uninterrupted = {e["data"]["step"]: e["data"] for e in train_events(straight) if e["type"] == "train_step"}
    for e in second:
        if e["type"] == "train_step":
            d = e["data"]
            assert d["loss"] == pytest.approx(uninterrupted[d["step"]]["loss"], rel=1e-3), d["step"]
            assert d["learning_rate"] == pytest.approx(uninterrupted[d["step"]]["learning_rate"], rel=1e-6)


# --- several processes (DDP on gloo) -----------------------------------------------------------------


def test_two_cpu_processes_on_gloo_shard_the_data(work, tiny, data, capfd):
    out = work / "ddp"
    rc, _, err = run_cli(["train", "--data", str(data / "train.jsonl"), "--base-model", str(tiny), "--out", str(out),
                          *QUICK, "--epochs", "1", "--logging-steps", "1", "--cpu-processes", "2"])
    ranks = capfd.readouterr()  # torchrun's children write to the real file descriptors
    assert rc == 0, err + ranks.err[-4000:]
    events = train_events(out)
    assert [e["type"] for e in events][-1] == "job_finished", ranks.err[-4000:]
    assert events[0]["data"]["world_size"] == 2
    assert events[-1]["type"] == "job_finished" and events[-1]["data"]["state"] == "succeeded"
    # 8 examples, 2 per batch on each of 2 ranks: 2 optimizer steps per epoch (4 on one process).
    info = json.loads((out / "po_tui_train.json").read_text())
    assert info["steps"] == 2 and info["world_size"] == 2
    steps = [e["data"] for e in events if e["type"] == "train_step"]
    assert [s["max_steps"] for s in steps] == [2, 2]
    # Only rank 0 writes: one job_started, one adapter.
    assert [e["type"] for e in events].count("job_started") == 1
    assert lora_b_norm(out) > 0
    targs = json.loads((out / "training_args.json").read_text())["transformers"]
    assert targs["ddp_backend"] == "gloo"


# --- bad input fails before any work ------------------------------------------------------------------


def one_line_error(argv: list[str]) -> str:
    rc, out, err = run_cli(argv)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_unknown_model(work, data):
    err = one_line_error(["train", "--data", str(data), "--base-model", "nobody/no-such-model", "--out", str(work / "x1")])
    assert "--base-model" in err and "no-such-model" in err
    assert not (work / "x1").exists()


def test_model_dir_without_config(work, data):
    (work / "empty-model").mkdir()
    err = one_line_error(["train", "--data", str(data), "--base-model", str(work / "empty-model"), "--out", str(work / "x2")])
    assert "config.json" in err


def test_empty_and_malformed_datasets(work, tiny):
    empty = work / "empty.jsonl"
    empty.write_text("")
    err = one_line_error(["train", "--data", str(empty), "--base-model", str(tiny), "--out", str(work / "x3")])
    assert "empty.jsonl" in err and "no training records" in err
    bad = write_jsonl(work / "bad.jsonl", [records(1)[0], {"prompt": "p", "response": 3}])
    err = one_line_error(["train", "--data", str(bad), "--base-model", str(tiny), "--out", str(work / "x4")])
    assert "bad.jsonl:2" in err and "response" in err
    assert not (work / "x4" / "adapter_model.safetensors").exists()
    missing = one_line_error(["train", "--data", str(work / "nope"), "--base-model", str(tiny), "--out", str(work / "x5")])
    assert "nope" in missing


def test_max_seq_len_shorter_than_the_prompt(work, tiny, data):
    err = one_line_error(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(work / "x6"),
                          "--max-seq-len", "64"])
    assert "train.jsonl:1" in err and "--max-seq-len 64" in err


def test_more_gpus_than_present(work, tiny, data):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    err = one_line_error(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(work / "x7"), "--gpus", "2"])
    assert "--gpus" in err and "0 present" in err


def test_4bit_without_bitsandbytes(work, tiny, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import now raises ImportError
    err = one_line_error(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(work / "x8"), "--load-4bit"])
    assert "bitsandbytes" in err and "--load-4bit" in err


def test_bad_flag_values_and_config(work, tiny, data):
    err = one_line_error(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(work / "x9"), "--lora-r", "0"])
    assert "lora_r" in err or "lora-r" in err
    err = one_line_error(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(work / "x9"),
                          "--load-4bit", "--load-8bit"])
    assert "load_4bit" in err
    cfg = work / "pipeline.yaml"
    cfg.write_text(f"train:\n  data: {data}\n  base_model: {tiny}\n  out: {work / 'x10'}\n  lora_rank: 8\n")
    err = one_line_error(["train", "--config", str(cfg)])
    assert "pipeline.yaml:5" in err and "lora_rank" in err and "lora_r" in err


def test_settings_from_a_pipeline_config(work, tiny, data):
    import argparse

    from engine.commands.settingsflags import resolve_settings
    from engine.stages.train.settings import TrainSettings

    cfg = work / "ok.yaml"
    cfg.write_text(f"train:\n  data: {data}\n  base_model: {tiny}\n  out: {work / 'x11'}\n  lora_r: 16\n  epochs: 4\n"
                   "  lr: 8.0e-5\n  grad_accum: 12\n")
    parser = argparse.ArgumentParser()
    from engine.commands import train as train_cmd

    sub = parser.add_subparsers()
    train_cmd.register(sub, argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(["train", "--config", str(cfg), "--lr", "1e-4"])
    s = resolve_settings(TrainSettings, args, section="train")
    assert (s.lora_r, s.epochs, s.grad_accum, s.lr) == (16, 4, 12, 1e-4)  # flags override the file


def test_resume_passes_over_a_checkpoint_cut_while_saving(tmp_path):
    from engine.stages.train.runner import last_checkpoint

    ckpts = tmp_path / "checkpoints"
    for step, complete in ((3, True), (6, True), (9, False)):
        (ckpts / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (ckpts / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (ckpts / "checkpoint-tmp").mkdir()
    assert last_checkpoint(tmp_path) == str(ckpts / "checkpoint-6")
    assert last_checkpoint(tmp_path / "nowhere") is None


def test_modules_to_save_trains_the_tied_embeddings_beside_the_adapter(tiny):
    """`--modules-to-save embed_tokens`: the embeddings learn and the output head stays tied to them."""
    from transformers import AutoModelForCausalLM

    from engine.stages.train.runner import with_lora
    from engine.stages.train.settings import TrainSettings

    s = TrainSettings(data="d", out="o", modules_to_save="embed_tokens")
    assert s.modules_to_save_list() == ["embed_tokens"] and TrainSettings(data="d", out="o").modules_to_save_list() is None
    model = with_lora(AutoModelForCausalLM.from_pretrained(str(tiny)), s)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("embed_tokens" in n for n in trainable) and any("lora_B" in n for n in trainable)
    inner = model.base_model.model
    embeddings = inner.get_input_embeddings().weight
    assert inner.lm_head.weight is inner.model.embed_tokens.weight or inner.lm_head.weight.data_ptr() == embeddings.data_ptr()
