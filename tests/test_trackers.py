"""`train.report_to` / `--report-to`: the Trainer reports to experiment trackers (tensorboard tested
offline); a tracker whose package is missing is one line before any training; adding one to a run
never trains it again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.commands.make_tiny_model import make_tiny_model
from engine.pipeline.config import parse_config
from engine.pipeline.plan import build_plan, fingerprint
from engine.stages.train.settings import TrainSettings
from tests.test_train import QUICK, records, run_cli, write_jsonl


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trackers")


@pytest.fixture(scope="module")
def tiny(work) -> Path:
    return make_tiny_model(work / "tiny", seed=0)


@pytest.fixture(scope="module")
def data(work) -> Path:
    rows = records(6)
    write_jsonl(work / "data" / "train.jsonl", rows[:4])
    write_jsonl(work / "data" / "val.jsonl", rows[4:])
    return work / "data"


def test_tensorboard_event_files_are_written_offline_in_out_tb(work, tiny, data, monkeypatch):
    pytest.importorskip("tensorboard")  # the `test` extra installs it
    for name in ("WANDB_MODE", "TENSORBOARD_LOGGING_DIR"):
        monkeypatch.delenv(name, raising=False)
    out = work / "tb-run"
    rc, _, err = run_cli(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(out), *QUICK,
                          "--max-steps", "2", "--logging-steps", "1", "--report-to", "tensorboard"])
    assert rc == 0, err
    files = list((out / "tb").rglob("events.out.tfevents.*"))
    assert files and all(f.stat().st_size > 0 for f in files)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = set()
    for f in files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        scalars |= set(acc.Tags()["scalars"])
    assert "train/loss" in scalars  # the training loss reached TensorBoard
    assert not list((out / "checkpoints").rglob("events.out.tfevents.*"))  # not transformers' dated default


@pytest.mark.parametrize("tracker, package", [("tensorboard", "tensorboard"), ("wandb", "wandb"), ("mlflow", "mlflow"),
                                              ("trackio", "trackio")])
def test_a_missing_tracker_package_is_one_line_before_training(work, tiny, data, monkeypatch, tracker, package):
    for name in ("tensorboard", "tensorboardX", "wandb", "mlflow", "trackio"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    out = work / f"no-{tracker}"
    rc, _, err = run_cli(["train", "--data", str(data), "--base-model", str(tiny), "--out", str(out), *QUICK,
                          "--max-steps", "1", "--report-to", f"{tracker}"])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"--report-to: {tracker} needs the {package} package (pip install {package})" in err
    assert not out.exists()  # nothing written, no event log started


def test_report_to_in_a_config_is_a_list_and_unknown_names_are_refused(tmp_path):
    assert TrainSettings(report_to=["tensorboard", "wandb"]).trackers() == ["tensorboard", "wandb"]
    assert TrainSettings(report_to="tensorboard, mlflow").trackers() == ["tensorboard", "mlflow"]
    assert TrainSettings().trackers() == [] and TrainSettings(report_to="none").trackers() == []
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  report_to: [tensorboard, comet]\n")
    from engine.errors import InputError
    from engine.pipeline.config import load_config

    with pytest.raises(InputError, match=r"c\.yaml:2: train\.report_to: .*unknown tracker 'comet'"):
        load_config(config)


def test_adding_a_tracker_does_not_change_the_train_fingerprint(tmp_path):
    def train_fingerprint(doc: dict) -> str:
        config = parse_config(doc)
        job = next(j for j in build_plan(config, tmp_path) if j.name == "train")
        return fingerprint(tmp_path, job)

    plain = train_fingerprint({"train": {"lora_r": 8}})
    assert train_fingerprint({"train": {"lora_r": 8, "report_to": ["tensorboard"]}}) == plain
    assert train_fingerprint({"train": {"lora_r": 16}}) != plain  # what it computes still counts
