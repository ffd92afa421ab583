"""A failed stage's real cause (from its error event's stderr_tail) in `status` and on the Pipeline
tab, and the old error cleared once a retry of the stage starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.runlog.cause import cause_of, error_text
from po_tui.app import CockpitApp
from tests.test_tui import FIXED_NOW, open_tab, screen_text, until
from tests.tui_run import T0, Recorder, write_manifest

DIED = "train failed (exit code 2) without finishing its event log"
TAIL = ("Loading config...\n 10%|#         | 1/10\r 20%|##        | 2/10\n"
        "po-tui train: error: unknown model 'Qwen/Nope': not a local directory\n")


@pytest.mark.parametrize(("tail", "cause"), [
    (TAIL, "unknown model 'Qwen/Nope': not a local directory"),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n",
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
    ("ERROR: \x1b[31mdisk full\x1b[0m\nstep 3/10\n", "disk full"),
    ("step 3/10\n 50%|#####     |\r", None),  # progress only: no cause is made up
    ("", None),
    (None, None),
])
def test_cause_is_the_last_error_line_or_exception_of_the_stderr_tail(tail, cause):
    assert cause_of(tail) == cause


def test_error_text_puts_the_cause_first_and_keeps_the_message():
    text = error_text({"message": DIED, "stderr_tail": TAIL})
    assert text.startswith("unknown model 'Qwen/Nope': not a local directory")
    assert DIED in text
    assert error_text({"message": "auth failed"}) == "auth failed"


def _failed_train(run: Path, *, retried: bool) -> tuple[Path, Recorder]:
    run.mkdir(parents=True, exist_ok=True)
    write_manifest(run, {"train": "succeeded" if retried else "failed"}, state="succeeded" if retried else "failed")
    log = Recorder(run / "train.events.jsonl", "train", T0)
    log.started("train")
    log.emit("warning", message="old warning")
    log.emit("error", message=DIED, code="job_died", stderr_tail=TAIL)
    log.finished("failed", exit_code=2, summary={})
    if retried:
        log.started("train")
        log.finished("succeeded", exit_code=0, summary={})
    return run, log


def _job(doc: dict, name: str) -> dict:
    return next(j for j in doc["jobs"] if j["name"] == name)


def test_status_shows_the_cause_of_a_failed_stage(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    run, _ = _failed_train(tmp_path / "run", retried=False)
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "unknown model 'Qwen/Nope': not a local directory" in " ".join(out.split())
    assert main(["status", str(run), "--json"]) == 0
    train = _job(json.loads(capsys.readouterr().out), "train")
    assert train["errors"][0]["cause"] == "unknown model 'Qwen/Nope': not a local directory"


def test_status_forgets_the_error_once_the_stage_is_retried(tmp_path, capsys):
    run, _ = _failed_train(tmp_path / "run", retried=True)
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "unknown model" not in out and "exit code 2" not in out and "old warning" not in out
    assert main(["status", str(run), "--json"]) == 0
    job = _job(json.loads(capsys.readouterr().out), "train")
    assert (job["state"], job["errors"], job["error_count"], job["warning_count"]) == ("succeeded", [], 0, 0)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_pipeline_tab_shows_the_cause_of_a_failed_stage(tmp_path, size):
    app = CockpitApp(_failed_train(tmp_path / "run", retried=False)[0], poll_s=0.05, clock=lambda: FIXED_NOW)
    async with app.run_test(size=size) as pilot:
        text = await open_tab(pilot, "pipeline", "train: unknown model")
        assert "not a local directory" in " ".join(text.split())


async def test_pipeline_tab_clears_the_error_once_the_stage_is_retried(tmp_path):
    run, log = _failed_train(tmp_path / "run", retried=False)
    app = CockpitApp(run, poll_s=0.05, clock=lambda: FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tab(pilot, "pipeline", "train: unknown model")
        log.started("train")  # the retry (F), appended live by the engine
        await until(pilot, lambda: "unknown model" not in screen_text(app))
        assert "exit code 2" not in screen_text(app)
