"""Launching the cockpit; engine/commands/attach.py calls `attach` by name so engine never imports textual."""

from __future__ import annotations

from pathlib import Path


def attach(run_dir: str | Path) -> int:
    from po_tui.app import CockpitApp

    CockpitApp(run_dir).run()
    return 0
