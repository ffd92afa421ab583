"""Where a project's runs live, decided the same way by `po-tui run`, `po-tui runs` and the picker.

In order: the command line (`--runs-dir`, `po-tui runs DIR`), then `$PO_TUI_RUNS_DIR`, then
`runs_dir:` in the pipeline config (the CONFIG given to `po-tui run`; for `po-tui` alone and
`po-tui runs`, the project's ./po-tui.yaml when there is one), else ./runs. One rule, so a run
started one way is listed by the others.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import InputError

ENV = "PO_TUI_RUNS_DIR"
PROJECT_CONFIG = "po-tui.yaml"  # what `po-tui init` writes and the picker's `n` offers
DEFAULT = "runs"


def _checked(path: Path, field: str) -> Path:
    """A directory, or nothing yet (the first run creates it); anything else is refused."""
    if path.exists() and not path.is_dir():
        raise InputError("not a directory", path=path, field=field)
    return path


def runs_dir(flag: str | Path | None = None, *, configured: str | None = None, project: str | Path | None = PROJECT_CONFIG,
             flag_name: str = "--runs-dir") -> Path:
    """The runs directory: `flag`, else $PO_TUI_RUNS_DIR, else `configured` (a loaded config's
    runs_dir), else the project config's runs_dir (when `project` exists), else ./runs.

    Raises InputError for a path that is not a directory, or a project config that does not
    validate (one line naming its file, line and key).
    """
    if flag:
        return _checked(Path(flag), flag_name)
    env = os.environ.get(ENV, "").strip()
    if env:
        return _checked(Path(env), ENV)
    if configured:
        return _checked(Path(configured), "runs_dir")
    if project is not None and Path(project).is_file():
        from engine.pipeline.config import load_config

        found = load_config(project).runs_dir
        if found:
            return _checked(Path(found), f"{project}: runs_dir")
    return Path(DEFAULT)
