"""How a stage command reports: `--run-dir DIR [--job NAME]` turns on its event log.

Every stage command takes these options; without them it runs exactly the same and reports
only on the terminal. `job_events(args, stage)` yields the writer (or a no-op stand-in with the
same methods), records the start and the end state, and turns a bad-input failure into exit 2.
While the job runs under the engine it also samples GPU health into its log (gpu_sampler.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator

from engine.runlog.events import EventWriter, events_path
from engine.runlog.gpu_sampler import gpu_sampling
from engine.store.outpath import check_out_dir


def add_job_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("event log")
    group.add_argument(
        "--run-dir",
        metavar="DIR",
        help="report progress as events in DIR/<job>.events.jsonl (see docs/events.md)",
    )
    group.add_argument("--job", metavar="NAME", help="job name in the run directory (default: the stage)")


class NullEvents:
    """Stand-in when no run directory was given: accepts every EventWriter call, writes nothing."""

    path: Path | None = None

    def __init__(self) -> None:
        self.summary: dict[str, Any] = {}
        self.exit_code = 0

    def __getattr__(self, name: str) -> Any:
        def _ignore(*_args: Any, **_kwargs: Any) -> None:
            return None

        return _ignore


@contextlib.contextmanager
def job_events(args: argparse.Namespace, stage: str, *, resumed: bool = False) -> Iterator[Any]:
    """`resumed`: this attempt picks up earlier work (job_started.resumed, docs/events.md)."""
    run_dir = getattr(args, "run_dir", None)
    if not run_dir:
        yield NullEvents()
        return
    check_out_dir(run_dir, field="--run-dir")
    job = getattr(args, "job", None) or stage
    with EventWriter(events_path(run_dir, job), job) as writer:
        with writer.running(stage, argv=list(sys.argv), resumed=resumed), gpu_sampling(writer):
            yield writer
