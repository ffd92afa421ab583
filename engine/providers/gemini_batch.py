"""The Gemini Batch API (inline requests) on top of a GeminiProvider's SDK client.

Why a separate module: a batch job is not one call but create / get / cancel of a remote job,
and its answers come back together, each tagged with the request's metadata. This wrapper only
speaks the SDK (`client.aio.batches`); queueing, persistence, budget and retries belong to the
teacher's batch caller (engine/stages/teacher/batch.py). Requests are built and answers mapped by
the same code as interactive calls (`GeminiProvider._request` / `_completion`), so a batch answer
is the same `Completion` (text, finish reason, tokens, thinking tokens); every failure is a
scrubbed `ProviderError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Sequence

from google.genai import types

from engine.providers.base import BAD_RESPONSE, INVALID_REQUEST, Completion, Message, ProviderError, kind_for_status, scrubbed
from engine.providers.gemini import GeminiProvider

# Google's limit on a job's inline requests; jobs are cut under it with a margin for the envelope.
INLINE_LIMIT_BYTES = 20_000_000
INLINE_BUDGET_BYTES = int(INLINE_LIMIT_BYTES * 0.9)
METADATA_KEY = "po_tui_key"  # the InlinedRequest metadata entry that carries the request's key

# Job states, as the SDK names them (it maps the API's BATCH_STATE_* to these).
SUCCEEDED = "JOB_STATE_SUCCEEDED"
PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"
FAILED = "JOB_STATE_FAILED"
CANCELLED = "JOB_STATE_CANCELLED"
EXPIRED = "JOB_STATE_EXPIRED"
WITH_RESULTS = frozenset({SUCCEEDED, PARTIALLY_SUCCEEDED})
WITHOUT_RESULTS = frozenset({FAILED, CANCELLED, EXPIRED})
ENDED = WITH_RESULTS | WITHOUT_RESULTS

# A per-request error is a google.rpc.Status: its code is a gRPC code, mapped to the HTTP status
# the interactive API would have answered, so both paths classify errors the same way.
_GRPC_TO_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501,
                 13: 500, 14: 503, 15: 500, 16: 401}


@dataclass
class BatchRequest:
    """One inline request: its key (the caller's string), the SDK object, its size and hash."""

    key: str
    inlined: types.InlinedRequest
    size: int
    digest: str


@dataclass
class JobStatus:
    """A job as one poll saw it; `results` (key -> Completion | ProviderError) once it has them."""

    name: str
    state: str
    results: dict[str, Completion | ProviderError] = field(default_factory=dict)
    error: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED


class GeminiBatch:
    """create / get / cancel of Gemini API batch jobs through the provider's SDK client."""

    def __init__(self, provider: GeminiProvider) -> None:
        if provider.name != "gemini":
            raise ValueError("batch jobs with inline requests exist only on the Gemini API")
        self.provider = provider
        self.model = provider.model

    def request(
        self,
        key: str,
        system: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_output_tokens: int | None,
        seed: int | None,
    ) -> BatchRequest:
        """The inline request for one conversation, tagged with `key` (ProviderError if invalid)."""
        contents, config = self.provider._request(system, messages, temperature, max_output_tokens, seed)
        inlined = types.InlinedRequest(contents=contents, config=config, metadata={METADATA_KEY: key})
        body = json.dumps(
            {"contents": [c.model_dump(mode="json", exclude_none=True) for c in contents],
             "config": config.model_dump(mode="json", exclude_none=True)},
            sort_keys=True,
        ).encode("utf-8")
        return BatchRequest(key, inlined, len(body) + len(key) + 64, hashlib.sha256(body).hexdigest()[:16])

    async def create(self, requests: Sequence[BatchRequest], display_name: str) -> JobStatus:
        """Submit one job; its name and first state."""
        try:
            job = await self.provider._client.aio.batches.create(
                model=self.model,
                src=types.BatchJobSource(inlined_requests=[r.inlined for r in requests]),
                config=types.CreateBatchJobConfig(display_name=display_name),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a ProviderError
            raise self.provider._error(exc) from None
        if not job.name:
            raise ProviderError(BAD_RESPONSE, "the batch create answer names no job")
        return JobStatus(job.name, _state(job))

    async def get(self, name: str, keys: Sequence[str] = ()) -> JobStatus:
        """The job's state and, once it ended with results, each request's answer or error.

        Answers are matched by their metadata key; when the API returns none, by position
        against `keys` (the order the requests were submitted in)."""
        try:
            job = await self.provider._client.aio.batches.get(name=name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.provider._error(exc) from None
        status = JobStatus(name, _state(job))
        if job.error is not None:
            status.error = scrubbed(": ".join(str(p) for p in (job.error.code, job.error.message) if p), self.provider._secrets)
        if status.state in WITH_RESULTS:
            inlined = (job.dest.inlined_responses if job.dest else None) or []
            for index, item in enumerate(inlined):
                key = (item.metadata or {}).get(METADATA_KEY) or (keys[index] if index < len(keys) else None)
                if key is not None:
                    status.results[key] = self._result(item)
        return status

    async def find(self, display_name: str, *, max_jobs: int = 5000) -> JobStatus | None:
        """The job created under `display_name`, if the provider has one (a create whose answer was
        lost, or a process killed before it recorded the name); None when it has none."""
        try:
            pager = await self.provider._client.aio.batches.list(config=types.ListBatchJobsConfig(page_size=100))
            seen = 0
            async for job in pager:
                if job.display_name == display_name and job.name:
                    return JobStatus(job.name, _state(job))
                seen += 1
                if seen >= max_jobs:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.provider._error(exc) from None
        return None

    async def cancel(self, name: str) -> None:
        try:
            await self.provider._client.aio.batches.cancel(name=name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.provider._error(exc) from None

    def _result(self, item: types.InlinedResponse) -> Completion | ProviderError:
        if item.error is not None:
            code = item.error.code if isinstance(item.error.code, int) else None
            status = _GRPC_TO_HTTP.get(code, 500) if code is not None and code < 100 else code
            message = scrubbed(item.error.message or "request failed in the batch job", self.provider._secrets)
            kind = kind_for_status(status) if status is not None else INVALID_REQUEST
            return ProviderError(kind, message, status=status)
        if item.response is None:
            return ProviderError(BAD_RESPONSE, "the batch job returned neither an answer nor an error for this request")
        try:
            return self.provider._completion(item.response, 0.0)
        except Exception as exc:  # noqa: BLE001 - an answer we cannot read
            return ProviderError(BAD_RESPONSE, self.provider._describe("unreadable batch answer", exc))


def _state(job: types.BatchJob) -> str:
    state = job.state
    return str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")
