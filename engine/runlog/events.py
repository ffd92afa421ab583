"""The run event protocol: envelope, type registry, redaction and the writer every stage uses.

Each job appends one JSON object per line to `<run_dir>/<job>.events.jsonl`. The file on disk is
the source of truth: the engine, a TUI attached over SSH and `po-tui status` all learn what a job
is doing only by reading it. See docs/events.md for the user-facing description.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import socket
import threading
import time
import traceback as _traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from engine.errors import InputError, StageFailed
from engine.store.jsonl import JsonlAppender, Warn
from engine.store.lock import lock_open_file

SCHEMA_VERSION = 1
EVENTS_SUFFIX = ".events.jsonl"
ENVELOPE_FIELDS = ("v", "ts", "seq", "job", "type", "data")
JOB_END_STATES = ("succeeded", "failed", "cancelled")
LOG_LEVELS = ("debug", "info", "warning", "error")
COUNTER_MODES = ("add", "set")
# A follower buffers a line until its newline arrives and a TUI renders payloads: a multi-megabyte
# event is a bug in the emitting stage (dump big things as an artifact and point at it).
MAX_EVENT_BYTES = 1 << 20
# What `error()` keeps of a subprocess's stderr / a traceback: the end is the useful part.
TAIL_CHARS = 4000
REDACTED = "***"

# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

EVENT_TYPES: dict[str, str] = {}
"""Every known event type -> one-line description. Stages add theirs with register_event_type."""

_REQUIRED: dict[str, tuple[str, ...]] = {}
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def register_event_type(name: str, description: str, *, required: Sequence[str] = ()) -> None:
    """Declare an event type so writers accept it (a typo'd type fails at the emitter, not later).

    `required` lists payload fields `emit` insists on. Registering the same name again with the
    same description and fields is a no-op (module reloads); anything else means two stages
    picked the same name, which is refused.
    """
    if not _TYPE_NAME.match(name):
        raise ValueError(f"event type {name!r}: use lower_snake_case, at most 64 characters")
    description = " ".join(description.split())
    if not description:
        raise ValueError(f"event type {name!r}: a description is required")
    known = EVENT_TYPES.get(name)
    if known is not None and (known, _REQUIRED.get(name, ())) != (description, tuple(required)):
        raise ValueError(f"event type {name!r} is already registered as: {known}")
    EVENT_TYPES[name] = description
    _REQUIRED[name] = tuple(required)


register_event_type(
    "job_started",
    "A job process began (or resumed): stage, argv, pid, host, config_hash, resumed.",
    required=("stage", "pid", "host", "resumed"),
)
register_event_type(
    "job_finished",
    "A job ended: state (succeeded|failed|cancelled), exit_code, duration_s, summary.",
    required=("state",),
)
register_event_type(
    "progress",
    "Work done so far: done, total, unit; optional rate_per_s, eta_s, label.",
    required=("done",),
)
register_event_type(
    "counter",
    "Named counters: counters {name: number}, mode add (increments) or set (absolutes).",
    required=("counters",),
)
register_event_type("metric", "One measured value: name, value, optional step.", required=("name", "value"))
register_event_type("log", "A log line: level (debug|info|warning|error), message.", required=("level", "message"))
register_event_type("warning", "Something the user should know, the job goes on: message, code.", required=("message",))
register_event_type(
    "error",
    "Something failed: message, code, optional stderr_tail and traceback.",
    required=("message",),
)
register_event_type(
    "artifact",
    "A file the job produced: path, kind, bytes, optional sha256.",
    required=("path", "kind"),
)
register_event_type("heartbeat", "The job is alive; no payload required.")


def is_known_type(name: str) -> bool:
    return name in EVENT_TYPES


# --------------------------------------------------------------------------------------------
# Envelope validation (for readers)
# --------------------------------------------------------------------------------------------


_TS_TYPES = (float, int)


def check_event(obj: Any) -> dict[str, Any]:
    """Return `obj` if it has the event envelope, else raise ValueError saying which field is off.

    Unknown types and newer `v` values are accepted: readers keep them as generic events so an
    old TUI can follow a newer stage.
    """
    # Fast path, taken by every event a JSON decoder produced from a well-formed line (exact
    # built-in types); anything else gets the full check below, which names the field.
    if (
        type(obj) is dict
        and type(obj.get("job")) is str
        and type(obj.get("type")) is str
        and type(obj.get("seq")) is int
        and type(obj.get("ts")) in _TS_TYPES
        and type(obj.get("v")) is int
        and type(obj.get("data")) is dict
    ):
        return obj
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    for key, kinds in (("job", str), ("type", str), ("seq", int), ("ts", (int, float)), ("v", int)):
        value = obj.get(key)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise _FieldError(key, f"missing or not a {_kind_name(kinds)}")
    if not isinstance(obj.get("data", {}), dict):
        raise _FieldError("data", "not a JSON object")
    obj.setdefault("data", {})
    return obj


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    if isinstance(kinds, tuple):
        return "number"
    return {str: "string", int: "integer"}.get(kinds, kinds.__name__)


def event_input_error(exc: ValueError, path: str | Path, line: int) -> InputError:
    """An InputError naming file:line (and the field when known) for a bad envelope."""
    field = getattr(exc, "field", None)
    message = getattr(exc, "message", str(exc))
    return InputError(f"not a run event: {message}", path=path, line=line, field=field)


# --------------------------------------------------------------------------------------------
# Redaction and payload cleaning
# --------------------------------------------------------------------------------------------

# Secret-ish key words, matched as whole words of the key (after camelCase -> snake_case), so
# `openai_api_key`, `accessToken` and `Authorization` are masked while counters such as
# `tokens_in` or `max_tokens` survive.
_SECRET_WORDS = r"api[_-]?key|apikey|token|secrets?|passwords?|passwd|authorization|credentials?"
_SECRET_KEY = re.compile(rf"(?:^|[^a-z0-9])(?:{_SECRET_WORDS})(?:$|[^a-z0-9])")
_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")
# Inside free text (argv, messages, stderr tails, tracebacks): `key=value` / `key: value` pairs
# whose key is secret-ish, bearer tokens, and the shapes of well-known provider keys.
_SECRET_TEXT = [
    re.compile(r"(?i)(\bbearer\s+)(?!\*\*\*)[A-Za-z0-9._~+/=-]+"),  # before key=value: it eats "Bearer"
    re.compile(
        rf"(?i)((?<![a-z0-9])(?:{_SECRET_WORDS})(?![a-z0-9])[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)[^\s\"',;&]+"
    ),
    re.compile(r"()\bAIza[0-9A-Za-z_-]{20,}"),  # Google API keys
    re.compile(r"()\bsk-[A-Za-z0-9_-]{16,}"),  # OpenAI / Anthropic style keys
    re.compile(r"()\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face tokens
    re.compile(r"()\bgh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
]
_MAX_DEPTH = 32


def is_secret_key(key: str) -> bool:
    """True when a payload key names a secret (api_key, token, password, ... as a whole word)."""
    snake = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", key)).lower()
    return bool(_SECRET_KEY.search(snake))


def scrub_text(text: str) -> str:
    """Mask secrets embedded in free text (e.g. `--api-key=sk-...` in argv, a bearer header)."""
    for pattern in _SECRET_TEXT:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact(obj: Any) -> Any:
    """A copy of `obj` with the values of secret-named keys masked, recursively.

    Lists are walked too; in a list of strings (an argv) the value after a secret flag such as
    `--api-key` is masked, and every string is passed through `scrub_text`.
    """
    return _redact(obj, 0)


def _redact(obj: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return obj
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            if isinstance(key, str) and is_secret_key(key) and value is not None:
                out[key] = REDACTED
            else:
                out[key] = _redact(value, depth + 1)
        return out
    if isinstance(obj, (list, tuple)):
        items = [_redact(item, depth + 1) for item in obj]
        for i in range(len(items) - 1):
            flag = obj[i]
            if isinstance(flag, str) and flag.startswith("-") and "=" not in flag:
                if is_secret_key(flag.lstrip("-")) and isinstance(items[i + 1], str):
                    items[i + 1] = REDACTED
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj


def clean_payload(data: Mapping[str, Any]) -> dict[str, Any]:
    """Redact `data` and check it is plain JSON; raise ValueError (naming the field) if not.

    Tuples become lists; non-finite floats become the strings "NaN", "Infinity", "-Infinity" so
    every line stays strict JSON for jq (a NaN loss is news worth keeping, not a reason to crash).
    """
    cleaned: dict[str, Any] = _plain(redact(dict(data)), "data", 0)
    return cleaned


def _plain(obj: Any, where: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: nested more than {_MAX_DEPTH} levels (a cycle?)")
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is a {type(key).__name__}, keys must be strings")
            out[key] = _plain(value, f"{where}.{key}", depth + 1)
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(obj)]
    raise ValueError(f"{where}: a {type(obj).__name__} is not JSON-serialisable")


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------

_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_job_name(job: str) -> str:
    if not isinstance(job, str) or not _JOB_NAME.match(job) or job.endswith(".") or ".." in job:
        raise ValueError(f"job name {job!r}: use letters, digits, '_', '-', '.' (it names a file)")
    return job


def events_path(run_dir: str | Path, job: str) -> Path:
    """Where job `job` of a run logs its events: `<run_dir>/<job>.events.jsonl`."""
    return Path(run_dir) / f"{check_job_name(job)}{EVENTS_SUFFIX}"


def job_of_path(path: str | Path) -> str:
    """The job name an events file belongs to (its name minus `.events.jsonl`)."""
    name = Path(path).name
    return name[: -len(EVENTS_SUFFIX)] if name.endswith(EVENTS_SUFFIX) else name


def list_event_files(run_dir: str | Path) -> list[Path]:
    """The event files of a run, sorted by name; [] when the directory does not exist yet."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.glob(f"*{EVENTS_SUFFIX}") if p.is_file())


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


def _reverse_lines(path: Path, block: int = 65536) -> Iterator[bytes]:
    """The lines of a file, last first, reading backwards (resuming a long log costs one block)."""
    with open(path, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            rest = fh.read(step) + rest
            lines = rest.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                yield line
        yield rest


def last_seq(path: str | Path) -> int | None:
    """The `seq` of the last readable event in `path`, or None if there is none."""
    try:
        for raw in _reverse_lines(Path(path)):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (UnicodeDecodeError, ValueError):
                continue
            seq = obj.get("seq") if isinstance(obj, dict) else None
            if isinstance(seq, int) and not isinstance(seq, bool):
                return seq
    except FileNotFoundError:
        return None
    return None


def log_holder(path: str | Path) -> str | None:
    """Who writes an event log: 'po-tui STAGE, pid N on host H' from its last job_started, if any."""
    try:
        for raw in _reverse_lines(Path(path)):
            try:
                obj = json.loads(raw) if raw.strip() else None
            except (UnicodeDecodeError, ValueError):
                continue
            if isinstance(obj, dict) and obj.get("type") == "job_started" and isinstance(obj.get("data"), dict):
                data = obj["data"]
                return f"po-tui {data.get('stage') or obj.get('job')}, pid {data.get('pid')} on host {data.get('host')}"
    except OSError:
        return None
    return None


class EventWriter:
    """Appends events for one job, durably (flush + fsync per event) and thread-safely.

    Reopening an existing file continues its `seq`, so a resumed job appends to the same log.
    Payloads are redacted and checked before anything is written: a bad payload raises
    ValueError and leaves the file untouched. A second writer on the same file (another process
    still running the job) is refused with a one-line InputError naming the holder's pid and host.
    """

    def __init__(
        self,
        path: str | Path,
        job: str,
        *,
        clock: Callable[[], float] = time.time,
        fsync: bool = True,
        warn: Warn | None = None,
    ) -> None:
        self.path = Path(path)
        self.job = check_job_name(job)
        self._clock = clock
        self._fsync = fsync
        self._warn = warn
        self._lock = threading.Lock()
        self._started_at: float | None = None
        # What `running()` reports in job_finished.summary: a stage fills it in as it goes.
        self.summary: dict[str, Any] = {}
        # The exit code a job that ran to completion ends with (the gate: 1 when the verdict fails).
        self.exit_code = 0
        self._lockfile = self._take_file_lock()
        try:
            self._appender: JsonlAppender | None = JsonlAppender(self.path, fsync=fsync, warn=warn)
        except BaseException:
            self._release_file_lock()
            raise
        previous = last_seq(self.path)
        self._next_seq = 0 if previous is None else previous + 1

    # -- file lock ---------------------------------------------------------------------------

    def _take_file_lock(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "ab")
        try:
            lock_open_file(
                fh.fileno(), self.path, holder=lambda: log_holder(self.path),
                advice="one process writes an event log at a time; wait for it to end, or give another --run-dir or --job",
            )
        except BaseException:
            fh.close()
            raise
        return fh

    def _release_file_lock(self) -> None:
        if self._lockfile is not None and not self._lockfile.closed:
            self._lockfile.close()  # closing drops the flock

    # -- core --------------------------------------------------------------------------------

    def emit(self, event_type: str, /, **data: Any) -> dict[str, Any]:
        """Append one event of `event_type` with payload `data`; return the event as written."""
        return self._emit(event_type, data, None)

    def _emit(self, event_type: str, data: dict[str, Any], ts: float | None) -> dict[str, Any]:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}: call register_event_type() first")
        missing = [f for f in _REQUIRED.get(event_type, ()) if f not in data]
        if missing:
            raise ValueError(f"{event_type} event: missing payload field(s) {', '.join(missing)}")
        payload = clean_payload(data)
        with self._lock:
            if self._lockfile is None or self._lockfile.closed:
                raise ValueError(f"{self.path}: event writer is closed")
            event = {
                "v": SCHEMA_VERSION,
                "ts": round(float(self._clock() if ts is None else ts), 6),
                "seq": self._next_seq,
                "job": self.job,
                "type": event_type,
                "data": payload,
            }
            size = len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            if size > MAX_EVENT_BYTES:
                raise ValueError(
                    f"{event_type} event is {size} bytes (limit {MAX_EVENT_BYTES}): write the bulk to an "
                    "artifact file and log its path"
                )
            if self._appender is None:
                # The last write failed part-way; reopening cuts the torn fragment off first.
                self._appender = JsonlAppender(self.path, fsync=self._fsync, warn=self._warn)
            try:
                self._appender.write(event)
            except OSError:
                self._appender.close()
                self._appender = None
                raise
            self._next_seq += 1
        return event

    def close(self) -> None:
        with self._lock:
            if self._appender is not None:
                self._appender.close()
                self._appender = None
            self._release_file_lock()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- convenience -------------------------------------------------------------------------

    def started(
        self,
        stage: str,
        *,
        argv: Sequence[str] | None = None,
        config_hash: str | None = None,
        resumed: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """job_started, with this process's pid and host filled in (liveness checks need them)."""
        event = self.emit(
            "job_started",
            stage=stage,
            argv=list(argv) if argv is not None else None,
            pid=os.getpid(),
            host=socket.gethostname(),
            config_hash=config_hash,
            resumed=bool(resumed),
            **extra,
        )
        self._started_at = event["ts"]
        return event

    def finished(
        self,
        state: str,
        *,
        exit_code: int | None = None,
        duration_s: float | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """job_finished; duration_s defaults to the time since this writer's started()."""
        if state not in JOB_END_STATES:
            raise ValueError(f"job state {state!r}: expected one of {', '.join(JOB_END_STATES)}")
        if exit_code is None:
            exit_code = {"succeeded": 0, "failed": 1, "cancelled": 130}[state]
        ts = float(self._clock())
        if duration_s is None and self._started_at is not None:
            duration_s = round(max(0.0, ts - self._started_at), 6)
        data = {"state": state, "exit_code": exit_code, "duration_s": duration_s, "summary": dict(summary or {})}
        return self._emit("job_finished", data, ts)

    def progress(
        self,
        done: int | float,
        total: int | float | None = None,
        *,
        unit: str = "items",
        rate_per_s: float | None = None,
        eta_s: float | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"done": done, "total": total, "unit": unit}
        for key, value in (("rate_per_s", rate_per_s), ("eta_s", eta_s), ("label", label)):
            if value is not None:
                data[key] = value
        return self.emit("progress", **data)

    def counter(self, counters: Mapping[str, int | float] | None = None, *, mode: str = "add", **named: int | float) -> dict[str, Any]:
        """Bump (mode="add") or set (mode="set") named counters: counter(kept=3, dropped=1)."""
        if mode not in COUNTER_MODES:
            raise ValueError(f"counter mode {mode!r}: expected add or set")
        values = {**(counters or {}), **named}
        for name, value in values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"counter {name!r}: {value!r} is not a number")
        return self.emit("counter", counters=values, mode=mode)

    def metric(self, name: str, value: float, step: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"name": name, "value": value}
        if step is not None:
            data["step"] = step
        return self.emit("metric", **data)

    def log(self, message: str, level: str = "info") -> dict[str, Any]:
        if level not in LOG_LEVELS:
            raise ValueError(f"log level {level!r}: expected one of {', '.join(LOG_LEVELS)}")
        return self.emit("log", level=level, message=message)

    def warning(self, message: str, code: str | None = None) -> dict[str, Any]:
        return self.emit("warning", message=message, code=code)

    def error(
        self,
        message: str,
        code: str | None = None,
        *,
        stderr_tail: str | None = None,
        traceback: str | None = None,
    ) -> dict[str, Any]:
        """error; stderr_tail and traceback keep their last TAIL_CHARS characters."""
        data: dict[str, Any] = {"message": message, "code": code}
        if stderr_tail is not None:
            data["stderr_tail"] = stderr_tail[-TAIL_CHARS:]
        if traceback is not None:
            data["traceback"] = traceback[-TAIL_CHARS:]
        return self.emit("error", **data)

    def artifact(
        self,
        path: str | os.PathLike[str],
        kind: str,
        *,
        size: int | None = None,
        sha256: str | None = None,
    ) -> dict[str, Any]:
        """artifact; its `bytes` field is `size`, which defaults to the file's size when it exists."""
        if size is None:
            try:
                size = os.stat(path).st_size
            except OSError:
                size = None
        data: dict[str, Any] = {"path": os.fspath(path), "kind": kind, "bytes": size}
        if sha256 is not None:
            data["sha256"] = sha256
        return self.emit("artifact", **data)

    def heartbeat(self, **data: Any) -> dict[str, Any]:
        return self.emit("heartbeat", **data)

    @contextlib.contextmanager
    def running(self, stage: str, **started: Any) -> Iterator["EventWriter"]:
        """started() now; finished() on exit: succeeded, cancelled (Ctrl-C / cancel) or failed.

        A failure also logs an error event with the traceback before re-raising.
        """
        self.started(stage, **started)
        try:
            yield self
        except (KeyboardInterrupt, asyncio.CancelledError):
            self.finished("cancelled")
            raise
        except InputError as exc:
            # Bad input is the user's to fix: one line, exit 2, no traceback (as on the terminal).
            self.error(str(exc), code="input_error")
            self.finished("failed", exit_code=2)
            raise
        except StageFailed as exc:
            self.error(str(exc), code="stage_failed")
            self.finished("failed", exit_code=1)
            raise
        except BaseException as exc:
            code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
            if code == 0:
                self.finished("succeeded")
                raise
            self.error(f"{type(exc).__name__}: {exc}", code=type(exc).__name__, traceback=_traceback.format_exc())
            self.finished("failed", exit_code=code)
            raise
        else:
            self.finished("succeeded", exit_code=self.exit_code, summary=self.summary)

