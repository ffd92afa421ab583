"""A fake Gemini Batch API on 127.0.0.1, spoken to by the REAL google-genai client.

It answers the REST shapes the SDK's `batches` module uses on the Gemini API (v1beta):
- `POST /v1beta/models/{model}:batchGenerateContent` with `{"batch": {"displayName", "inputConfig":
  {"requests": {"requests": [{"request": {...}, "metadata": {...}}]}}}}` -> an operation
  `{"name": "batches/N", "metadata": {"state": "BATCH_STATE_PENDING", ...}}`;
- `GET /v1beta/batches/N` -> the operation with its state, `batchStats`, and once it succeeded
  `metadata.output.inlinedResponses.inlinedResponses` (each `{"response"|"error", "metadata"}`);
- `POST /v1beta/batches/N:cancel` -> `{}`, the job then reads CANCELLED;
- `GET /v1beta/batches` -> `{"operations": [...]}` (one page, newest first, without outputs).
Each created job follows the next `BatchPlan` of `.plans` (then `.default_plan`): it stays
RUNNING for `polls` GETs, then reaches `final`; `errors` maps request positions to a
google.rpc.Status code and message (a partial success). Interactive `:generateContent` calls are
still served as by FakeGemini.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.fakes.llm_servers import Error, FakeGemini, Ok, _gemini_model, _Handler


@dataclass(frozen=True)
class BatchPlan:
    polls: int = 1  # GETs answered RUNNING before the final state
    final: str = "SUCCEEDED"  # SUCCEEDED | FAILED | EXPIRED | CANCELLED (BATCH_STATE_ prefix added)
    errors: dict[int, tuple[int, str]] = field(default_factory=dict)  # position -> (grpc code, message)


@dataclass
class FakeJob:
    name: str
    model: str
    display_name: str
    keys: list[str]
    requests: list[dict[str, Any]]
    plan: BatchPlan
    polls: int = 0
    cancelled: bool = False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class FakeGeminiBatch(FakeGemini):
    """FakeGemini plus batch jobs; `.jobs`, `.cancels` and `created_keys()` for assertions."""

    def __init__(self, *args: Any, plans: list[BatchPlan] = (), default_plan: BatchPlan | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.plans: deque[BatchPlan] = deque(plans)
        self.default_plan = default_plan or BatchPlan()
        self.jobs: dict[str, FakeJob] = {}
        self.cancels: list[str] = []
        self._ids = itertools.count(1)
        self._jobs_lock = threading.Lock()
        self.job_created = threading.Event()
        self.drop_create_replies = 0  # this many creates make the job, then drop the connection (a lost reply)
        self.create_errors: deque[Error] = deque()  # the next creates answer these errors (no job made)
        self.get_errors: deque[Error] = deque()  # the next polls of a job answer these errors

    def created_keys(self) -> list[str]:
        """Every request key of every create, in order (a key twice: paid twice)."""
        with self._jobs_lock:
            return [k for job in self.jobs.values() for k in job.keys]

    # ---- routing

    def _handle(self, handler: _Handler) -> None:
        path = handler.path.split("?")[0]
        if path.endswith(":batchGenerateContent"):
            return self._create(handler, path)
        if "/batches/" in path and path.endswith(":cancel"):
            return self._cancel(handler, path)
        return super()._handle(handler)

    def _handle_get(self, handler: _Handler) -> None:
        path = handler.path.split("?")[0]
        with self._lock:
            self.gets.append(handler.path)
        if path.endswith("/batches"):  # list: every job, newest first, one page
            with self._jobs_lock:
                jobs = list(self.jobs.values())[::-1]
            return self._send_json(handler, 200, {"operations": [self._operation(j, listing=True) for j in jobs]})
        name = "batches/" + path.rsplit("/batches/", 1)[-1] if "/batches/" in path else None
        with self._jobs_lock:
            refused = self.get_errors.popleft() if self.get_errors and name in self.jobs else None
        if refused is not None:
            return self._perform(handler, refused, path, {k.lower(): v for k, v in handler.headers.items()}, None)
        with self._jobs_lock:
            job = self.jobs.get(name) if name else None
            if job is not None:
                job.polls += 1
        if job is None:
            return self._send_json(handler, 404, {"error": {"code": 404, "message": "no such batch", "status": "NOT_FOUND"}})
        self._send_json(handler, 200, self._operation(job))

    def _body(self, handler: _Handler) -> Any:
        from tests.fakes.llm_servers import _parse_json

        return _parse_json(handler.rfile.read(int(handler.headers.get("Content-Length") or 0)))

    def _create(self, handler: _Handler, path: str) -> None:
        body = self._body(handler) or {}
        with self._jobs_lock:
            refused = self.create_errors.popleft() if self.create_errors else None
        if refused is not None:
            return self._perform(handler, refused, path, {k.lower(): v for k, v in handler.headers.items()}, body)
        batch = body.get("batch") or {}
        items = (((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")) or []
        with self._jobs_lock:
            name = f"batches/fake{next(self._ids)}"
            plan = self.plans.popleft() if self.plans else self.default_plan
            job = FakeJob(
                name, _gemini_model(path.replace(":batchGenerateContent", ":generateContent")), batch.get("displayName", ""),
                [str((i.get("metadata") or {}).get("po_tui_key")) for i in items], [i.get("request") or {} for i in items], plan,
            )
            self.jobs[name] = job
            drop = self.drop_create_replies > 0
            self.drop_create_replies -= drop
        self.job_created.set()
        if drop:
            return self._drop(handler)
        self._send_json(handler, 200, self._operation(job, first=True))

    def _cancel(self, handler: _Handler, path: str) -> None:
        self._body(handler)
        name = "batches/" + path.rsplit("/batches/", 1)[-1].removesuffix(":cancel")
        with self._jobs_lock:
            self.cancels.append(name)
            job = self.jobs.get(name)
            if job is not None:
                job.cancelled = True
        self._send_json(handler, 200, {})

    # ---- shapes

    def _state(self, job: FakeJob, first: bool) -> str:
        if job.cancelled:
            return "CANCELLED"
        if first:
            return "PENDING"
        return "RUNNING" if job.polls <= job.plan.polls else job.plan.final

    def _operation(self, job: FakeJob, first: bool = False, listing: bool = False) -> dict[str, Any]:
        state = "RUNNING" if listing and job.polls == 0 and not job.cancelled else self._state(job, first)
        n = len(job.keys)
        done = state in ("SUCCEEDED", "FAILED", "EXPIRED", "CANCELLED")
        failed = len(job.plan.errors) if state == "SUCCEEDED" else 0
        stats = {"requestCount": str(n), "pendingRequestCount": str(0 if done else n)}
        if state == "SUCCEEDED":
            stats.update(successfulRequestCount=str(n - failed), failedRequestCount=str(failed))
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "state": f"BATCH_STATE_{state}",
            "createTime": _now(),
            "updateTime": _now(),
            "batchStats": stats,
        }
        if state == "SUCCEEDED" and not listing:
            meta["output"] = {"inlinedResponses": {"inlinedResponses": [self._answer(job, i) for i in range(n)]}}
        out: dict[str, Any] = {"name": job.name, "metadata": meta}
        if done:
            out["done"] = True
        return out

    def _answer(self, job: FakeJob, index: int) -> dict[str, Any]:
        metadata = {"po_tui_key": job.keys[index]}
        if index in job.plan.errors:
            code, message = job.plan.errors[index]
            return {"error": {"code": code, "message": message}, "metadata": metadata}
        request = job.requests[index]
        behaviour = self.default if isinstance(self.default, Ok) else Ok()
        text = self.responder(request) if behaviour.text is None else behaviour.text
        return {"response": self._ok_body(behaviour, text, f"/v1beta/models/{job.model}:generateContent", request), "metadata": metadata}
