"""bench/tui_ingest.py keeps working: one low rate for a second and a 2,000-event open.

Not a timing test: only the structure of the results is checked (keys present, numbers finite),
never a figure against a target; docs/BENCHMARKS.md records the real run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _finite(row: dict, *keys: str) -> None:
    for key in keys:
        assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (key, row[key])


def test_tui_ingest_benchmark_runs_and_reports_every_figure(tmp_path):
    out = tmp_path / "tui.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tui_ingest.py"), "--rates", "500", "--seconds", "1",
         "--open-events", "2000", "--size", "80x24", "--workdir", str(tmp_path / "w"), "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    (row,) = results["ingest"]
    assert row["rate"] == 500 and row["log_every"] == 20
    _finite(row, "written_per_s", "ingested_per_s", "log_lines_per_s", "max_backlog", "backlog_at_stop", "lag_at_stop_s",
            "drain_s", "key_handler_p50_ms", "key_handler_p95_ms", "key_handler_max_ms", "max_stall_ms", "peak_rss_mib")
    assert row["folded"] == row["written"] > 500 * 0.9
    assert row["presses"]["ping"] > 0 and row["handled"]["ping"] > 0
    assert isinstance(row["kept_up"], bool)
    (opened,) = results["open"]
    assert opened["events"] == opened["folded"] == 2000
    _finite(opened, "open_s", "drawn_s", "first_redraw_s", "max_stall_ms", "peak_rss_growth_mib",
            "retained_rss_growth_mib", "traced_peak_mib", "traced_retained_mib")
    assert opened["screen_has_gate"]
    assert results["sustained"][0]["log_every"] == 20
    assert "| target ev/s |" in proc.stdout and "| events | folded |" in proc.stdout
    run = tmp_path / "w" / "finished-2000"
    assert json.loads((run / "manifest.json").read_text())["format"] == "po-tui-run/1"
    assert sum(1 for p in run.glob("*.events.jsonl") for _ in p.open()) == 2000
