"""The run event log: how every pipeline stage reports, and how everyone else follows along.

A job appends events to `<run_dir>/<job>.events.jsonl` with `EventWriter`; the engine, the TUI and
`po-tui status` read them with `EventTail` / `follow` (live) or `read_events` (batch) and fold
them with `RunState`. The protocol is described in docs/events.md.
"""

from engine.runlog.events import (
    COUNTER_MODES,
    EVENT_TYPES,
    EVENTS_SUFFIX,
    JOB_END_STATES,
    LOG_LEVELS,
    MAX_EVENT_BYTES,
    REDACTED,
    SCHEMA_VERSION,
    EventWriter,
    check_event,
    clean_payload,
    events_path,
    is_known_type,
    is_secret_key,
    job_of_path,
    last_seq,
    list_event_files,
    redact,
    register_event_type,
    scrub_text,
)
from engine.runlog.state import (
    JOB_STATES,
    STALE_AFTER_S,
    JobState,
    RunState,
    pid_alive,
    register_reducer,
)
from engine.runlog.tail import EventTail, follow, iter_events, read_events

__all__ = [
    "COUNTER_MODES",
    "EVENT_TYPES",
    "EVENTS_SUFFIX",
    "JOB_END_STATES",
    "JOB_STATES",
    "LOG_LEVELS",
    "MAX_EVENT_BYTES",
    "REDACTED",
    "SCHEMA_VERSION",
    "STALE_AFTER_S",
    "EventTail",
    "EventWriter",
    "JobState",
    "RunState",
    "check_event",
    "clean_payload",
    "events_path",
    "follow",
    "is_known_type",
    "is_secret_key",
    "iter_events",
    "job_of_path",
    "last_seq",
    "list_event_files",
    "pid_alive",
    "read_events",
    "redact",
    "register_event_type",
    "register_reducer",
    "scrub_text",
]
