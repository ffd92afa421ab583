"""A recorded run directory for the cockpit tests, written with EventWriter at fixed times.

Fixed timestamps keep elapsed times and ETAs (and so the SVG snapshots) identical on every run.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.runlog.events import events_path
from tests.eval_files import scored_cases, write_results

T0 = 1_763_900_000.0
HOSTILE = "[bold red]boom[/] [link=http://x]click[/link] \x1b[31mred\x1b[0m bell\x07 nul\x00 end"
JOBS = ("teacher", "train", "eval-baseline", "eval-student", "gate")


class Recorder:
    """Appends envelope lines (docs/events.md) at fixed times, as a recorded log reads back.

    Stage types (teacher_sample, train_step ...) are registered by stage modules that import
    torch; writing the lines directly keeps these tests fast, and readers accept any type.
    """

    def __init__(self, path: Path, job: str, start: float) -> None:
        self.path, self.job, self.ts, self.seq = path, job, start, 0

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def line(self, etype: str, **data: object) -> str:
        event = {"v": 1, "ts": round(self.ts, 3), "seq": self.seq, "job": self.job, "type": etype, "data": data}
        self.ts += 0.5
        self.seq += 1
        return json.dumps(event) + "\n"

    def emit(self, etype: str, **data: object) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(self.line(etype, **data))

    def started(self, stage: str, **data: object) -> None:
        self.emit("job_started", stage=stage, pid=None, host="recorded-host", resumed=False, **data)

    def finished(self, state: str, *, exit_code: int, summary: dict) -> None:
        self.emit("job_finished", state=state, exit_code=exit_code, duration_s=10.0, summary=summary)

    def progress(self, done: int, total: int, *, unit: str) -> None:
        self.emit("progress", done=done, total=total, unit=unit)

    def log(self, level: str, message: str) -> None:
        self.emit("log", level=level, message=message)

    def artifact(self, path: Path, kind: str) -> None:
        self.emit("artifact", path=str(path), kind=kind, bytes=path.stat().st_size)


def _writer(run: Path, job: str, start: float) -> Recorder:
    return Recorder(events_path(run, job), job, start)


def write_manifest(run: Path, states: dict[str, str], state: str = "succeeded", gate: dict | None = None) -> None:
    jobs = [{"name": j, "stage": "eval" if j.startswith("eval") else j, "state": states.get(j, "pending"),
             "argv": ["gate", "b.json", "s.json", "--preset", "seeds"] if j == "gate" else [j]} for j in JOBS]
    doc = {"format": "po-tui-run/1", "run_id": "20251123-090000-abcd", "state": state, "gate": gate, "jobs": jobs}
    (run / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")


def teacher_events(run: Path, *, finish: bool = True) -> None:
    with _writer(run, "teacher", T0) as ev:
        ev.started("teacher")
        for i, (score, status) in enumerate([(0.95, "aligned"), (0.91, "aligned"), (0.72, "needs_adjustment"), (0.35, "misaligned")]):
            ev.emit("teacher_sample", concept_id=f"POCON-{i:04d}", variant=0, outcome="accepted" if score > 0.5 else "rejected",
                    score=score, status=status, reason=None if score > 0.5 else "below_min_score", attempts=1,
                    model="m", cost_usd=0.01, latency_s=2.0)
            ev.progress(i + 1, 8, unit="records")
        ev.emit("teacher_retry", concept_id="POCON-0002", variant=0, attempt=1, reason="invalid_review_yaml", detail=HOSTILE)
        ev.emit("teacher_stats", accepted=3, rejected=1, attempted=4, target=8, in_flight=0, requests=5, retries=1,
                records_per_min=12.5, acceptance_rate=0.75, retry_success_rate=1.0, eta_s=20.0, cost_usd=0.04,
                cost_usd_run=0.04, cost_per_accepted_usd=0.0133, statuses={"aligned": 2, "needs_adjustment": 1, "misaligned": 1},
                reject_reasons={"below_min_score": 1}, per_model={"m": {"accepted": 3, "rejected": 1}},
                output_tokens=4000, thinking_tokens=2500)
        ev.log("info", HOSTILE)
        if finish:
            ev.finished("succeeded", exit_code=0, summary={"records": 3})
    (run / "teacher.stdout.log").write_text("teacher says hello\n" + HOSTILE + "\n", encoding="utf-8")


def train_events(run: Path) -> None:
    with _writer(run, "train", T0 + 100) as ev:
        ev.started("train")
        for step in range(1, 9):
            ev.emit("train_step", step=step, max_steps=8, epoch=step / 4, loss=2.0 - step * 0.2, learning_rate=1e-4,
                    tokens_seen=step * 1000, tokens_per_s=5120.0, gpu_mem_allocated_gb=6.1, gpu_mem_peak_gb=7.4)
            if step % 4 == 0:
                ev.emit("train_eval", step=step, epoch=step / 4, eval_loss=1.9 - step * 0.1)
            ev.progress(step, 8, unit="steps")
        ev.finished("succeeded", exit_code=0, summary={"steps": 8})


def eval_and_gate(run: Path) -> None:
    folder = run / "eval"
    paths = {
        "eval-baseline": write_results(folder, "baseline", "20251123_100000", scored_cases([0.8, 0.85, 0.9, 0.75])),
        "eval-student": write_results(folder, "student", "20251123_110000", scored_cases([0.82, 0.8, 0.88, 0.79])),
    }
    for k, (job, path) in enumerate(paths.items()):
        with _writer(run, job, T0 + 200 + k * 20) as ev:
            ev.started("eval")
            ev.progress(4, 4, unit="cases")
            ev.artifact(path, "eval_results")
            ev.finished("succeeded", exit_code=0, summary={"n": 4, "results": str(path)})
    with _writer(run, "gate", T0 + 300) as ev:
        ev.started("gate")
        ev.finished("succeeded", exit_code=0, summary={"verdict": "pass", "gates": "seeds", "passed": 3, "criteria": 3,
                                                         "ratio": 0.99, "ratio_low": 0.95, "ratio_high": 1.03})


def finished_run(run: Path) -> Path:
    """A whole finished run: teacher, train, both evals and the gate."""
    run.mkdir(parents=True, exist_ok=True)
    teacher_events(run)
    train_events(run)
    eval_and_gate(run)
    write_manifest(run, {j: "succeeded" for j in JOBS}, gate={"verdict": "pass", "passed": 3, "criteria": 3})
    (run / "report.md").write_text("# Report\n\n" + HOSTILE + "\n", encoding="utf-8")
    return run
