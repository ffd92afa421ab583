"""Durable JSONL: fsynced appends, torn last lines, corrupt middle lines, atomic whole files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.errors import InputError
from engine.store.atomic import atomic_write_json, atomic_write_jsonl
from engine.store.jsonl import JsonlAppender, iter_jsonl, repair_torn_tail


def read_jsonl(path, *, warn=None) -> list:
    """All (line, record) pairs, a torn last line described to `warn`: how the stages read."""
    return list(iter_jsonl(path, on_torn=(lambda t: warn(t.describe())) if warn else None))


def test_append_then_read(tmp_path):
    path = tmp_path / "d.jsonl"
    with JsonlAppender(path) as out:
        out.write({"a": 1, "text": "ñ ✓"})
        out.write({"a": 2})
    assert [obj for _, obj in read_jsonl(path)] == [{"a": 1, "text": "ñ ✓"}, {"a": 2}]
    assert path.read_bytes().endswith(b"\n")


def test_torn_last_line_is_reported_and_ignored(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "cut')
    warnings: list[str] = []
    rows = read_jsonl(path, warn=warnings.append)
    assert [line for line, _ in rows] == [1, 2]
    assert len(warnings) == 1 and f"{path}:3: torn last line" in warnings[0]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}')
    assert [obj["a"] for _, obj in read_jsonl(path)] == [1, 2]


def test_corrupt_middle_line_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(InputError) as exc:
        read_jsonl(path)
    assert str(exc.value).startswith(f"{path}:2: malformed JSON")


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"a": 2}\n')
    assert [line for line, _ in iter_jsonl(path)] == [1, 4]


def test_non_utf8_line_is_an_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(InputError, match=r":1: not UTF-8"):
        read_jsonl(path)


def test_appender_moves_torn_tail_aside_before_appending(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2, "torn')
    warnings: list[str] = []
    with JsonlAppender(path, warn=warnings.append) as out:
        out.write({"a": 3})
    assert [obj["a"] for _, obj in read_jsonl(path)] == [1, 3]
    sidecars = list(tmp_path.glob("d.jsonl.torn-*"))
    assert len(sidecars) == 1 and sidecars[0].read_bytes() == b'{"a": 2, "torn'
    assert "moved aside" in warnings[0]


def test_appender_finishes_a_complete_unterminated_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}')
    assert repair_torn_tail(path) is None
    with JsonlAppender(path) as out:
        out.write({"a": 2})
    assert [obj["a"] for _, obj in read_jsonl(path)] == [1, 2]


def test_records_survive_a_killed_writer(tmp_path):
    """A process killed mid-run loses nothing it had appended."""
    path = tmp_path / "d.jsonl"
    code = (
        "import os, signal, sys\n"
        "from engine.store.jsonl import JsonlAppender\n"
        "out = JsonlAppender(sys.argv[1])\n"
        "for i in range(50): out.write({'i': i})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=os.getcwd())
    assert proc.returncode == -9
    assert [obj["i"] for _, obj in read_jsonl(path)] == list(range(50))


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    path = tmp_path / "out" / "r.json"
    atomic_write_json(path, {"v": 1})
    atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    atomic_write_jsonl(tmp_path / "rows.jsonl", [{"a": 1}, {"a": 2}])
    assert (tmp_path / "rows.jsonl").read_text() == '{"a": 1}\n{"a": 2}\n'


def test_atomic_write_failure_keeps_old_file(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os

    from engine.store.atomic import atomic_write_text

    mask = os.umask(0)
    os.umask(mask)
    path = atomic_write_text(tmp_path / "report.md", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
