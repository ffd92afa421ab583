"""Fake Gemini and OpenAI-compatible HTTP servers on 127.0.0.1.

The provider tests and the throughput benchmark run the REAL clients (google-genai, httpx)
against these, so request building, error parsing and timeouts are exercised end to end without
a network or a key. Stdlib only: a `ThreadingHTTPServer` speaking HTTP/1.1 keep-alive, one
daemon thread per connection, so 64 concurrent slow requests are served in parallel.

Each server replays `.script` (a deque of behaviours, consumed one per request) and then falls
back to `.default`. `latency_s` delays every request (for the benchmark). Every request is
recorded in `.requests` as `RecordedRequest(path, headers, body)`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, NamedTuple, Self, Union

CANNED_PO_ANSWER = """status: aligned
summary:
  - The requirements support the product vision.
  - Security and availability needs are covered.
requirements_alignment:
  aligned:
    - FR001 supports fast dispatch of urgent jobs.
  misaligned: []
recommendations:
  - Confirm the arrival-window notification channel with customers.
"""

Responder = Callable[[Any], str]


# --------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Ok:
    """A 200 answer. text None: ask the server's responder (sees the request body)."""

    text: str | None = None
    finish: str = "STOP"  # Gemini spelling; FakeOpenAI translates STOP/MAX_TOKENS/SAFETY
    prompt_tokens: int = 120
    output_tokens: int = 80
    thoughts_tokens: int = 0
    thought: str | None = None  # a thought part (Gemini) that clients must not return as text


@dataclass(frozen=True)
class Error:
    """An HTTP error with the API's JSON error body."""

    status: int
    api_status: str | None = None  # e.g. RESOURCE_EXHAUSTED; None: the usual one for `status`
    retry_after: str | None = None  # Retry-After header: seconds or an HTTP date
    message: str | None = None
    reason: str | None = None  # Gemini ErrorInfo reason, e.g. API_KEY_INVALID
    retry_delay: str | None = None  # Gemini RetryInfo.retryDelay, e.g. "13s"
    echo_key: bool = False  # put the received key in the message (tests that clients scrub it)


@dataclass(frozen=True)
class Slow:
    """Wait `seconds` (interruptible by shutdown), then behave as `then`."""

    seconds: float
    then: "Behaviour" = field(default_factory=Ok)


@dataclass(frozen=True)
class EmptyCandidates:
    """A 200 with no candidates/choices (Gemini: a blocked prompt)."""

    block_reason: str | None = None


@dataclass(frozen=True)
class MalformedJson:
    """A 200 whose JSON body is cut off."""


@dataclass(frozen=True)
class DropConnection:
    """Read the request, then close the socket without any response."""


Behaviour = Union[Ok, Error, Slow, EmptyCandidates, MalformedJson, DropConnection]


def ok(
    text: str | None = None,
    finish: str = "STOP",
    prompt_tokens: int = 120,
    output_tokens: int = 80,
    thoughts_tokens: int = 0,
    thought: str | None = None,
) -> Ok:
    return Ok(text, finish, prompt_tokens, output_tokens, thoughts_tokens, thought)


def error(
    status: int,
    api_status: str | None = None,
    retry_after: str | None = None,
    *,
    message: str | None = None,
    reason: str | None = None,
    retry_delay: str | None = None,
    echo_key: bool = False,
) -> Error:
    return Error(status, api_status, retry_after, message, reason, retry_delay, echo_key)


def slow(seconds: float, then: Behaviour | None = None) -> Slow:
    return Slow(seconds, then if then is not None else Ok())


def empty_candidates(block_reason: str | None = None) -> EmptyCandidates:
    return EmptyCandidates(block_reason)


def safety() -> Ok:
    return Ok(text="", finish="SAFETY", output_tokens=0)


def max_tokens(text: str) -> Ok:
    return Ok(text=text, finish="MAX_TOKENS")


def malformed_json() -> MalformedJson:
    return MalformedJson()


def drop_connection() -> DropConnection:
    return DropConnection()


_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_OPENAI_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_OPENAI_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


class RecordedRequest(NamedTuple):
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body was not JSON


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per request), which is the fake's cost, not the stage's.
    disable_nagle_algorithm = True
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._untrack(self.connection)

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self.server.fake._handle(self)

    def do_GET(self) -> None:  # noqa: N802
        self.server.fake._handle_get(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence per-request logging on stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # 64+ clients connect at once; the default backlog of 5 drops SYNs
    fake: "_FakeLLMServer"


class _FakeLLMServer:
    """Shared server machinery; subclasses only say how their API's JSON looks."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        default: Behaviour | None = None,
        latency_s: float = 0.0,
        script: Iterable[Behaviour] = (),
    ) -> None:
        self.responder: Responder = responder or (lambda body: CANNED_PO_ANSWER)
        self.default: Behaviour = default if default is not None else Ok()
        self.latency_s = latency_s
        self.script: deque[Behaviour] = deque(script)
        self.requests: list[RecordedRequest] = []
        self.gets: list[str] = []  # paths of GET requests (model lists)
        self._lock = threading.Lock()
        self._count = 0
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> Self:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        # shutdown() waits for the accept loop to poll its flag: 10 ms keeps teardown quick.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True,
            name=f"{type(self).__name__}-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake slow handlers, close live connections, stop the accept loop; well under 1 s."""
        if self._server is None:
            return
        self._stop.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- inspection

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._count

    def push(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order."""
        with self._lock:
            self.script.extend(behaviours)

    # ---- request handling (handler threads)

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _handle(self, handler: _Handler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        body = _parse_json(raw)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        path = handler.path
        with self._lock:
            self._count += 1
            self.requests.append(RecordedRequest(path, headers, body))
            known = self._accepts(path)
            behaviour = self._next() if known else Error(404, message=f"no such endpoint: {path}")
        if self.latency_s and not self._sleep(self.latency_s):
            return self._drop(handler)
        self._perform(handler, behaviour, path, headers, body)

    def _handle_get(self, handler: _Handler) -> None:
        with self._lock:
            self.gets.append(handler.path)
        listing = self._listing(handler.path)
        if listing is None:
            return self._send_json(handler, 404, {"error": {"code": 404, "message": "POST only"}})
        self._send_json(handler, 200, listing)

    def _listing(self, path: str) -> Any:
        """The body of a GET (a model list), or None: 404."""
        return None

    def _next(self) -> Behaviour:
        return self.script.popleft() if self.script else self.default

    def _sleep(self, seconds: float) -> bool:
        """Wait, returning False as soon as the server is stopping."""
        return not self._stop.wait(seconds)

    def _perform(
        self, handler: _Handler, b: Behaviour, path: str, headers: dict[str, str], body: Any
    ) -> None:
        if isinstance(b, Slow):
            if not self._sleep(b.seconds):
                return self._drop(handler)
            return self._perform(handler, b.then, path, headers, body)
        if isinstance(b, DropConnection):
            return self._drop(handler)
        if isinstance(b, MalformedJson):
            return self._send(handler, 200, b'{"candidates": [{"content": {"parts": [{"te', {})
        if isinstance(b, Error):
            extra = {"Retry-After": b.retry_after} if b.retry_after else {}
            return self._send_json(handler, b.status, self._error_body(b, self._api_key(headers)), extra)
        if isinstance(b, EmptyCandidates):
            return self._send_json(handler, 200, self._empty_body(b, body))
        text = self.responder(body) if b.text is None else b.text
        self._send_json(handler, 200, self._ok_body(b, text, path, body))

    def _drop(self, handler: _Handler) -> None:
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_json(
        self, handler: _Handler, status: int, payload: Any, extra: dict[str, str] | None = None
    ) -> None:
        self._send(handler, status, json.dumps(payload).encode("utf-8"), extra or {})

    def _send(self, handler: _Handler, status: int, data: bytes, extra: dict[str, str]) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=UTF-8")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed its end
            handler.close_connection = True

    # ---- per-API shapes

    def _accepts(self, path: str) -> bool:
        raise NotImplementedError

    def _api_key(self, headers: dict[str, str]) -> str:
        raise NotImplementedError

    def _ok_body(self, b: Ok, text: str, path: str, body: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _empty_body(self, b: EmptyCandidates, body: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _error_body(self, b: Error, api_key: str) -> dict[str, Any]:
        raise NotImplementedError


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _error_message(b: Error, api_key: str) -> str:
    message = b.message or f"fake error {b.status}"
    return f"{message} (key {api_key})" if b.echo_key else message


class FakeGemini(_FakeLLMServer):
    """Speaks `POST /{version}/models/{model}:generateContent` like the Gemini API (and the
    Vertex path `/v1beta1/projects/P/locations/L/publishers/google/models/M:generateContent`)."""

    def _accepts(self, path: str) -> bool:
        return path.split("?")[0].endswith(":generateContent")

    def _api_key(self, headers: dict[str, str]) -> str:
        return headers.get("x-goog-api-key", "")

    def _ok_body(self, b: Ok, text: str, path: str, body: Any) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if b.thought:
            parts.append({"text": b.thought, "thought": True})
        if text:
            parts.append({"text": text})
        candidate: dict[str, Any] = {"index": 0, "finishReason": b.finish}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        if b.finish == "SAFETY":
            candidate["safetyRatings"] = [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
            ]
        usage = {
            "promptTokenCount": b.prompt_tokens,
            "candidatesTokenCount": b.output_tokens,
            "totalTokenCount": b.prompt_tokens + b.output_tokens + b.thoughts_tokens,
        }
        if b.thoughts_tokens:
            usage["thoughtsTokenCount"] = b.thoughts_tokens
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": _gemini_model(path),
            "responseId": f"fake-{self.request_count}",
        }

    def _empty_body(self, b: EmptyCandidates, body: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"usageMetadata": {"promptTokenCount": 120, "totalTokenCount": 120}}
        if b.block_reason:
            out["promptFeedback"] = {"blockReason": b.block_reason}
        return out

    def _error_body(self, b: Error, api_key: str) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if b.reason:
            details.append({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": b.reason,
                "domain": "googleapis.com",
            })
        if b.retry_delay:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": b.retry_delay})
        err: dict[str, Any] = {
            "code": b.status,
            "message": _error_message(b, api_key),
            "status": b.api_status or _GOOGLE_STATUS.get(b.status, "UNKNOWN"),
        }
        if details:
            err["details"] = details
        return {"error": err}


def _gemini_model(path: str) -> str:
    """`/v1beta/models/gemini-x:generateContent` -> `gemini-x`."""
    tail = path.split("?")[0].rsplit("/models/", 1)[-1]
    return tail.split(":", 1)[0]


class FakeOpenAI(_FakeLLMServer):
    """Speaks `POST {base}/chat/completions` like OpenAI, vLLM, Ollama and llama.cpp, and, when
    `.models` is set, `GET {base}/models` with those ids (`.models_path` is the one path it
    answers, `/v1/models` as vLLM and Ollama serve it)."""

    models: list[str] | None = None
    models_path = "/v1/models"

    def _listing(self, path: str) -> Any:
        if self.models is None or path.split("?")[0] != self.models_path:
            return None
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]}

    def _accepts(self, path: str) -> bool:
        return path.split("?")[0].rstrip("/").endswith("/chat/completions")

    def _api_key(self, headers: dict[str, str]) -> str:
        auth = headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else auth

    def _ok_body(self, b: Ok, text: str, path: str, body: Any) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": b.prompt_tokens,
            "completion_tokens": b.output_tokens + b.thoughts_tokens,  # reasoning is included
            "total_tokens": b.prompt_tokens + b.output_tokens + b.thoughts_tokens,
        }
        if b.thoughts_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": b.thoughts_tokens}
        message = {"role": "assistant", "content": text if text else None}
        return {
            "id": f"chatcmpl-fake-{self.request_count}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": (body or {}).get("model", "fake") if isinstance(body, dict) else "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": _openai_finish(b.finish)}],
            "usage": usage,
        }

    def _empty_body(self, b: EmptyCandidates, body: Any) -> dict[str, Any]:
        model = body.get("model", "fake") if isinstance(body, dict) else "fake"
        return {"id": "chatcmpl-fake-empty", "object": "chat.completion", "model": model, "choices": []}

    def _error_body(self, b: Error, api_key: str) -> dict[str, Any]:
        return {
            "error": {
                "message": _error_message(b, api_key),
                "type": _OPENAI_TYPE.get(b.status, "server_error"),
                "code": b.api_status,
            }
        }


def _openai_finish(finish: str) -> str:
    return _OPENAI_FINISH.get(finish, finish.lower())
