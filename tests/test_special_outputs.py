"""Whole-file outputs never replace what is not a regular file (engine/store/atomic.py).

A character device or FIFO named as `-o` is written in place (like stdout) and stays what it was;
a symlink is written through (the link stays, its target is replaced atomically); a directory,
socket or block device is refused with one line, exit 2, untouched. Checked through every command
that writes a whole file a user names: concepts, score, import, report, init --force.
"""

from __future__ import annotations

import json
import os
import random
import socket
import stat
import threading
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.blocks import check_text
from engine.core.records import Concept, teacher_record
from engine.errors import InputError
from engine.providers.po_writer import write_answer
from engine.stages.concepts import generate_concepts
from engine.store import atomic
from engine.store.atomic import atomic_write_text, check_output, is_stream
from tests.eval_files import scored_cases, write_results


def _teacher_file(tmp: Path) -> Path:
    rows = []
    for c in generate_concepts(3, seed=1):
        concept = Concept(c["concept"], c["requirements_yaml"], c["concept_id"], c["tier"])
        ex, _ = check_text(write_answer(c["concept"], c["requirements_yaml"], random.Random(c["concept_id"])))
        rows.append(teacher_record(concept, ex.vision_text, ex.review_text, score=0.9, metric="po-v2", breakdown={}, metadata={}))
    path = tmp / "in" / "teacher.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _results(tmp: Path) -> Path:
    return write_results(tmp / "in", "student", "20251120_110000", scored_cases([0.8, 0.9]))


# Each: argv writing to OUT (a placeholder), and what the written bytes start with.
COMMANDS = {
    "concepts": (lambda t: ["concepts", "--count", "2", "-o", "OUT"], b'{"concept'),
    "score": (lambda t: ["score", str(_teacher_file(t)), "-o", "OUT"], b'{"id"'),
    "import": (lambda t: ["import", str(_teacher_file(t)), "-o", "OUT"], b'{"concept'),
    "report": (lambda t: ["report", str(_results(t)), "-o", "OUT"], b"# Product Owner"),
    "init": (lambda t: ["init", "OUT", "--force"], b"#"),
}


def _argv(name: str, tmp: Path, out: Path) -> list[str]:
    make, _ = COMMANDS[name]
    return [str(out) if a == "OUT" else a for a in make(tmp)]


def _listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def _char_device(path: Path) -> Path:
    """A /dev/null twin at `path` (mknod needs privileges; a nodev mount refuses to open it)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a character device here: {exc}")
    try:
        os.close(os.open(path, os.O_WRONLY))
    except OSError as exc:
        pytest.skip(f"cannot open a character device on this filesystem: {exc}")
    return path


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_character_device_as_output_stays_a_device(tmp_path, capsys, name):
    dev = _char_device(tmp_path / "null")
    before = os.stat(dev)
    code = main(_argv(name, tmp_path, dev))
    err = capsys.readouterr().err
    assert code == 0, err
    after = os.lstat(dev)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert "Traceback" not in err
    # nothing beside it: no temp file, no plots next to a device
    assert [p.name for p in tmp_path.iterdir() if p.name != "in"] == ["null"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_fifo_as_output_is_written_in_place_for_its_reader(tmp_path, capsys, name):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    argv = _argv(name, tmp_path, fifo)  # inputs are made before the reader starts
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as fh:  # blocks until the writer opens its end
            got.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code = main(argv)
    reader.join(timeout=30)
    err = capsys.readouterr().err
    assert code == 0, err
    assert not reader.is_alive() and got and got[0].startswith(COMMANDS[name][1])
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name != "in"] == ["pipe"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_symlink_is_written_through_and_stays_a_link(tmp_path, capsys, name):
    target_dir = tmp_path / "real"
    target_dir.mkdir()
    target = target_dir / "target.txt"
    target.write_text("old\n")
    link = tmp_path / "link"
    link.symlink_to(os.path.join("real", "target.txt"))  # relative, resolved from the link's folder
    code = main(_argv(name, tmp_path, link))
    err = capsys.readouterr().err
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "target.txt")
    body = target.read_bytes()
    assert body.startswith(COMMANDS[name][1]) and body != b"old\n"
    assert not [p for p in target_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_chain_of_links_and_a_dangling_link(tmp_path):
    final = tmp_path / "final.txt"
    final.write_text("old")
    (tmp_path / "b").symlink_to(final)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    atomic_write_text(tmp_path / "a", "new")
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink() and final.read_text() == "new"
    (tmp_path / "dangling").symlink_to(tmp_path / "created.txt")
    atomic_write_text(tmp_path / "dangling", "made")
    assert (tmp_path / "dangling").is_symlink() and (tmp_path / "created.txt").read_text() == "made"
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    with pytest.raises(InputError, match="loop"):
        atomic_write_text(tmp_path / "loop1", "x")
    assert (tmp_path / "loop1").is_symlink() and (tmp_path / "loop2").is_symlink()


def _unix_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("kind", ["directory", "socket", "link to a directory"])
def test_other_special_targets_are_refused_with_one_line(tmp_path, capsys, name, kind):
    target = tmp_path / "target"
    sock = None
    if kind == "directory":
        target.mkdir()
        (target / "keep.txt").write_text("keep")
    elif kind == "socket":
        sock = _unix_socket(target)
    else:
        (tmp_path / "d").mkdir()
        target.symlink_to(tmp_path / "d")
    argv = _argv(name, tmp_path, target)
    before = _listing(tmp_path)
    try:
        code = main(argv)
    finally:
        if sock is not None:
            sock.close()
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and str(target) in err
    assert _listing(tmp_path) == before
    if kind == "directory":
        assert (target / "keep.txt").read_text() == "keep"
    elif kind == "socket":
        assert stat.S_ISSOCK(os.lstat(target).st_mode)
    else:
        assert target.is_symlink()


def test_a_block_device_is_refused(tmp_path):
    path = tmp_path / "blk"
    try:
        os.mknod(path, 0o600 | stat.S_IFBLK, os.makedev(7, 250))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a block device here: {exc}")
    with pytest.raises(InputError, match="is a block device"):
        atomic_write_text(path, "x")
    assert stat.S_ISBLK(os.lstat(path).st_mode)
    with pytest.raises(InputError):
        check_output(path)


def test_the_rename_never_lands_on_a_target_that_changed_while_writing(tmp_path, monkeypatch):
    """A FIFO (or link) put where the output goes while it is written is left alone, not replaced."""
    target = tmp_path / "out.txt"
    real_mkstemp = atomic.tempfile.mkstemp

    def mkstemp_then_swap(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        os.mkfifo(target)  # someone else's special file appears at the target path
        return made

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp_then_swap)
    with pytest.raises(InputError, match="not a regular file"):
        atomic_write_text(target, "data")
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # the temp file is gone


def test_is_stream(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    (tmp_path / "r").write_text("x")
    assert is_stream(fifo) and not is_stream(tmp_path / "r") and not is_stream(tmp_path / "missing")
    assert is_stream("/dev/null")


def test_regular_files_are_still_replaced_atomically(tmp_path):
    path = tmp_path / "sub" / "f.json"
    atomic_write_text(path, "one")
    inode = os.lstat(path).st_ino
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and os.lstat(path).st_ino != inode  # a new file, renamed in
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]
