"""Several processes (GPUs, or CPU ranks on gloo) through torchrun: the same worker on each rank."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.stages.train.settings import TrainSettings
from engine.store.atomic import atomic_write_text

SETTINGS_FILE = "train_settings.json"


def launch_command(settings_path: Path, nproc: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "engine.stages.train.worker", str(settings_path),
    ]


def launch(settings: TrainSettings) -> int:
    out = Path(settings.out)
    path = atomic_write_text(out / SETTINGS_FILE, settings.model_dump_json(indent=2))
    env = dict(os.environ)
    if (settings.gpus or 0) <= 1:
        # CPU ranks share the cores: one thread each avoids oversubscription.
        env.setdefault("OMP_NUM_THREADS", "1")
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run(launch_command(path, settings.world_size), env=env).returncode
