"""Start or resume a run's engine in its own session, detached from the caller.

`po-tui run --headless --detach`, the cockpit's "start" and "resume" all go through here, so a
run started from the TUI survives the TUI quitting and the terminal closing, exactly like a
detached headless run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.pipeline.manifest import write_pidfile


def engine_argv(run_dir: Path, *, retry_failed: bool = False, grace_s: float = 10.0, mode: str = "detached") -> list[str]:
    argv = [sys.executable, "-m", "engine", "run", "--headless", "--resume", str(run_dir), "--engine-mode", mode,
            "--grace", str(grace_s)]
    return argv + (["--retry-failed"] if retry_failed else [])


def spawn_engine(run_dir: str | Path, *, retry_failed: bool = False, grace_s: float = 10.0, mode: str = "detached") -> int:
    """Start `po-tui run --resume RUN_DIR` in a new session, output in RUN_DIR/engine.log; its pid.

    The pidfile is written here, before the child writes its own, so a second start in the
    next instant is refused (`live_engine`) instead of racing.
    """
    run_dir = Path(run_dir)
    with open(run_dir / "engine.log", "ab") as log:
        proc = subprocess.Popen(engine_argv(run_dir, retry_failed=retry_failed, grace_s=grace_s, mode=mode),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    write_pidfile(run_dir, proc.pid, mode)
    return proc.pid


def start_run(config_path: str | Path, *, runs_dir: str | Path = "runs", run_dir: str | Path | None = None,
              grace_s: float = 10.0, mode: str = "detached") -> Path:
    """Validate CONFIG, create the run directory and start its engine detached; the run directory.

    Raises InputError (one line naming file, line and key) before anything is created.
    """
    from engine.pipeline.config import load_config
    from engine.pipeline.manifest import new_run_id
    from engine.pipeline.runner import create_run
    from engine.runlog.gpu_sampler import jobs_environment

    config = load_config(config_path)
    jobs_environment(config.monitor.gpu_sample_s)  # a bad PO_TUI_GPU_SAMPLE_S: refused before the run directory exists
    target = Path(run_dir) if run_dir else Path(runs_dir) / new_run_id()
    create_run(target, config)
    spawn_engine(target, grace_s=grace_s, mode=mode)
    return target


def resume_run(run_dir: str | Path, *, retry_failed: bool = False, grace_s: float = 10.0, mode: str = "detached") -> Path:
    """Check that RUN_DIR can be resumed (as `po-tui run --resume` would), then resume it detached."""
    from engine.pipeline.config import load_config
    from engine.pipeline.runner import Engine

    run_dir = Path(run_dir)
    check_resumable(run_dir)
    config = load_config(run_dir / "config.yaml")
    Engine(run_dir, config, resume=True, retry_failed=retry_failed).decisions()  # refuses what it cannot resume
    spawn_engine(run_dir, retry_failed=retry_failed, grace_s=grace_s, mode=mode)
    return run_dir


def check_resumable(run_dir: Path) -> None:
    """InputError when no engine may start on RUN_DIR now (another drives it, or orphans run)."""
    from engine.errors import InputError
    from engine.pipeline.manifest import live_engine, read_manifest, running_jobs

    manifest = read_manifest(run_dir)
    if manifest is None:
        raise InputError("no manifest.json: not a run directory", path=run_dir)
    other = live_engine(run_dir)
    if other is not None:
        raise InputError(f"an engine (pid {other['pid']}) is already driving this run", path=run_dir)
    orphans = running_jobs(run_dir, manifest)
    if orphans:
        job = orphans[0]
        raise InputError(f"job {job['name']} (process group {job['pgid']}) is still running without its engine: "
                         "let it finish or `po-tui cancel` the run first", path=run_dir)
