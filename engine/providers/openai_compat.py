"""Teacher provider for any OpenAI-compatible chat-completions endpoint (Ollama, vLLM, llama.cpp).

An httpx `AsyncClient`: one `generate()` is one POST to `{base_url}/chat/completions`; the
runner owns retries. The optional key is sent only as `Authorization: Bearer`, kept only in
memory, and scrubbed from every message built here; local servers need none (Ollama ignores
the header, vLLM and llama-server check it only when started with `--api-key`).

`base_url` is the API root, as the OpenAI clients take it (`http://localhost:8000/v1`). A bare
host (`http://localhost:11434`) gets `/v1`, where vLLM, Ollama and llama-server all serve the
API (Ollama and vLLM have no `/chat/completions` without it), and a pasted endpoint
(`.../v1/chat/completions`) is cut back to its root, so the first request does not fail with
a 404 that stops the run.

The client comes from `httpx2` (the drop-in httpx fork google-genai already depends on) when it
is importable: httpcore 1.0.x re-scans the whole pool for every queued request, which at 64
concurrent keep-alive requests costs tens of ms of event-loop CPU per request and smears a batch of
0.5 s replies over 1.5 s; httpcore2 does not. Plain httpx is the fallback.
"""

from __future__ import annotations

import asyncio
import json
import time
from types import ModuleType
from typing import Any, Sequence
from urllib.parse import urlsplit

import httpx

from engine.providers.base import (
    BAD_RESPONSE,
    CONNECTION,
    FINISH_EMPTY,
    FINISH_MAX_TOKENS,
    FINISH_OTHER,
    FINISH_SAFETY,
    FINISH_STOP,
    MAX_MESSAGE_CHARS,
    NOT_FOUND,
    TIMEOUT,
    Completion,
    Message,
    ProviderError,
    describe,
    kind_for_status,
    mentions_bad_key,
    parse_retry_after,
    scrubbed,
)

try:
    import httpx2
except ImportError:  # pragma: no cover - google-genai >= 3 brings it
    httpx2 = None  # type: ignore[assignment]

_HTTP: ModuleType = httpx2 if httpx2 is not None else httpx
_MODULES = [m for m in (httpx, httpx2) if m is not None]


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """The named exception classes from both httpx and httpx2 (whichever are importable)."""
    return tuple(getattr(m, n) for m in _MODULES for n in names if hasattr(m, n))


_TIMEOUTS = _classes("TimeoutException") + (TimeoutError,)
_BAD_URL = _classes("UnsupportedProtocol", "InvalidURL")
_UNDECODABLE = _classes("DecodingError", "TooManyRedirects")
_NETWORK = _classes("TransportError", "RequestError") + (OSError,)
_FINISH = {"stop": FINISH_STOP, "length": FINISH_MAX_TOKENS, "content_filter": FINISH_SAFETY}
_ROLES = {"user": "user", "model": "assistant"}
ENDPOINT = "/chat/completions"
DEFAULT_API_PATH = "/v1"


def api_url(base_url: str, endpoint: str = ENDPOINT) -> str:
    """`endpoint` under the API root `base_url` (see the module docstring); ValueError if it is
    not an http(s) URL with a host."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # The value is not echoed: a URL can carry credentials (user:password@host).
        raise ValueError("expected an http(s) URL with a host, such as http://localhost:8000/v1")
    path = parts.path.rstrip("/")
    for tail in (ENDPOINT, "/models"):
        if path.endswith(tail):
            path = path[: -len(tail)]
            break
    path = path or DEFAULT_API_PATH
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{path}{endpoint}{query}"


class OpenAICompatProvider:
    """A local or hosted open model behind the OpenAI chat-completions API."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.model = model
        self._url = api_url(base_url)
        # Sampling fields some servers add to the OpenAI API (vLLM, llama.cpp), merged into every
        # request; the standard fields always win.
        self.extra_body: dict[str, Any] = {}
        self._secrets: tuple[str | None, ...] = (api_key,)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout_s = timeout_s
        self._client: Any = None  # an httpx2 / httpx AsyncClient

    def _http(self) -> Any:
        """Created on first use, inside the event loop that will drive it."""
        if self._client is None:
            self._client = _HTTP.AsyncClient(
                headers=self._headers,
                timeout=_HTTP.Timeout(self._timeout_s),
                limits=_HTTP.Limits(max_connections=256, max_keepalive_connections=64),
            )
        return self._client

    async def generate(
        self,
        system: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_output_tokens: int | None,
        seed: int | None,
    ) -> Completion:
        """One request; returns a Completion or raises a ProviderError (never anything else)."""
        payload = self._payload(system, messages, temperature, max_output_tokens, seed)
        start = time.perf_counter()
        try:
            response = await self._http().post(self._url, json=payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a ProviderError
            raise self._transport_error(exc) from None
        latency = time.perf_counter() - start
        if response.status_code >= 300:
            raise self._status_error(response)
        return self._completion(response, latency)

    def _payload(
        self,
        system: str,
        messages: Sequence[Message],
        temperature: float,
        max_output_tokens: int | None,
        seed: int | None,
    ) -> dict[str, Any]:
        chat = [{"role": "system", "content": system}] if system else []
        chat += [{"role": _ROLES.get(m.role, m.role), "content": m.text} for m in messages]
        payload: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "messages": chat,
            "temperature": temperature,
            "stream": False,
        }
        if max_output_tokens is not None:
            payload["max_tokens"] = max_output_tokens
        if seed is not None:
            payload["seed"] = seed
        return payload

    def _completion(self, response: Any, latency: float) -> Completion:
        body = self._json(response)
        try:
            text, finish, extra = _read_choice(body)
            usage = body.get("usage") or {}
            details = usage.get("completion_tokens_details") or {}
            return Completion(
                text=text,
                finish_reason=finish,
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),  # includes reasoning
                latency_s=latency,
                model=str(body.get("model") or self.model),
                thinking_tokens=int(details.get("reasoning_tokens") or 0),
                extra=extra,
            )
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            raise ProviderError(BAD_RESPONSE, self._describe("unexpected reply shape", exc)) from None

    def _json(self, response: Any) -> dict[str, Any]:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise ProviderError(
                BAD_RESPONSE, self._describe("reply is not valid JSON", exc), status=response.status_code
            ) from None
        if not isinstance(body, dict):
            raise ProviderError(BAD_RESPONSE, "reply is JSON but not an object", status=response.status_code)
        return body

    # ---- errors

    def _status_error(self, response: Any) -> ProviderError:
        status = response.status_code
        detail = _error_text(response) or response.reason_phrase or "HTTP error"
        return ProviderError(
            kind_for_status(status, bad_key=mentions_bad_key(detail, _body_text(response))),
            scrubbed(detail, self._secrets),
            status=status,
            retry_after_s=_retry_after(response.headers),
        )

    def _transport_error(self, exc: BaseException) -> ProviderError:
        """Map an httpx / OS exception (order matters: subclasses first)."""
        if isinstance(exc, _TIMEOUTS):
            return ProviderError(TIMEOUT, self._describe("no reply in time", exc))
        if isinstance(exc, _BAD_URL):
            return ProviderError(NOT_FOUND, self._describe("bad endpoint URL", exc))
        if isinstance(exc, _UNDECODABLE):
            return ProviderError(BAD_RESPONSE, self._describe("undecodable reply", exc))
        if isinstance(exc, _NETWORK):
            return ProviderError(CONNECTION, self._describe("connection failed", exc))
        return ProviderError(BAD_RESPONSE, self._describe("unexpected failure", exc))

    def _describe(self, what: str, exc: BaseException) -> str:
        return describe(what, exc, self._secrets)

    async def aclose(self) -> None:
        """Close the connection pool; safe to call twice (a later generate() opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _read_choice(body: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Text, normalised finish reason and diagnostics from choices[0].

    SAFETY and MAX_TOKENS win over EMPTY even with no text, as in the Gemini provider.
    """
    choices = body.get("choices") or []
    if not choices:
        return "", FINISH_EMPTY, {}
    choice = choices[0]
    content = (choice.get("message") or {}).get("content")
    text = content if isinstance(content, str) else ""
    raw = choice.get("finish_reason")
    extra: dict[str, Any] = {"finish_reason_raw": raw} if raw is not None else {}
    finish = _FINISH.get(str(raw), FINISH_OTHER)
    if not text and finish not in (FINISH_SAFETY, FINISH_MAX_TOKENS):
        finish = FINISH_EMPTY
    return text, finish, extra


def _error_text(response: Any) -> str:
    """The server's own words: OpenAI/vLLM `{"error": {"message"}}`, Ollama `{"error": "..."}`,
    vLLM `{"message"}`, or the raw body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return response.text.strip()[:MAX_MESSAGE_CHARS]
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        parts = [err.get("type") or err.get("code"), err.get("message")]
        return ": ".join(str(p) for p in parts if p)
    return str(err)


def _body_text(response: Any) -> str:
    """The raw error body (an error `code` such as invalid_api_key is not in `_error_text`)."""
    try:
        return str(response.text)[:4096]
    except Exception:  # noqa: BLE001 - an undecodable body says nothing about the key
        return ""


def _retry_after(headers: Any) -> float | None:
    """Retry-After (seconds or HTTP date), or the `retry-after-ms` some servers send."""
    seconds = parse_retry_after(headers.get("retry-after"))
    if seconds is not None:
        return seconds
    millis = parse_retry_after(headers.get("retry-after-ms"))
    return millis / 1000.0 if millis is not None else None
