"""Training in child processes: several ranks through torchrun, or one worker pinned to one GPU.

On a host with several GPUs a plain single-process run would see them all, and the Trainer
then wraps the model in nn.DataParallel (copying the 15 GB of weights every step for plain LoRA)
or multiplies the per-device batch by the GPU count (QLoRA). Unless `--gpus N` asks for DDP,
the worker runs alone with CUDA_VISIBLE_DEVICES narrowed to one device; the variable must be
set before CUDA starts, which has already happened in this (checking) process, hence the child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.stages.train.settings import TrainSettings
from engine.store.atomic import atomic_write_text

SETTINGS_FILE = "train_settings.json"
WORKER = "engine.stages.train.worker"


@dataclass
class Launch:
    """A child process to run: what `launch_plan` decided."""

    argv: list[str]
    env: dict[str, str]
    why: str  # for a line on the terminal


def launch_command(settings_path: Path, nproc: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", WORKER, str(settings_path),
    ]


def first_visible_gpu(environ: dict[str, str]) -> str:
    """The device a pinned run keeps: the first of CUDA_VISIBLE_DEVICES when the user narrowed
    the set already (an index or a GPU-UUID), else device 0."""
    visible = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[0] if visible else "0"


def launch_plan(settings: TrainSettings, device: str, cuda: int, settings_path: Path,
                environ: dict[str, str] | None = None) -> Launch | None:
    """How to run `settings`: torchrun for several ranks, one pinned worker when `device` is cuda
    and `cuda` (> 1) GPUs are visible without `--gpus N` (N > 1) asking for them; None: in this
    process (one GPU, or the CPU)."""
    env = dict(os.environ if environ is None else environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if settings.world_size > 1:
        if (settings.gpus or 0) <= 1:
            # CPU ranks share the cores: one thread each avoids oversubscription.
            env.setdefault("OMP_NUM_THREADS", "1")
        return Launch(launch_command(settings_path, settings.world_size), env,
                      f"{settings.world_size} processes through torchrun")
    if device == "cuda" and cuda > 1:
        gpu = first_visible_gpu(env)
        env["CUDA_VISIBLE_DEVICES"] = gpu
        return Launch([sys.executable, "-m", WORKER, str(settings_path)], env,
                      f"one process on GPU {gpu} of the {cuda} visible (--gpus {cuda} trains on all of them)")
    return None


def write_settings(settings: TrainSettings) -> Path:
    return atomic_write_text(Path(settings.out) / SETTINGS_FILE, settings.model_dump_json(indent=2))


# A stop reaches the child too when it was sent to the process group (Ctrl-C, `po-tui cancel`,
# the engine); only one sent to this process alone needs passing on. Wait this long first, so
# the child is not signalled twice (a second SIGTERM cuts torchrun's own shutdown short).
FORWARD_AFTER_S = 5.0


def run_child(launch: Launch, *, forward_after_s: float = FORWARD_AFTER_S) -> int:
    """Run the child to its end and return its exit code. On a stop, the child is waited for so
    its rank 0 writes the job's end (killing it here, as subprocess.run does, would leave
    torchrun's ranks, in sessions of their own, running); if it is still running
    `forward_after_s` later, the stop is passed on as SIGTERM."""
    proc = subprocess.Popen(launch.argv, env=launch.env)
    deadline: float | None = None
    while True:
        try:
            return proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            deadline = None
        except KeyboardInterrupt:
            if deadline is None:
                deadline = time.monotonic() + forward_after_s
