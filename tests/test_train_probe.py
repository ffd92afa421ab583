"""Learning while it trains (`train.probe_every`): greedy answers to held-out prompts at training
steps, judged by the engine's metric, as `train_probe` events, probes.jsonl and po_tui_train.json.

The tiny model does not learn the format in four CPU steps, so the end-to-end checks are about
the probe's mechanics (when it runs, what it records, that it changes nothing in the training and
survives a resume); a scripted model shows that the judging counts a right answer as right.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from engine.cli import main  # noqa: E402
from engine.core.blocks import check_text  # noqa: E402
from engine.providers.po_writer import write_answer  # noqa: E402
from engine.runlog.tail import read_events  # noqa: E402
from engine.stages.concepts import generate_concepts  # noqa: E402
from engine.stages.tiny_model import make_tiny_model  # noqa: E402
from engine.stages.train.probe import PROBES_FILE, ProbeSet, probe_set, read_probes, run_probe  # noqa: E402
from engine.stages.train.settings import TrainSettings  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")]

QUICK = ["--lora-r", "8", "--lora-alpha", "16", "--lr", "1e-2", "--batch-size", "2", "--seed", "3",
         "--logging-steps", "1", "--lora-dropout", "0.1"]
PROBE = ["--probe-every", "2", "--probe-prompts", "2", "--probe-max-new-tokens", "12"]


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


def teacher_record(row: dict) -> dict:
    """A teacher dataset row (prep's val.jsonl layout) with the compact answer."""
    ex, _ = check_text(write_answer(row["concept"], row["requirements_yaml"], random.Random(1), style="compact"))
    return {"concept_id": row["concept_id"], "concept": row["concept"], "requirements_yaml": row["requirements_yaml"],
            "teacher_product_vision": ex.vision_text, "teacher_product_owner_review": ex.review_text}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("probe")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return generate_concepts(11, 5, conflict_rate=0.0)


@pytest.fixture(scope="module")
def tiny(work) -> Path:
    return make_tiny_model(work / "tiny", seed=0, corpus_size=30, vocab_size=600, style="compact")


@pytest.fixture(scope="module")
def data(work, rows) -> Path:
    """Short training pairs (steps in milliseconds) and prep's held-out teacher records."""
    d = work / "data"
    d.mkdir()
    short = [{"prompt": f"Name the product of {r['concept_id']}.", "response": f"product_name: {r['metadata']['title']}"}
             for r in rows[:8]]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short), encoding="utf-8")
    (d / "val.jsonl").write_text("".join(json.dumps(teacher_record(r)) + "\n" for r in rows[8:]), encoding="utf-8")
    return d


def train(data: Path, tiny: Path, out: Path, *extra: str) -> str:
    rc, err = run_cli(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(out), *QUICK, *extra])
    assert rc == 0, err
    return err


def losses(out: Path) -> list[float]:
    return [e["data"]["loss"] for e in read_events(out / "train.events.jsonl") if e["type"] == "train_step"]


def probes_of(out: Path) -> list[dict]:
    return [e["data"] for e in read_events(out / "train.events.jsonl") if e["type"] == "train_probe"]


@pytest.fixture(scope="module")
def probed(work, data, tiny) -> tuple[Path, str]:
    out = work / "probed"
    return out, train(data, tiny, out, "--max-steps", "3", "--save-steps", "2", *PROBE)


def test_a_probe_event_at_every_probe_step_with_sane_fields(probed):
    out, err = probed
    events = probes_of(out)
    assert [p["step"] for p in events] == [2, 3]  # every 2 steps, and the last one
    for p in events:
        assert p["max_steps"] == 3 and p["prompts"] == 2 and p["max_new_tokens"] == 12
        assert 0 <= p["complete"] <= p["valid"] <= 2 and p["valid_rate"] == p["valid"] / 2
        assert 0.0 <= p["mean"] <= 1.0 and p["metric"] == "po-v2"
        assert 0 <= p["stopped"] <= 2 and p["seconds"] >= 0
    assert "probe at step 2: " in err and "probe at step 3: " in err
    # the same rows, durable, and in the run's record and its end-of-job summary
    assert read_probes(out) == events
    info = json.loads((out / "po_tui_train.json").read_text(encoding="utf-8"))
    assert [p["step"] for p in info["probes"]] == [2, 3]
    assert info["probes"][-1]["mean"] == events[-1]["mean"]
    summary = read_events(out / "train.events.jsonl")[-1]["data"]["summary"]
    assert summary["probe_step"] == 3 and summary["probe_mean"] == events[-1]["mean"]


def test_probes_change_nothing_in_the_training(probed, work, data, tiny):
    """Eval mode and a forked RNG: step 3 (after the probe at step 2, dropout on) has the loss
    of a run without probes."""
    out, _ = probed
    plain = work / "plain"
    train(data, tiny, plain, "--max-steps", "3")
    assert losses(plain) == losses(out) and len(losses(out)) == 3
    assert probes_of(plain) == [] and not (plain / PROBES_FILE).exists()
    assert json.loads((plain / "po_tui_train.json").read_text(encoding="utf-8"))["probes"] is None


def test_a_resumed_run_keeps_the_earlier_probes_and_probes_the_same(probed, work, data, tiny):
    out, _ = probed
    resumed = work / "resumed"
    resumed.mkdir()
    # a fresh (not resumed) run starts its probes anew, as its loss history
    (resumed / PROBES_FILE).write_text('{"step": 99, "prompts": 2, "valid": 2, "valid_rate": 1.0, "mean": 1.0}\n')
    train(data, tiny, resumed, "--max-steps", "2", "--save-steps", "2", *PROBE)
    assert [p["step"] for p in read_probes(resumed)] == [2]
    train(data, tiny, resumed, "--max-steps", "3", "--save-steps", "2", "--resume", *PROBE)
    assert [p["step"] for p in probes_of(resumed)] == [2, 3]  # the event log holds both segments
    info = json.loads((resumed / "po_tui_train.json").read_text(encoding="utf-8"))
    assert [p["step"] for p in info["probes"]] == [2, 3]  # step 2 came from the first process
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "max_steps")} for r in rows]  # noqa: E731
    assert strip(read_probes(resumed)) == strip(read_probes(out))  # the same answers as the straight run


def test_probes_without_held_out_prompts_are_refused_before_anything_is_written(work, data, tiny):
    out = work / "no-val"
    rc, err = run_cli(["train", "--data", str(data / "train.jsonl"), "--base-model", str(tiny), "--out", str(out),
                       *QUICK, "--max-steps", "2", *PROBE])
    assert rc == 2 and "--probe-every" in err and "val.jsonl" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (out / "train.events.jsonl").exists() and not (out / PROBES_FILE).exists()


def test_probe_settings_are_checked():
    with pytest.raises(ValueError, match="fsdp or deepspeed"):
        TrainSettings(probe_every=5, fsdp="full_shard auto_wrap")
    for bad in ({"probe_every": 0}, {"probe_prompts": 0}, {"probe_max_new_tokens": 0}):
        with pytest.raises(ValueError):
            TrainSettings(**bad)
    assert TrainSettings().probe_every is None  # off by default


class ScriptedModel(torch.nn.Module):
    """Answers each prompt with a fixed text (a stand-in for a student that has learnt it)."""

    def __init__(self, answers: list[list[int]], eos: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.answers = answers
        self.eos = eos
        self.generation_config = None
        self.modes: list[bool] = []

    def generate(self, input_ids, attention_mask, generation_config):
        self.modes.append(self.training)
        width = max(len(a) for a in self.answers) + 1
        rows = [a + [self.eos] * (width - len(a)) for a in self.answers]
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)


def test_the_probe_judges_answers_with_the_metric(data, tiny, rows):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny))
    probes = probe_set(data / "val.jsonl", tok, chat=True, count=3, longest_answer=40)
    assert [c.concept_id for c in probes.cases] == [r["concept_id"] for r in rows[8:11]]
    assert probes.max_new_tokens == 50  # 1.25 x the longest training answer
    held = rows[8:11]
    right = write_answer(held[0]["concept"], held[0]["requirements_yaml"], random.Random(0), style="compact")
    texts = [right, right[: len(right) // 2], "no blocks at all"]  # right, cut short, prose
    model = ScriptedModel([tok(t, add_special_tokens=False)["input_ids"] for t in texts], tok.eos_token_id)
    model.train()
    result = run_probe(model, tok, ProbeSet(probes.cases, 64), chat=True)
    assert model.modes == [False] and model.training  # decoded in eval mode, then back to training
    assert (result["prompts"], result["valid"], result["complete"]) == (3, 1, 1)
    assert result["valid_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["mean"] == pytest.approx(1 / 3, abs=1e-4)  # 1.0 for the right one, 0 for the others
    assert result["stopped"] == 3
