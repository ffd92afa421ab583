"""The cockpit's feed: a long finished run replays in bounded slices, in (ts, seq) order across jobs."""

from __future__ import annotations

import json
from pathlib import Path

from po_tui import feed as feed_mod
from po_tui.feed import RunFeed


def _write(path: Path, job: str, n: int, t0: float) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for seq in range(n):
            fh.write(json.dumps({"v": 1, "ts": t0 + seq * 0.5, "seq": seq, "job": job, "type": "progress",
                                 "data": {"done": seq, "total": n, "unit": "records"}}) + "\n")


def test_a_long_run_replays_in_bounded_slices_in_order(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(feed_mod, "MAX_BATCH_EVENTS", 500)
    monkeypatch.setattr(feed_mod, "TAIL_POLL_BYTES", 16 << 10)
    _write(tmp_path / "a.events.jsonl", "a", 3000, 1000.0)
    _write(tmp_path / "b.events.jsonl", "b", 2000, 1000.25)  # interleaves with a by time
    feed = RunFeed(tmp_path)
    batches = [feed.poll()]
    while batches[-1].more:
        batches.append(feed.poll())
    assert len(batches) > 5
    # a slice is the budget plus at most one read's worth (16 KiB: some 130 of these lines)
    assert max(len(b.events) for b in batches) <= 500 + 200
    events = [e for b in batches for e in b.events]
    assert len(events) == 5000
    for job, n in (("a", 3000), ("b", 2000)):
        assert [e["seq"] for e in events if e["job"] == job] == list(range(n))
    for b in batches:  # within a slice, jobs are interleaved by time
        assert [(e["ts"], e["seq"]) for e in b.events] == sorted((e["ts"], e["seq"]) for e in b.events)
    assert not feed.poll()  # nothing new
