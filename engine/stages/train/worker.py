"""One training process: the whole run on a single device, or one rank under torchrun.

`python -m engine.stages.train.worker SETTINGS.json` is what the launch starts: on every rank
under torchrun, or once, pinned to one GPU, on a host with several (engine/stages/train/launch.py).
Rank 0 alone writes the event log, adapter and model card; `@record` leaves every rank's error
in the file torchrun gives it, where rank 0 finds a failed rank's (engine/stages/train/ranks.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import get_error_handler, record

from engine.core.inert import one_line
from engine.errors import InputError, StageFailed
from engine.runlog.events import EventWriter, events_path
from engine.runlog.gpu_sampler import gpu_sampling
from engine.runlog.job import NullEvents
from engine.stages.train.ranks import RankGuard
from engine.stages.train.runner import prepare, train
from engine.stages.train.settings import TrainSettings


def run_worker(settings: TrainSettings, *, echo: Any = None) -> dict[str, Any]:
    rank = int(os.environ.get("RANK", "0"))
    run_dir = settings.run_dir or settings.out
    if rank != 0:
        return train(settings, NullEvents())
    inputs = prepare(settings)  # bad input fails here, before the event log exists
    job = settings.job or "train"
    with EventWriter(events_path(run_dir, job), job) as writer:
        with writer.running("train", argv=list(sys.argv), resumed=settings.resume, world_size=settings.world_size):
            # RankGuard: torchrun's SIGTERM when another rank dies is a logged end. gpu_sampling: the
            # GPUs sampled into the log once (here, on rank 0), not once per rank.
            with RankGuard(writer), gpu_sampling(writer):
                info = train(settings, writer, echo=echo, inputs=inputs)
            writer.summary.update(
                steps=info.get("steps"),
                first_loss=info["loss"]["first"],
                final_loss=info["loss"]["final"],
                final_eval_loss=info["loss"]["final_eval"],
                duration_s=info.get("duration_s"),
                adapter=settings.out,
            )
            if info.get("probes"):  # the last probe: where the student stood when training ended
                last = info["probes"][-1]
                writer.summary.update(probe_step=last["step"], probe_valid_rate=last["valid_rate"], probe_mean=last["mean"])
    return info


@record
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    settings = TrainSettings.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        run_worker(settings, echo=sys.stderr)
    except InputError as exc:
        sys.stderr.write(f"po-tui train: error: {one_line(exc)}\n")
        return 2
    except StageFailed as exc:
        rank = os.environ.get("RANK", "0")
        if rank != "0":  # rank 0 logged it, and the launcher prints its line from the log
            get_error_handler().record_exception(exc)  # for rank 0 to name (no traceback printed)
            sys.stderr.write(f"po-tui train: rank {rank} failed: {one_line(exc)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("po-tui train: interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
