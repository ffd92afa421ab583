"""A damaged manifest.json is refused in one place (engine/pipeline/manifest.py) with one located line.

`run --resume` and `cancel` gave tracebacks on a binary or wrongly typed manifest, and `status`
showed every job as "pending". Each kind of damage is checked against every command that reads
the manifest: exit 2, one line naming the file (and the line or field), no traceback, nothing
written. `runs` lists the run as damaged and goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from engine.cli import main
from engine.errors import InputError
from engine.pipeline.config import parse_config
from engine.pipeline.manifest import read_manifest, read_pidfile
from engine.pipeline.runner import Engine, create_run

CONFIG = {"concepts": {"count": 4, "seed": 3}, "teacher": {"provider": "synthetic", "max_records": 2}, "tiny_model": {"build": True}}


def _edit(change: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], bytes]:
    def damage(doc: dict[str, Any]) -> bytes:
        change(doc)
        return json.dumps(doc, indent=2).encode()

    return damage


def _set(path: tuple, value: Any) -> Callable[[dict[str, Any]], bytes]:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return _edit(change)


# (damage, what the one line must name besides the file)
DAMAGE = [
    pytest.param(lambda d: b'{"format": "po-tui-run/1",\n "state": "\xff\xfe"}', "not UTF-8 text (byte 0xff at offset 38)", id="binary"),
    pytest.param(lambda d: bytes(range(256)), "not UTF-8 text (byte 0x80 at offset 128)", id="all-bytes"),
    pytest.param(lambda d: json.dumps(d, indent=2).encode()[:100], "malformed JSON", id="truncated"),
    pytest.param(lambda d: b"", "malformed JSON", id="empty"),
    pytest.param(lambda d: b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="nested-100000"),
    pytest.param(lambda d: b'[{"name": "teacher"}]', "a JSON list, expected an object", id="list"),
    pytest.param(lambda d: b'"pending"', "a JSON string, expected an object", id="string"),
    pytest.param(_set(("jobs",), "teacher,prep"), "jobs: damaged run manifest: Input should be a valid list", id="jobs-string"),
    pytest.param(_set(("jobs",), {"teacher": {}}), "jobs: damaged run manifest", id="jobs-object"),
    pytest.param(_set(("jobs", 1), "teacher"), "jobs.1: damaged run manifest", id="job-not-object"),
    pytest.param(_set(("jobs", 1, "state"), 3), "jobs.1.state: damaged run manifest", id="job-state-int"),
    pytest.param(_set(("jobs", 1, "state"), "exploded"), "jobs.1.state: damaged run manifest", id="job-state-unknown"),
    pytest.param(_set(("jobs", 1, "pgid"), "4242"), "jobs.1.pgid: damaged run manifest", id="pgid-string"),
    pytest.param(_set(("jobs", 1, "pgid"), True), "jobs.1.pgid: damaged run manifest", id="pgid-bool"),
    pytest.param(_set(("jobs", 1, "fingerprint"), ["x"]), "jobs.1.fingerprint: damaged run manifest", id="fingerprint-list"),
    pytest.param(_set(("jobs", 1, "argv"), "teacher --out x"), "jobs.1.argv: damaged run manifest", id="argv-string"),
    pytest.param(_set(("jobs", 0, "name"), 7), "jobs.0.name: damaged run manifest", id="name-int"),
    pytest.param(_edit(lambda d: d["jobs"][1].pop("name")), "jobs.1.name: damaged run manifest: required value missing", id="name-missing"),
    pytest.param(_set(("jobs", 1, "name"), "concepts"), "job 'concepts' listed twice", id="name-twice"),
    pytest.param(_set(("state",), ["running"]), "state: damaged run manifest", id="run-state-list"),
    pytest.param(_set(("state",), "half-done"), "state: damaged run manifest", id="run-state-unknown"),
    pytest.param(_edit(lambda d: d.pop("state")), "state: damaged run manifest: required value missing", id="run-state-missing"),
    pytest.param(_set(("gate",), "pass"), "gate: damaged run manifest", id="gate-string"),
    pytest.param(_set(("format",), "po-tui-run/9"), "format: damaged run manifest", id="format-unknown"),
]

COMMANDS = [
    pytest.param(lambda r: ["run", "--resume", str(r)], id="run-resume"),
    pytest.param(lambda r: ["run", "--resume", str(r), "--retry-failed"], id="run-retry"),
    pytest.param(lambda r: ["cancel", str(r), "--wait", "0"], id="cancel"),
    pytest.param(lambda r: ["status", str(r)], id="status"),
    pytest.param(lambda r: ["status", "--json", str(r)], id="status-json"),
]


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def good_manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run_dir = create_run(tmp_path_factory.mktemp("good") / "run", parse_config(CONFIG))
    return json.loads((run_dir / "manifest.json").read_text())


def _damaged_run(tmp_path: Path, good: dict[str, Any], damage: Callable[[dict[str, Any]], bytes]) -> Path:
    run_dir = create_run(tmp_path / "run", parse_config(CONFIG))
    (run_dir / "manifest.json").write_bytes(damage(json.loads(json.dumps(good))))
    return run_dir


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage,named", DAMAGE)
def test_a_damaged_manifest_is_one_located_line_exit_2_and_nothing_written(tmp_path, capsys, good_manifest, damage, named, command):
    run_dir = _damaged_run(tmp_path, good_manifest, damage)
    before = _tree(tmp_path)
    code = main(command(run_dir))
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"po-tui {command(run_dir)[0]}: error: {run_dir / 'manifest.json'}") and named in err, err
    assert "damaged run manifest" in err
    assert "pending" not in out
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("damage,named", DAMAGE[:3] + DAMAGE[7:12])
def test_runs_lists_a_damaged_run_as_damaged_and_the_others_as_they_are(tmp_path, capsys, good_manifest, damage, named):
    _damaged_run(tmp_path, good_manifest, damage)
    create_run(tmp_path / "fine", parse_config(CONFIG))
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert rows["run"]["state"] == "damaged" and rows["fine"]["state"] == "pending"


def test_the_engine_refuses_a_damaged_manifest_and_reads_what_it_writes(tmp_path, good_manifest):
    run_dir = create_run(tmp_path / "run", parse_config(CONFIG))
    assert [j["name"] for j in read_manifest(run_dir)["jobs"]] == [j["name"] for j in good_manifest["jobs"]]
    engine = Engine(run_dir, parse_config(CONFIG))
    engine._set_job(engine._entry("teacher"), state="failed", exit_code=1, pgid=None, fingerprint="ab" * 32, argv=["teacher"])
    engine.manifest["gate"] = {"verdict": "pass", "passed": 1, "criteria": 1}
    engine._save()
    assert read_manifest(run_dir)["jobs"][1]["state"] == "failed"  # what the engine writes is valid
    (run_dir / "manifest.json").write_bytes(b"\x00\xc3binary")
    with pytest.raises(InputError, match="damaged run manifest: not UTF-8 text"):
        Engine(run_dir, parse_config(CONFIG), resume=True)


def test_a_missing_manifest_is_still_not_a_run_directory(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for args in (["run", "--resume", str(tmp_path / "run")], ["cancel", str(tmp_path / "run")]):
        assert main(args) == 2
        assert "no manifest.json: not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"\xff\xfe\x00", b"[1, 2]", b'"4242"', b"{", b"[" * 100_000])
def test_a_damaged_engine_pid_names_no_engine(tmp_path, capsys, content):
    run_dir = create_run(tmp_path / "run", parse_config(CONFIG))
    (run_dir / "engine.pid").write_bytes(content)
    assert read_pidfile(run_dir) is None
    assert main(["status", "--json", str(run_dir)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["engine"] is None and doc["state"] == "pending"
    assert main(["cancel", str(run_dir), "--wait", "0"]) == 0
    assert "no live engine" in capsys.readouterr().out


# --- the teacher's own run record, teacher_run.json: the same class of damage --------------------

TEACHER_DAMAGE = [
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8 text (byte 0x89 at offset 0)", id="binary"),
    pytest.param(b'{"segments": [', "malformed JSON", id="truncated"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="nested-100000"),
    pytest.param(b'["segment"]', "damaged teacher run record: a JSON list, expected an object", id="list"),
    pytest.param(b'{"segments": "one"}', "segments: damaged teacher run record", id="segments-string"),
    pytest.param(b'{"segments": [], "fingerprint": "abc"}', "fingerprint: damaged teacher run record", id="fingerprint-string"),
    pytest.param(b'{"segments": [], "rescores": 3}', "rescores: damaged teacher run record", id="rescores-int"),
]


@pytest.fixture(scope="module")
def teacher_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.stages.concepts import generate_concepts
    from engine.store.atomic import atomic_write_jsonl

    root = tmp_path_factory.mktemp("teacher")
    concepts = atomic_write_jsonl(root / "concepts.jsonl", generate_concepts(2, 4))
    assert main(["teacher", "--concepts", str(concepts), "--out", str(root / "out"), "--provider", "synthetic",
                 "--synthetic-defect-rate", "0", "--synthetic-low-quality-rate", "0"]) == 0
    return root


@pytest.mark.parametrize("mode", ["resume", "rescore"])
@pytest.mark.parametrize("content,named", TEACHER_DAMAGE)
def test_a_damaged_teacher_run_record_is_one_located_line_exit_2_and_nothing_written(tmp_path, capsys, teacher_out, content, named, mode):
    import shutil

    root = tmp_path / "t"
    shutil.copytree(teacher_out, root)
    record = root / "out" / "teacher_run.json"
    record.write_bytes(content)
    capsys.readouterr()
    before = _tree(root)
    if mode == "resume":
        argv = ["teacher", "--concepts", str(root / "concepts.jsonl"), "--out", str(root / "out"), "--provider", "synthetic", "--resume"]
    else:
        argv = ["teacher", "--rescore", "--out", str(root / "out"), "--provider", "synthetic"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"po-tui teacher: error: {record}") and named in err and "damaged teacher run record" in err
    assert _tree(root) == before


def test_the_cockpit_controls_say_the_manifest_is_damaged(tmp_path, good_manifest):
    from engine.views.controls import controls

    run_dir = _damaged_run(tmp_path, good_manifest, _set(("jobs", 1, "state"), 3))
    found = controls(run_dir, None)
    for control in (found.cancel, found.resume, found.retry):
        assert not control.ok and "manifest.json: jobs.1.state: damaged run manifest" in control.why
    (run_dir / "manifest.json").unlink()
    assert controls(run_dir, None).resume.why.startswith("no manifest.json")
