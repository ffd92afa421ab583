"""The cockpit's folded view of a run: RunState plus the bounded series the panels draw.

Only the app's message handlers call `apply`; widgets read it when the refresh timer fires.
Everything kept grows to a fixed size at most (histogram bins, deques), however long the run.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import engine.runlog.reducers  # noqa: F401  (registers the stage folds the status view uses)
from engine.core.numbers import finite_float
from engine.runlog.state import JobState, RunState
from po_tui.samples import SampleTally

KEEP_POINTS = 2000  # loss points per series
KEEP_RETRIES = 50
KEEP_LOG_LINES = 2000  # per job, across stdout and stderr


class CockpitModel:
    """RunState plus teacher histograms, retry log, loss series and a log ring per job."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.run = RunState()
        self.manifest: dict[str, Any] | None = None
        self.samples = SampleTally()  # score bins and outcomes of the teacher's finished samples
        self.retries: deque[dict[str, Any]] = deque(maxlen=KEEP_RETRIES)
        self.loss: deque[tuple[int, float]] = deque(maxlen=KEEP_POINTS)
        self.eval_loss: deque[tuple[int, float]] = deque(maxlen=KEEP_POINTS)
        # train_probe: (step, valid, prompts, mean) - the format being learnt, on held-out prompts
        self.probes: deque[tuple[int, int, int, float]] = deque(maxlen=KEEP_POINTS)
        self.logs: dict[str, deque[tuple[str, str]]] = {}
        self.events = 0

    def reset_job(self, job: str) -> None:
        """A job's log was replaced: drop what was folded from it."""
        self.run.forget(job)
        if self.teacher_job() is None or self.teacher_job().job == job:
            self.samples = SampleTally()
            self.retries.clear()
        if self.train_job() is None or self.train_job().job == job:
            self.loss.clear()
            self.eval_loss.clear()
            self.probes.clear()

    def apply(self, event: dict[str, Any]) -> None:
        job = self.run.apply(event)
        if job is None:
            return
        self.events += 1
        etype = event.get("type")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        if etype == "teacher_stats":
            job.extra["teacher_full"] = data  # statuses, reject_reasons, per_model: not in the core fold
        elif etype == "teacher_sample":
            self.samples.add(data)
        elif etype == "teacher_retry":
            self.retries.append({"ts": event.get("ts"), **data})
        elif etype == "train_step":
            loss, step = finite_float(data.get("loss")), data.get("step")
            if loss is not None and isinstance(step, int):
                self.loss.append((step, loss))
        elif etype == "train_eval":
            loss, step = finite_float(data.get("eval_loss")), data.get("step")
            if loss is not None and isinstance(step, int):
                self.eval_loss.append((step, loss))
        elif etype == "train_probe":
            step, valid = data.get("step"), finite_float(data.get("valid"))
            prompts, mean = finite_float(data.get("prompts")), finite_float(data.get("mean"))
            if isinstance(step, int) and valid is not None and prompts and mean is not None:
                self.probes.append((step, int(valid), int(prompts), mean))

    @property
    def scores(self) -> list[int]:
        """The teacher's score histogram (10 bins over [0, 1])."""
        return self.samples.bins

    def add_log(self, job: str, stream: str, line: str) -> None:
        ring = self.logs.get(job)
        if ring is None:
            ring = self.logs[job] = deque(maxlen=KEEP_LOG_LINES)
        ring.append((stream, line))

    # -- lookups the panels share -------------------------------------------------------------

    def jobs(self) -> list[JobState]:
        """Jobs in the manifest's planned order first (pending ones too), then any others."""
        order = [j["name"] for j in (self.manifest or {}).get("jobs", [])]
        for name in order:
            self.run.job(name)
        rest = [n for n in self.run.jobs if n not in order]
        return [self.run.jobs[n] for n in order + rest]

    def manifest_job(self, name: str) -> dict[str, Any]:
        for job in (self.manifest or {}).get("jobs", []):
            if job.get("name") == name:
                return job
        return {}

    def _by_stage(self, stage: str) -> JobState | None:
        found = [j for j in self.run.jobs.values() if (j.stage or j.job) == stage or j.job == stage]
        return found[-1] if found else None

    def teacher_job(self) -> JobState | None:
        return self._by_stage("teacher")

    def train_job(self) -> JobState | None:
        return self._by_stage("train")

    def gate_job(self) -> JobState | None:
        return self._by_stage("gate")

    def eval_results(self) -> dict[str, Path]:
        """The newest eval results file per eval job (from its artifacts or its summary)."""
        out: dict[str, Path] = {}
        for job in self.run.jobs.values():
            if (job.stage or "") != "eval" and not job.job.startswith("eval"):
                continue
            path = job.summary.get("results") if job.state == "succeeded" else None
            for art in job.artifacts:
                if art.get("kind") == "eval_results":
                    path = art.get("path")
            if isinstance(path, str) and path:
                p = Path(path)
                out[job.job] = p if p.is_absolute() else self.run_dir / p
        return out
