"""Hostile input across every command: one line naming the culprit, exit 2, no traceback, nothing written.

Each case builds only the files it names, snapshots the whole workspace, runs the real CLI entry
point in-process and checks the contract of docs/cli.md, "Conventions": exit code 2, at most three
lines on stderr that name the file or flag at fault, no traceback, and not one file created,
changed or removed (no output, no partial output, no event log). The cases are grouped by the
class of failure (undecodable bytes, OS-level surprises, YAML alias bombs, unusable output
paths, concepts not fit to send, secrets in the wrong field, empty inputs), each class tried on
several commands, because a fix that covers one command but not its neighbours is no fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from engine.cli import main
from engine.core.records import Concept, teacher_record
from engine.stages.concepts import generate_concepts
from tests.eval_files import scored_cases, write_results
from tests.po_samples import REQUIREMENTS_YAML, dump, review, vision

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-live-Zq81xSECRETkey0000"
CONCEPT_TEXT = "Field Service Scheduler for utilities, targeting simple operations with emphasis on dispatch."


# --- file builders -------------------------------------------------------------------------------


def _teacher_rows(n: int = 2) -> list[dict]:
    rows = []
    for i in range(n):
        concept = Concept(CONCEPT_TEXT, REQUIREMENTS_YAML, f"POCON-{i:04d}", "simple")
        rows.append(teacher_record(concept, dump(vision()), dump(review()), score=0.9, metric="po-v2",
                                   breakdown={}, metadata={}))
    return rows


def _jsonl(rows: list) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def _concepts(**change: object) -> bytes:
    rows = generate_concepts(2, 0)
    rows[1] = {**rows[1], **change}
    return _jsonl([{k: v for k, v in r.items() if v is not None} for r in rows])


def _bomb(levels: int = 9) -> bytes:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def _results(tmp: Path, cases: list[dict] | None = None, *, tag: str = "baseline") -> Path:
    return write_results(tmp / "res", tag, "20251120_100000", cases if cases is not None else scored_cases([0.9, 0.8]))


def _nan_results(tmp: Path) -> Path:
    path = _results(tmp, tag="student")
    path.write_text(path.read_text().replace('"score": 0.9,', '"score": NaN,', 1))
    return path


def _adapter(tmp: Path, config: bytes) -> Path:
    folder = tmp / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_bytes(config)
    return folder


def _dir_with(name: str, files: dict[str, bytes]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        folder = tmp / name
        folder.mkdir()
        for fname, data in files.items():
            (folder / fname).write_bytes(data)
        return folder

    return build


def _fifo(tmp: Path) -> Path:
    path = tmp / "fifo.jsonl"
    os.mkfifo(path)
    return path


GOOD_TEACHER = _jsonl(_teacher_rows())
DEEP_JSON = ("[" * 100_000 + "]" * 100_000 + "\n").encode()

# name -> bytes, or a builder(tmp) -> Path. A case's argv names the ones it needs as {name}.
FILES: dict[str, bytes | Callable[[Path], Path]] = {
    "teacher": GOOD_TEACHER,
    "concepts": _concepts(),
    "binary": b"\xff\xfe\x00\x81garbage\x00\x9f\n",
    "latin1": GOOD_TEACHER + '{"concept": "caf\xe9"}\n'.encode("latin-1"),
    "deep": DEEP_JSON,
    "deep_obj": ('{"a":' * 50_000 + "1" + "}" * 50_000 + "\n").encode(),
    "nan": GOOD_TEACHER.replace(b'"score": 0.9', b'"score": NaN', 1),
    "inf": GOOD_TEACHER.replace(b'"score": 0.9', b'"score": 1e999', 1),
    "bigint": GOOD_TEACHER.replace(b'"score": 0.9', b'"score": ' + b"7" * 5000, 1),
    "surrogate": GOOD_TEACHER.replace(b'"POCON-0001"', b'"POCON-\\ud800"', 1),
    "empty": b"",
    "blank": b"\n  \n\n",
    "unclosed_req": _concepts(requirements_yaml="title: [unclosed"),
    "no_req": _concepts(requirements_yaml=None),
    "yaml_latin1": "teacher:\n  provider: synth\xe9tic\n".encode("latin-1"),
    "yaml_binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "bomb": _bomb(5),  # 9**5 values: over the budget, yet harmless to a loader without one
    "recursive": b"teacher: &t\n  synthetic: *t\n",
    "yaml_deep": ("teacher: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
    "yaml_huge": b"# padding\n" * 110_000,
    "yaml_nul": b"teacher:\n  seed: 1\x00\n",
    "yaml_date": b"teacher:\n  seed: 2025-13-45\n",
    "yaml_surrogate": b'teacher:\n  model: "\\ud800"\n',
    "yaml_flat": ("student: [" + ", ".join(["1"] * 20_000) + "]\n").encode(),
    "yaml_list": b"- provider: synthetic\n- seed: 3\n",
    "yaml_train_int": b"train: 5\n",
    "yaml_inf": b"teacher:\n  budget_usd: .inf\n",
    "yaml_seed": b"teacher:\n  seed: 1\nprep:\n  seed: -1\n",
    "yaml_concepts_device": b"teacher:\n  provider: synthetic\nconcepts:\n  file: /dev/zero\n",
    "yaml_concepts_missing": b"teacher:\n  provider: synthetic\nconcepts:\n  file: nowhere.jsonl\n",
    "yaml_concepts_dir": b"teacher:\n  provider: synthetic\nconcepts:\n  file: /\n",
    "yaml_base_empty": b"teacher:\n  provider: synthetic\ntrain:\n  base_model: ''\n",
    "yaml_seq_huge": b"teacher:\n  provider: synthetic\ntrain:\n  max_seq_len: 99999999999999999999\n",
    "key_config": f"teacher:\n  provider: gemini\n  api_key_env: {SECRET}\n".encode(),
    "good_config": b"concepts:\n  count: 2\nteacher:\n  provider: synthetic\n",
    "template_latin1": "CONCEPT: {{concept}} {{requirements_yaml}} caf\xe9\n".encode("latin-1"),
    "afile": b"just a file\n",
    "dir": _dir_with("adir", {}),
    "fifo": _fifo,
    "model": _dir_with("model", {"config.json": b"{}"}),
    "model_binary": _dir_with("badmodel", {"config.json": b"\xff\xfe"}),
    "results": _results,
    "results_nan": _nan_results,
    "results_binary": lambda tmp: _write(tmp / "res" / "student_20251120_100000.json", b"\xff{\n"),
    "adapter_binary": lambda tmp: _adapter(tmp, b"\xff\xfe{}"),
    "adapter_list": lambda tmp: _adapter(tmp, b"[1, 2]"),
    "adapter_lora": lambda tmp: _adapter(tmp, b'{"peft_type": "LORA", "r": 8, "lora_alpha": 16}'),
    "teacher_dir_damaged": _dir_with("tdir", {"teacher_run.json": b"\xff\xfe\x00", "responses.jsonl": b""}),
    "train_dir_binary": _dir_with("trained", {"po_tui_train.json": b"\xff\xfe", "loss_history.json": b"[]"}),
}


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _build(tmp: Path, argv: list[str]) -> list[str]:
    names = {n for a in argv for n in re.findall(r"\{(\w+)\}", a)}
    paths: dict[str, Path] = {"tmp": tmp}
    for name in sorted(names - {"tmp"}):
        spec = FILES[name]
        paths[name] = spec(tmp) if callable(spec) else _write(tmp / f"{name}.dat", spec)
    return [a.format(**paths) for a in argv]


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@contextlib.contextmanager
def _unblocking(fifo: Path, after_s: float = 6.0) -> Iterator[None]:
    """Keep a reader that waits on the FIFO from hanging the suite: after `after_s`, keep opening
    and closing its write end, which ends each wait (and the time check then fails the case)."""
    done = threading.Event()

    def release() -> None:
        if done.wait(after_s):
            return
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no FIFO, or nobody waiting on it right now
                pass
            done.wait(0.2)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# --- the cases -----------------------------------------------------------------------------------

# (id, argv, fragments the one error line must contain). The culprit is the first {file} named in
# argv unless a fragment names a flag; every fragment must appear.
CASES: list[tuple[str, list[str], list[str]]] = [
    # 1. Undecodable input: binary garbage or invalid UTF-8, in data files and YAML files.
    ("score-binary", ["score", "{binary}"], ["binary.dat:1: not UTF-8 text (byte 0xff at offset 0)"]),
    ("score-latin1-line", ["score", "{latin1}"], ["latin1.dat:3: not UTF-8 text (byte 0xe9 at offset"]),
    ("score-concepts-binary", ["score", "{teacher}", "--concepts", "{binary}"], ["binary.dat:1: not UTF-8 text"]),
    ("stats-binary", ["stats", "{binary}"], ["binary.dat:1: not UTF-8 text (byte 0xff"]),
    ("stats-latin1", ["stats", "{latin1}", "--json"], ["latin1.dat:3: not UTF-8 text"]),
    ("import-binary", ["import", "{binary}", "-o", "{tmp}/out.jsonl"], ["binary.dat:1: not UTF-8 text"]),
    ("teacher-stats-binary", ["teacher", "--stats", "{binary}"], ["binary.dat:1: not UTF-8 text"]),
    ("teacher-concepts-binary", ["teacher", "--provider", "synthetic", "--concepts", "{binary}", "--out", "{tmp}/t"],
     ["binary.dat:1: not UTF-8 text"]),
    ("teacher-config-latin1", ["teacher", "--config", "{yaml_latin1}", "--concepts", "{concepts}", "--out", "{tmp}/t"],
     ["yaml_latin1.dat:2: not UTF-8 text (byte 0xe9 at offset 26)"]),
    ("teacher-config-binary", ["teacher", "--config", "{yaml_binary}", "--concepts", "{concepts}", "--out", "{tmp}/t"],
     ["yaml_binary.dat:1: not UTF-8 text (byte 0x89 at offset 0)"]),
    ("run-config-latin1", ["run", "{yaml_latin1}", "--headless", "--runs-dir", "{tmp}/runs"], ["yaml_latin1.dat:2: not UTF-8 text"]),
    ("gate-gates-latin1", ["gate", "--gates", "{yaml_latin1}", "{results}", "{results}"], ["yaml_latin1.dat:2: not UTF-8 text"]),
    ("train-config-binary", ["train", "--config", "{yaml_binary}", "--out", "{tmp}/tr"], ["yaml_binary.dat:1: not UTF-8 text"]),
    ("prep-teacher-latin1", ["prep", "--teacher", "{latin1}", "--out", "{tmp}/p"], ["latin1.dat:3: not UTF-8 text"]),
    ("prep-template-latin1", ["prep", "--teacher", "{teacher}", "--out", "{tmp}/p", "--prompt-template", "{template_latin1}"],
     ["template_latin1.dat:1: not UTF-8 text"]),
    ("eval-dataset-binary", ["eval", "--provider", "synthetic", "--dataset", "{binary}", "--tag", "t", "--out", "{tmp}/e"],
     ["binary.dat:1: not UTF-8 text"]),
    ("gate-results-binary", ["gate", "{results_binary}", "{results}"], ["student_20251120_100000.json:1: not UTF-8 text"]),
    ("report-results-binary", ["report", "{results_binary}", "-o", "{tmp}/r.md"], ["student_20251120_100000.json:1: not UTF-8 text"]),
    ("export-adapter-config-binary", ["export", "ollama", "--adapter", "{adapter_binary}", "--base-model", "{model}", "--out", "{tmp}/ol"],
     ["adapter_config.json:1: not UTF-8 text"]),
    ("teacher-resume-manifest-binary",
     ["teacher", "--provider", "synthetic", "--concepts", "{concepts}", "--out", "{teacher_dir_damaged}", "--resume"],
     ["teacher_run.json:1: damaged teacher run record: not UTF-8 text"]),
    ("score-lone-surrogate", ["score", "{surrogate}"], ["surrogate.dat:2: not UTF-8 text", "\\ud800"]),
    ("teacher-config-surrogate", ["teacher", "--config", "{yaml_surrogate}", "--concepts", "{concepts}", "--out", "{tmp}/t"],
     ["yaml_surrogate.dat:2: not UTF-8 text"]),
    ("train-data-binary", ["train", "--data", "{binary}", "--base-model", "{model}", "--out", "{tmp}/tr"],
     ["binary.dat:1: not UTF-8 text"]),
    # 2. OS-level surprises: directories, devices, FIFOs, deep JSON, numbers Python refuses.
    ("score-directory", ["score", "{dir}"], ["adir: is a directory"]),
    ("score-dev-null", ["score", "/dev/null"], ["/dev/null: is a character device, not a regular file"]),
    ("score-fifo", ["score", "{fifo}"], ["fifo.jsonl: is a FIFO, not a regular file"]),
    ("stats-fifo", ["stats", "{fifo}"], ["fifo.jsonl: is a FIFO"]),
    ("eval-dataset-fifo", ["eval", "--provider", "synthetic", "--dataset", "{fifo}", "--tag", "t", "--out", "{tmp}/e"],
     ["fifo.jsonl: is a FIFO"]),
    ("teacher-config-dev-zero", ["teacher", "--config", "/dev/zero", "--concepts", "{concepts}", "--out", "{tmp}/t"],
     ["/dev/zero: is a character device"]),
    ("score-deep-json", ["score", "{deep}"], ["deep.dat:1: malformed JSON: nested too deeply"]),
    ("score-deep-object", ["score", "{deep_obj}"], ["deep_obj.dat:1: malformed JSON: nested too deeply"]),
    ("stats-deep-json", ["stats", "{deep}"], ["deep.dat:1: malformed JSON: nested too deeply"]),
    ("import-deep-json", ["import", "{deep}", "-o", "{tmp}/out.jsonl"], ["deep.dat:1: malformed JSON: nested too deeply"]),
    ("prep-deep-json", ["prep", "--teacher", "{deep}", "--out", "{tmp}/p"], ["deep.dat:1: malformed JSON: nested too deeply"]),
    ("teacher-stats-deep-json", ["teacher", "--stats", "{deep}"], ["deep.dat:1: malformed JSON: nested too deeply"]),
    ("teacher-concepts-deep-json", ["teacher", "--provider", "synthetic", "--concepts", "{deep}", "--out", "{tmp}/t"],
     ["deep.dat:1: malformed JSON: nested too deeply"]),
    ("gate-deep-json", ["gate", "{deep}", "{results}"], ["deep.dat: malformed JSON: nested too deeply"]),
    ("report-deep-json", ["report", "{deep}", "-o", "{tmp}/r.md"], ["deep.dat: malformed JSON: nested too deeply"]),
    ("eval-dataset-deep-json", ["eval", "--provider", "synthetic", "--dataset", "{deep}", "--tag", "t", "--out", "{tmp}/e"],
     ["deep.dat:1: malformed JSON: nested too deeply"]),
    ("train-data-deep-json", ["train", "--data", "{deep}", "--base-model", "{model}", "--out", "{tmp}/tr"],
     ["deep.dat:1: malformed JSON: nested too deeply"]),
    ("score-nan", ["score", "{nan}"], ["nan.dat:1: malformed JSON: NaN is not a JSON value"]),
    ("stats-nan", ["stats", "{nan}"], ["nan.dat:1: malformed JSON: NaN is not a JSON value"]),
    ("prep-infinity", ["prep", "--teacher", "{inf}", "--out", "{tmp}/p"], ["inf.dat:1: malformed JSON: number out of range"]),
    ("gate-nan", ["gate", "{results}", "{results_nan}"], ["student_20251120_100000.json: malformed JSON: NaN is not a JSON value"]),
    ("score-huge-integer", ["score", "{bigint}"], ["bigint.dat:1: malformed JSON", "digits"]),
    ("export-gguf-adapter-config-binary",
     ["export", "gguf", "--adapter", "{adapter_binary}", "--base-model", "{model}", "--out", "{tmp}/a.gguf"],
     ["adapter_config.json:1: not UTF-8 text"]),
    ("export-gguf-base-without-architecture",
     ["export", "gguf", "--adapter", "{adapter_lora}", "--base-model", "{model}", "--out", "{tmp}/a.gguf"],
     ["--base-model: base architecture unrecorded has no GGUF LoRA mapping"]),
    ("export-gguf-out-is-a-dir", ["export", "gguf", "--adapter", "{adapter_lora}", "--base-model", "{model}", "--out", "{dir}"],
     ["--out: is a directory"]),
    ("export-gguf-merged-llama-cpp-missing",
     ["export", "gguf", "--merged", "--adapter", "{adapter_lora}", "--base-model", "{model}", "--out", "{tmp}/a.gguf",
      "--llama-cpp", "{tmp}/nowhere"],
     ["--llama-cpp: not a directory"]),
    ("export-gguf-merged-bad-quantize",
     ["export", "gguf", "--merged", "--adapter", "{adapter_lora}", "--base-model", "{model}", "--out", "{tmp}/a.gguf", "--quantize", "q2"],
     ["--quantize: must be one of"]),
    ("export-ollama-merged-gguf-missing",
     ["export", "ollama", "--adapter", "{adapter_lora}", "--base-model", "{model}", "--out", "{tmp}/ol",
      "--merged-gguf", "{tmp}/none.gguf"],
     ["--merged-gguf: no such file"]),
    ("export-ollama-merged-gguf-not-gguf",
     ["export", "ollama", "--adapter", "{adapter_lora}", "--base-model", "{model}", "--out", "{tmp}/ol", "--merged-gguf", "{afile}"],
     ["--merged-gguf: not a GGUF file"]),
    ("export-adapter-config-list", ["export", "merge", "--adapter", "{adapter_list}", "--base-model", "{model}", "--out", "{tmp}/m"],
     ["adapter_config.json: --adapter: expected a JSON object"]),
    ("report-train-binary", ["report", "{results}", "-o", "{tmp}/r.md", "--train", "{train_dir_binary}"],
     ["po_tui_train.json:1: not UTF-8 text"]),
    ("train-base-model-config-binary", ["train", "--data", "{teacher}", "--base-model", "{model_binary}", "--out", "{tmp}/tr"],
     ["config.json:1: not UTF-8 text"]),
    ("train-base-model-without-tokenizer", ["train", "--data", "{teacher}", "--base-model", "{model}", "--out", "{tmp}/tr"],
     ["model: --base-model: cannot load a tokenizer"]),
    ("train-deepspeed-binary", ["train", "--data", "{teacher}", "--base-model", "{model}", "--out", "{tmp}/tr", "--deepspeed", "{binary}"],
     ["binary.dat:1: not UTF-8 text"]),
    # 3. YAML configs: alias bombs, recursive aliases, size, nesting, odd scalars.
    ("run-alias-bomb", ["run", "{bomb}", "--headless", "--runs-dir", "{tmp}/runs"], ["bomb.dat:", "alias bomb"]),
    ("gate-alias-bomb", ["gate", "--gates", "{bomb}", "{results}", "{results}"], ["bomb.dat:", "alias bomb"]),
    ("teacher-alias-bomb", ["teacher", "--config", "{bomb}", "--concepts", "{concepts}", "--out", "{tmp}/t"], ["bomb.dat:", "alias bomb"]),
    ("train-alias-bomb", ["train", "--config", "{bomb}", "--out", "{tmp}/tr"], ["bomb.dat:", "alias bomb"]),
    ("teacher-prices-alias-bomb",
     ["teacher", "--provider", "synthetic", "--prices", "{bomb}", "--concepts", "{concepts}", "--out", "{tmp}/t"],
     ["bomb.dat:", "alias bomb"]),
    ("report-gates-alias-bomb", ["report", "{results}", "-o", "{tmp}/r.md", "--gates", "{bomb}"], ["bomb.dat:", "alias bomb"]),
    ("gate-gates-too-many-values", ["gate", "--gates", "{yaml_flat}", "{results}", "{results}"],
     ["yaml_flat.dat:1: more than 10,000 values"]),
    ("run-recursive-alias", ["run", "{recursive}", "--headless", "--runs-dir", "{tmp}/runs"], ["recursive.dat:2: recursive alias"]),
    ("run-config-too-large", ["run", "{yaml_huge}", "--headless", "--runs-dir", "{tmp}/runs"], ["yaml_huge.dat: larger than 1 MiB"]),
    ("gate-gates-too-large", ["gate", "--gates", "{yaml_huge}", "{results}", "{results}"], ["yaml_huge.dat: larger than 1 MiB"]),
    ("run-config-nested-too-deeply", ["run", "{yaml_deep}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["yaml_deep.dat: invalid YAML: nested too deeply"]),
    ("run-config-nul", ["run", "{yaml_nul}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["yaml_nul.dat:2: invalid YAML: unacceptable character #x0000"]),
    ("teacher-config-bad-date", ["teacher", "--config", "{yaml_date}", "--concepts", "{concepts}", "--out", "{tmp}/t"],
     ["yaml_date.dat:2: invalid YAML: invalid value: month must be in 1..12"]),
    ("teacher-config-a-list", ["teacher", "--config", "{yaml_list}", "--concepts", "{concepts}", "--out", "{tmp}/t"],
     ["yaml_list.dat:1: expected a mapping of settings, got list"]),
    ("train-config-section-a-number", ["train", "--config", "{yaml_train_int}", "--out", "{tmp}/tr"],
     ["yaml_train_int.dat:1: train: expected a mapping of settings, got int"]),
    ("run-config-directory", ["run", "{dir}", "--headless", "--runs-dir", "{tmp}/runs"], ["adir: is a directory, expected a YAML file"]),
    # 4. Output paths that cannot be written, refused before any work.
    ("teacher-out-is-a-file", ["teacher", "--provider", "synthetic", "--concepts", "{concepts}", "--out", "{afile}"],
     ["afile.dat: --out: exists and is not a directory"]),
    ("teacher-out-under-a-file", ["teacher", "--provider", "synthetic", "--concepts", "{concepts}", "--out", "{afile}/t"],
     ["--out: cannot create it:", "afile.dat is not a directory"]),
    ("teacher-run-dir-is-a-file",
     ["teacher", "--provider", "synthetic", "--concepts", "{concepts}", "--out", "{tmp}/t", "--run-dir", "{afile}"],
     ["afile.dat: --run-dir: exists and is not a directory"]),
    ("prep-out-is-a-file", ["prep", "--teacher", "{teacher}", "--out", "{afile}"], ["afile.dat: --out: exists and is not a directory"]),
    ("prep-out-under-a-file", ["prep", "--teacher", "{teacher}", "--out", "{afile}/p"], ["--out: cannot create it"]),
    ("train-out-is-a-file", ["train", "--data", "{teacher}", "--base-model", "{model}", "--out", "{afile}"],
     ["afile.dat: --out: exists and is not a directory"]),
    ("eval-out-under-a-file", ["eval", "--provider", "synthetic", "--dataset", "{concepts}", "--tag", "t", "--out", "{afile}/e"],
     ["--out: cannot create it"]),
    ("score-out-under-a-file", ["score", "{teacher}", "-o", "{afile}/s.jsonl"],
     ["--out: cannot create it", "afile.dat is not a directory"]),
    ("score-out-is-a-directory", ["score", "{teacher}", "-o", "{dir}"], ["adir: --out: is a directory"]),
    ("score-run-dir-is-a-file", ["score", "{teacher}", "--run-dir", "{afile}"], ["afile.dat: --run-dir: exists and is not a directory"]),
    ("import-out-under-a-file", ["import", "{teacher}", "-o", "{afile}/i.jsonl"], ["--out: cannot create it"]),
    ("concepts-out-under-a-file", ["concepts", "--count", "2", "-o", "{afile}/c.jsonl"], ["c.jsonl: -o/--output: cannot create it"]),
    ("report-out-under-a-file", ["report", "{results}", "-o", "{afile}/r.md"], ["-o/--out: cannot create it"]),
    ("init-under-a-file", ["init", "{afile}/po.yaml"], ["po.yaml: FILE: cannot create it"]),
    ("init-force-directory", ["init", "{dir}", "--force"], ["adir: FILE: is a directory"]),
    ("make-tiny-model-out-is-a-file", ["make-tiny-model", "--out", "{afile}"], ["afile.dat: --out: exists and is not a directory"]),
    ("make-tiny-model-out-under-a-file", ["make-tiny-model", "--out", "{afile}/m"], ["--out: cannot create it"]),
    ("demo-out-is-a-file", ["demo", "--out", "{afile}", "--headless"], ["afile.dat: --out: exists and is not a directory"]),
    ("demo-out-under-a-file", ["demo", "--out", "{afile}/d", "--headless"], ["--out: cannot create it"]),
    ("run-run-dir-is-a-file", ["run", "{good_config}", "--headless", "--run-dir", "{afile}"],
     ["afile.dat: --run-dir: exists and is not a directory"]),
    ("run-runs-dir-is-a-file", ["run", "{good_config}", "--headless", "--runs-dir", "{afile}"], ["afile.dat: --runs-dir: not a directory"]),
    # 7. Concepts not fit to send to a model: refused before the first (paid) request.
    ("teacher-requirements-not-yaml", ["teacher", "--provider", "synthetic", "--concepts", "{unclosed_req}", "--out", "{tmp}/t"],
     ["unclosed_req.dat:2: requirements_yaml: invalid YAML (line 2, column 1)"]),
    ("teacher-requirements-missing", ["teacher", "--provider", "synthetic", "--concepts", "{no_req}", "--out", "{tmp}/t"],
     ["no_req.dat:2: requirements_yaml: missing"]),
    ("eval-requirements-not-yaml", ["eval", "--provider", "synthetic", "--dataset", "{unclosed_req}", "--tag", "t", "--out", "{tmp}/e"],
     ["unclosed_req.dat:2: requirements_yaml: invalid YAML (line"]),
    ("eval-requirements-missing", ["eval", "--provider", "synthetic", "--dataset", "{no_req}", "--tag", "t", "--out", "{tmp}/e"],
     ["no_req.dat:2: requirements_yaml: missing"]),
    # 8. A key pasted where a variable name belongs: refused, never repeated.
    ("teacher-api-key-env-is-a-key",
     ["teacher", "--provider", "gemini", "--api-key-env", SECRET, "--concepts", "{concepts}", "--out", "{tmp}/t"],
     ["--api-key-env: must be the name of an environment variable"]),
    ("eval-api-key-env-is-a-key",
     ["eval", "--provider", "gemini", "--api-key-env", SECRET, "--dataset", "{concepts}", "--tag", "t", "--out", "{tmp}/e"],
     ["--api-key-env: must be the name of an environment variable"]),
    ("run-api-key-env-is-a-key", ["run", "{key_config}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["key_config.dat:3: teacher.api_key_env: must be the name"]),
    # 10. Empty inputs say so.
    ("score-empty", ["score", "{empty}"], ["empty.dat: no records"]),
    ("score-blank-lines", ["score", "{blank}", "-o", "{tmp}/s.jsonl"], ["blank.dat: no records"]),
    ("import-empty", ["import", "{empty}", "-o", "{tmp}/i.jsonl"], ["empty.dat: no records"]),
    ("teacher-concepts-empty", ["teacher", "--provider", "synthetic", "--concepts", "{empty}", "--out", "{tmp}/t"],
     ["empty.dat: no concepts"]),
    ("train-data-empty", ["train", "--data", "{empty}", "--base-model", "{model}", "--out", "{tmp}/tr"],
     ["empty.dat: no training records"]),
    # Numbers no library takes (seeds past 2**32, NaN, infinity) or sizes no machine holds.
    ("concepts-count-huge", ["concepts", "--count", "1000000000"], ["--count: must be between 1 and 100,000"]),
    ("gate-negative-seed", ["gate", "{results}", "{results}", "--seed", "-1"], ["argument --seed: expected a seed from 0 to 4294967295"]),
    ("prep-huge-seed", ["prep", "--teacher", "{teacher}", "--out", "{tmp}/p", "--seed", "99999999999999999999"], ["argument --seed"]),
    ("make-tiny-model-huge-seed", ["make-tiny-model", "--out", "{tmp}/m", "--seed", "99999999999999999999"], ["argument --seed"]),
    ("make-tiny-model-too-large", ["make-tiny-model", "--out", "{tmp}/m", "--layers", "100000"], ["--layers: about", "parameters"]),
    ("train-huge-seed", ["train", "--data", "{teacher}", "--base-model", "{model}", "--out", "{tmp}/tr", "--seed", "99999999999999999999"],
     ["argument --seed"]),
    ("teacher-budget-infinite",
     ["teacher", "--provider", "synthetic", "--concepts", "{concepts}", "--out", "{tmp}/t", "--budget-usd", "inf"],
     ["--budget-usd: Input should be a finite number"]),
    ("eval-temperature-nan",
     ["eval", "--provider", "synthetic", "--dataset", "{concepts}", "--tag", "t", "--out", "{tmp}/e", "--temperature", "nan"],
     ["--temperature"]),
    ("run-config-infinite", ["run", "{yaml_inf}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["yaml_inf.dat:2: teacher.budget_usd: Input should be a finite number"]),
    ("run-config-negative-seed", ["run", "{yaml_seed}", "--headless", "--runs-dir", "{tmp}/runs"], ["yaml_seed.dat:4: prep.seed"]),
    # A config naming a file that is not one is refused at its key, before the run starts
    # (hashing /dev/zero as the teacher's input used to spin forever).
    ("run-concepts-file-device", ["run", "{yaml_concepts_device}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["yaml_concepts_device.dat:4: concepts.file: /dev/zero: is a character device, not a regular file"]),
    ("run-concepts-file-missing", ["run", "{yaml_concepts_missing}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["yaml_concepts_missing.dat:4: concepts.file:", "nowhere.jsonl: no such file"]),
    ("run-concepts-file-directory", ["run", "{yaml_concepts_dir}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["yaml_concepts_dir.dat:4: concepts.file: /: is a directory"]),
    ("run-base-model-empty", ["run", "{yaml_base_empty}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["yaml_base_empty.dat:4: train.base_model"]),
    ("run-max-seq-len-huge", ["run", "{yaml_seq_huge}", "--headless", "--runs-dir", "{tmp}/runs"],
     ["yaml_seq_huge.dat:4: train.max_seq_len: Input should be less than or equal to 1048576"]),
    ("prep-min-score-nan", ["prep", "--teacher", "{teacher}", "--out", "{tmp}/p", "--min-score", "nan"],
     ["--min-score: must be between 0 and 1, got nan"]),
    ("demo-train-steps-negative", ["demo", "--train-steps", "-1", "--out", "{tmp}/d", "--headless"], ["argument --train-steps"]),
    ("run-grace-nan", ["run", "{good_config}", "--headless", "--runs-dir", "{tmp}/runs", "--grace", "nan"], ["argument --grace"]),
    # Run directories that are not one (status, runs, cancel, attach).
    ("status-not-a-run-directory", ["status", "{afile}"], ["afile.dat: not a run directory"]),
    ("runs-missing-directory", ["runs", "{tmp}/nowhere"], ["nowhere: no such directory"]),
    ("cancel-missing-run", ["cancel", "{tmp}/nowhere"], ["nowhere", "not a run directory"]),
    ("attach-missing-run", ["attach", "{tmp}/nowhere"], ["nowhere: no such run directory"]),
]


def test_the_module_covers_every_command_with_at_least_sixty_cases():
    from engine.cli import COMMANDS

    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1][0] for c in CASES} == set(COMMANDS)


@pytest.mark.parametrize(("argv", "expect"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys, argv, expect):
    monkeypatch.delenv("PO_TUI_DEBUG", raising=False)
    work = tmp_path / "w"
    work.mkdir()
    monkeypatch.chdir(work)
    args = _build(work, argv)
    before = _snapshot(work)
    started = time.monotonic()
    with _unblocking(work / "fifo.jsonl"):
        code, out, err = run_cli(args, capsys)
    if any("{fifo}" in a for a in argv):
        assert time.monotonic() - started < 5, "a FIFO must be refused, not waited on"
    assert code == 2, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, err
    for fragment in expect:
        assert fragment in err, err
    assert SECRET not in err and SECRET not in out
    assert _snapshot(work) == before, "bad input must leave nothing behind"


# --- the classes one by one, beyond what a table row checks --------------------------------------


def _capped_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("command", [
    ["run", "{bomb}", "--headless", "--runs-dir", "{tmp}/runs"],
    ["gate", "--gates", "{bomb}", "a.json", "b.json"],
    ["teacher", "--config", "{bomb}", "--concepts", "c.jsonl", "--out", "{tmp}/t"],
    ["train", "--config", "{bomb}", "--out", "{tmp}/tr"],
], ids=["run", "gate", "teacher", "train"])
def test_an_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path, command):
    """Twenty levels of nine aliases would be 9**20 values (the old loader needed 2.2 GB and 8 s for
    seven): refused while composing, in a child process held to a 1 GiB address space."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_bytes(_bomb(20))
    argv = [a.format(bomb=bomb, tmp=tmp_path) for a in command]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "engine", *argv], capture_output=True, text=True, timeout=60,
                          preexec_fn=_capped_memory, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert time.monotonic() - started < 15
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"po-tui {argv[0]}: error: {bomb}:5: aliases expand this document beyond 10,000 values: refused (an alias bomb?)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]


def test_anchors_and_aliases_within_the_budget_still_load(tmp_path):
    from engine.configfile import load_yaml_file

    path = tmp_path / "shared.yaml"
    path.write_text("base: &b {provider: synthetic, seed: 3}\nteacher:\n  <<: *b\n  min_score: 0.5\nother: [*b, *b]\n")
    doc, lines = load_yaml_file(path)
    assert doc["teacher"] == {"provider": "synthetic", "seed": 3, "min_score": 0.5}
    assert doc["other"] == [doc["base"], doc["base"]] and lines[("teacher", "min_score")] == 4


def test_the_alias_budget_counts_the_expanded_document(tmp_path):
    from engine.configfile import ALIAS_EXPANSION_MAX, load_yaml_file
    from engine.errors import InputError

    # a list of n scalars, repeated k times through one alias: (n + 1) * k + 1 values in all
    n = 99
    ok_k = (ALIAS_EXPANSION_MAX - 2) // (n + 1) - 1
    for k, fits in ((ok_k, True), (ok_k + 5, False)):
        path = tmp_path / f"k{k}.yaml"
        path.write_text("a: &a [" + ", ".join(["x"] * n) + "]\nb: [" + ", ".join(["*a"] * k) + "]\n")
        if fits:
            load_yaml_file(path)
        else:
            with pytest.raises(InputError, match="alias bomb"):
                load_yaml_file(path)


def test_invalid_utf8_is_located_by_line_and_file_offset(tmp_path, capsys):
    good = GOOD_TEACHER
    path = tmp_path / "t.jsonl"
    path.write_bytes(good + b'{"concept": "ab\xc3\x28"}\n')
    code, _, err = run_cli(["score", str(path)], capsys)
    assert code == 2
    assert err == f"po-tui score: error: {path}:3: not UTF-8 text (byte 0xc3 at offset {len(good) + 15})\n"


def test_a_torn_last_line_cut_inside_a_character_is_still_a_tear(tmp_path, capsys):
    """What an interrupted append leaves (a prefix, possibly inside a multi-byte character) is
    ignored with a warning; invalid bytes anywhere else are damage, reported as such."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(GOOD_TEACHER + '{"concept": "caf\u00e9'.encode()[:-1])
    code, out, err = run_cli(["score", str(path)], capsys)
    assert code == 0 and len(out.splitlines()) == 2 and "torn last line" in err
    path.write_bytes(GOOD_TEACHER + b'{"concept": "\xff"}')
    code, _, err = run_cli(["score", str(path)], capsys)
    assert code == 2 and ":3: not UTF-8 text (byte 0xff" in err


def test_a_byte_order_mark_is_not_damage(tmp_path, capsys):
    """Windows editors start UTF-8 files with a BOM: read through it, and still locate errors by
    their byte offset in the file."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_TEACHER)
    code, out, _ = run_cli(["score", str(path)], capsys)
    assert code == 0 and len(out.splitlines()) == 2
    path.write_bytes(b'\xef\xbb\xbf {"a": "\xff"}\n')
    code, _, err = run_cli(["score", str(path)], capsys)
    assert code == 2 and err.strip().endswith(":1: not UTF-8 text (byte 0xff at offset 11)")


def test_unreadable_file_is_one_line(tmp_path, capsys, monkeypatch):
    """PermissionError as the OS raises it (only a non-root user can be refused by file modes,
    so here the open itself is made to fail the way it does for one)."""
    import engine.store.inputfile as inputfile

    path = tmp_path / "t.jsonl"
    path.write_bytes(GOOD_TEACHER)
    real_open = os.open

    def refuse(p, *a, **k):
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *a, **k)

    monkeypatch.setattr(inputfile.os, "open", refuse)
    for argv in (["score", str(path)], ["stats", str(path)], ["teacher", "--stats", str(path)],
                 ["gate", "--gates", str(path), str(path), str(path)]):
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and err.strip().endswith(f"{path}: permission denied: cannot read it"), err


@pytest.mark.skipif(os.geteuid() == 0, reason="file modes do not stop root")
def test_unreadable_file_as_a_user(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    path.write_bytes(GOOD_TEACHER)
    path.chmod(0)
    code, _, err = run_cli(["score", str(path)], capsys)
    assert code == 2 and "permission denied" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="file modes do not stop root")
def test_out_in_a_read_only_directory_as_a_user(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    concepts = _write(tmp_path / "c.jsonl", _concepts())
    code, _, err = run_cli(["teacher", "--provider", "synthetic", "--concepts", str(concepts), "--out", str(ro / "t")], capsys)
    assert code == 2 and "is not writable" in err and not (ro / "t").exists()


def test_out_in_a_read_only_directory(tmp_path, capsys, monkeypatch):
    """A directory the process may not write (as the OS reports it through access(2), which also
    covers read-only mounts even for root): refused before any work, for directories and files."""
    import engine.store.outpath as outpath

    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(outpath.os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    concepts = _write(tmp_path / "c.jsonl", _concepts())
    teacher = _write(tmp_path / "t.jsonl", GOOD_TEACHER)
    for argv, culprit in (
        (["teacher", "--provider", "synthetic", "--concepts", str(concepts), "--out", str(ro / "t")], "--out"),
        (["prep", "--teacher", str(teacher), "--out", str(ro)], "--out"),
        (["score", str(teacher), "-o", str(ro / "s.jsonl")], "--out"),
        (["init", str(ro / "po.yaml")], "FILE"),
    ):
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and culprit in err and "not writable" in err, err
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/sys").is_dir() or os.access("/proc/sys", os.W_OK), reason="needs a read-only directory")
def test_out_on_a_read_only_mount(tmp_path, capsys):
    teacher = _write(tmp_path / "t.jsonl", GOOD_TEACHER)
    code, _, err = run_cli(["score", str(teacher), "-o", "/proc/sys/po-tui-scores.jsonl"], capsys)
    want = "po-tui score: error: /proc/sys/po-tui-scores.jsonl: --out: cannot create it: /proc/sys is not writable"
    assert code == 2 and err.strip() == want


def test_a_requirements_yaml_that_is_not_yaml_makes_no_request(tmp_path, capsys, monkeypatch):
    """The provider is never built, let alone called, when a concept is unfit."""
    import engine.providers as providers

    def no_provider(*_a, **_k):
        raise AssertionError("a provider was built for a run that should have been refused")

    monkeypatch.setattr(providers, "make_provider", no_provider)
    concepts = _write(tmp_path / "c.jsonl", _concepts(requirements_yaml="title: [unclosed"))
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    code, _, err = run_cli(["teacher", "--provider", "gemini", "--concepts", str(concepts), "--out", str(tmp_path / "t")], capsys)
    assert code == 2 and f"{concepts}:2: requirements_yaml: invalid YAML (line 2, column 1)" in err
    assert not (tmp_path / "t").exists()


def test_a_pasted_key_is_never_repeated_even_with_debug(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PO_TUI_DEBUG", "1")
    concepts = _write(tmp_path / "c.jsonl", _concepts())
    config = _write(tmp_path / "po.yaml", f"teacher:\n  api_key_env: {SECRET}\n".encode())
    teacher = ["teacher", "--api-key-env", SECRET, "--concepts", str(concepts), "--out", str(tmp_path / "t")]
    run = ["run", str(config), "--headless", "--runs-dir", str(tmp_path / "runs")]
    for argv, culprit in ((teacher, "--api-key-env"), (run, "teacher.api_key_env")):
        code, out, err = run_cli(argv, capsys)
        assert code == 2 and culprit in err
        assert SECRET not in err and SECRET not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "po.yaml"]


def test_a_variable_name_in_api_key_env_is_accepted():
    from engine.stages.eval.settings import EvalSettings
    from engine.stages.teacher.settings import TeacherSettings

    assert TeacherSettings(api_key_env="MY_GEMINI_KEY_2").api_key_env == "MY_GEMINI_KEY_2"
    assert EvalSettings(dataset="d", out="o", tag="t", provider="gemini", api_key_env="_KEY").api_key_env == "_KEY"
    for bad in ("my_key", "1KEY", "AIzaSyD-key", "KEY NAME", ""):
        with pytest.raises(ValueError):
            TeacherSettings(api_key_env=bad)


def test_seed_bounds_are_inclusive():
    import argparse

    from engine.commands import argtypes
    from engine.stages.train.settings import TrainSettings

    assert argtypes.seed("0") == 0 and argtypes.seed("4294967295") == 2**32 - 1
    for bad in ("-1", "4294967296", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            argtypes.seed(bad)
    assert TrainSettings(seed=2**32 - 1).seed == 2**32 - 1
    with pytest.raises(ValueError):
        TrainSettings(seed=2**32)


def test_train_bad_data_leaves_no_event_log(tmp_path, capsys):
    """The event log defaults to --out: a start refused for bad data must not create it."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = _write(tmp_path / "d.jsonl", _concepts())
    out = tmp_path / "out"
    code, _, err = run_cli(["train", "--data", str(data), "--base-model", str(model), "--out", str(out)], capsys)
    assert code == 2 and "not a training record" in err
    assert not out.exists()


def test_report_wrote_line_is_inert(tmp_path, capsys):
    results = _results(tmp_path)
    evil = tmp_path / "x\x1b]0;pwned\x07\x1b[31mred"
    evil.mkdir()
    out = evil / "r.md"
    code, _, err = run_cli(["report", str(results), "-o", str(out), "--no-plots"], capsys)
    assert code == 0 and out.is_file()
    assert "\x1b" not in err and "\x07" not in err
    assert "po-tui report: wrote " in err and "red/r.md" in err


def test_error_lines_are_inert_and_single(tmp_path, capsys):
    """A file name carrying escape sequences or a newline cannot paint the terminal or forge a
    second line of output."""
    name = tmp_path / "a\x1b[2J\nFAKE: ok.jsonl"
    code, _, err = run_cli(["score", str(name)], capsys)
    assert code == 2 and "\x1b" not in err and len(err.strip().splitlines()) == 1


def test_the_last_resort_turns_a_stray_os_error_into_one_line(tmp_path, capsys, monkeypatch):
    """Anything with a file name that still escapes a reader or writer is one line, not a traceback."""
    import engine.commands.score as score

    def boom(_args):
        raise IsADirectoryError(21, "Is a directory", str(tmp_path / "somewhere"))

    monkeypatch.setattr(score, "run", boom)  # register() binds the module's `run` on each parse
    code, _, err = run_cli(["score", "x"], capsys)
    assert code == 2 and err == f"po-tui score: error: {tmp_path / 'somewhere'}: Is a directory\n"
