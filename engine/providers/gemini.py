"""Gemini (AI Studio key) and Vertex AI (application default credentials) teacher provider.

Wraps the google-genai SDK: one `generate()` is exactly one HTTP request (the SDK's own retries
stay off, `retry_options` None; the runner owns the retry policy), and every outcome becomes a
`Completion` or a `ProviderError`. The API key lives only in this object and the SDK client;
every message built here is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Sequence

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from engine.providers.base import (
    AUTH,
    BAD_RESPONSE,
    CONNECTION,
    FINISH_EMPTY,
    FINISH_MAX_TOKENS,
    FINISH_OTHER,
    FINISH_SAFETY,
    FINISH_STOP,
    INVALID_REQUEST,
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
    import httpx
except ImportError:  # pragma: no cover - httpx is a project dependency
    httpx = None  # type: ignore[assignment]
try:
    import httpx2  # the fork google-genai uses for async requests
except ImportError:  # pragma: no cover - older google-genai releases use plain httpx
    httpx2 = None  # type: ignore[assignment]
try:
    from google.auth import exceptions as auth_exceptions
except ImportError:  # pragma: no cover - google-auth comes with google-genai
    auth_exceptions = None  # type: ignore[assignment]

GEMINI_API_VERSION = "v1beta"  # newest models and fields land here first
# The SDK's async pool defaults to 100 connections; a wide runner would queue behind it.
_POOL = {"max_connections": 256, "max_keepalive_connections": 64}
_FINISH = {"STOP": FINISH_STOP, "MAX_TOKENS": FINISH_MAX_TOKENS, "SAFETY": FINISH_SAFETY}


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """The named exception classes from whichever of httpx / httpx2 is importable."""
    mods = [m for m in (httpx, httpx2) if m is not None]
    return tuple(getattr(m, n) for m in mods for n in names if hasattr(m, n))


_TIMEOUTS = _classes("TimeoutException") + (TimeoutError,)
_BAD_URL = _classes("UnsupportedProtocol", "InvalidURL")
_UNDECODABLE = _classes("DecodingError", "TooManyRedirects")
_NETWORK = _classes("TransportError", "RequestError") + (OSError,)
_AUTH_FAILURES: tuple[type[BaseException], ...] = (
    (auth_exceptions.DefaultCredentialsError, auth_exceptions.RefreshError) if auth_exceptions else ()
)
_AUTH_NETWORK: tuple[type[BaseException], ...] = (
    (auth_exceptions.TransportError,) if auth_exceptions else ()
)


def _pool_args() -> dict[str, Any]:
    """Pool limits for the SDK's async client. An httpx2 `Limits` also pins the SDK to httpx2,
    whose pool stays cheap at high concurrency (httpcore 1.0 rescans the whole pool per request)."""
    module = httpx2 if httpx2 is not None else httpx
    return {"limits": module.Limits(**_POOL)} if module is not None else {}


class GeminiProvider:
    """The premium teacher behind the Gemini API or, with `vertex=True`, Vertex AI."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        vertex: bool = False,
        project: str | None = None,
        location: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        thinking_budget: int | None = None,
    ) -> None:
        self.name = "vertex" if vertex else "gemini"
        self.model = model
        # Sent as ThinkingConfig with every request; None leaves the model's own default.
        self.thinking_budget = thinking_budget
        self._secrets: tuple[str | None, ...] = (api_key, api_key.strip() if api_key else None)
        if not vertex and not (api_key and api_key.strip()):
            raise ProviderError(AUTH, "no API key given for the Gemini API")
        self._client = self._make_client(vertex, api_key, project, location, base_url, timeout_s)

    def _make_client(
        self,
        vertex: bool,
        api_key: str | None,
        project: str | None,
        location: str | None,
        base_url: str | None,
        timeout_s: float,
    ) -> genai.Client:
        """Build the SDK client; a config/credential failure here is fatal for the run."""
        options = types.HttpOptions(
            base_url=base_url,
            api_version=None if vertex else GEMINI_API_VERSION,
            timeout=max(1, int(timeout_s * 1000)),  # milliseconds
            async_client_args=_pool_args(),
        )
        try:
            if vertex:
                return genai.Client(vertexai=True, project=project, location=location, http_options=options)
            return genai.Client(api_key=api_key, http_options=options)
        except Exception as exc:  # noqa: BLE001 - surfaced as a scrubbed, fatal ProviderError
            raise ProviderError(AUTH, self._describe(f"cannot create the {self.name} client", exc)) from None

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
        contents, config = self._request(system, messages, temperature, max_output_tokens, seed)
        start = time.perf_counter()
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model, contents=contents, config=config
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a ProviderError
            raise self._error(exc) from None
        latency = time.perf_counter() - start
        try:
            return self._completion(response, latency)
        except Exception as exc:  # noqa: BLE001 - a body the SDK parsed but we cannot read
            raise ProviderError(BAD_RESPONSE, self._describe("unreadable response", exc)) from None

    def _request(
        self,
        system: str,
        messages: Sequence[Message],
        temperature: float,
        max_output_tokens: int | None,
        seed: int | None,
    ) -> tuple[list[types.Content], types.GenerateContentConfig]:
        """SDK request objects; arguments the SDK rejects are an invalid request, not a crash."""
        try:
            contents = [
                types.Content(role=m.role, parts=[types.Part(text=m.text)]) for m in messages
            ]
            config = types.GenerateContentConfig(
                system_instruction=system or None,
                temperature=temperature,
                max_output_tokens=max_output_tokens,
                seed=seed,
                thinking_config=(
                    None if self.thinking_budget is None else types.ThinkingConfig(thinking_budget=self.thinking_budget)
                ),
            )
        except Exception as exc:  # noqa: BLE001 - pydantic validation of our own arguments
            raise ProviderError(INVALID_REQUEST, self._describe("bad request arguments", exc)) from None
        return contents, config

    def _completion(self, response: types.GenerateContentResponse, latency: float) -> Completion:
        text, finish, extra = _read_candidate(response)
        usage = response.usage_metadata
        thinking = (usage.thoughts_token_count or 0) if usage else 0
        return Completion(
            text=text,
            finish_reason=finish,
            input_tokens=(usage.prompt_token_count or 0) if usage else 0,
            output_tokens=((usage.candidates_token_count or 0) if usage else 0) + thinking,
            latency_s=latency,
            model=response.model_version or self.model,
            thinking_tokens=thinking,
            extra=extra,
        )

    # ---- errors

    def _error(self, exc: BaseException) -> ProviderError:
        """Map an SDK / transport exception to a ProviderError (order matters: subclasses first)."""
        if isinstance(exc, genai_errors.APIError):
            return self._api_error(exc)
        if isinstance(exc, _TIMEOUTS):
            return ProviderError(TIMEOUT, self._describe("no reply in time", exc))
        if isinstance(exc, _BAD_URL):
            return ProviderError(NOT_FOUND, self._describe("bad endpoint URL", exc))
        if isinstance(exc, _UNDECODABLE):
            return ProviderError(BAD_RESPONSE, self._describe("undecodable reply", exc))
        if isinstance(exc, _AUTH_FAILURES):
            return ProviderError(AUTH, self._describe("no usable Google credentials", exc))
        if isinstance(exc, _NETWORK + _AUTH_NETWORK):
            return ProviderError(CONNECTION, self._describe("connection failed", exc))
        if isinstance(exc, json.JSONDecodeError):
            return ProviderError(BAD_RESPONSE, self._describe("reply is not valid JSON", exc))
        return ProviderError(BAD_RESPONSE, self._describe("unexpected failure", exc))

    def _api_error(self, exc: genai_errors.APIError) -> ProviderError:
        code = exc.code if isinstance(exc.code, int) else None
        details = exc.details if isinstance(exc.details, (dict, list)) else None
        label = ": ".join(str(p) for p in (exc.status, exc.message) if p) or type(exc).__name__
        message = scrubbed(label, self._secrets)
        retry_after = parse_retry_after(_header(exc, "retry-after")) or _retry_delay(details)
        if code is None:
            return ProviderError(BAD_RESPONSE, message, retry_after_s=retry_after)
        kind = kind_for_status(code, bad_key=_is_bad_key(details, exc.message))
        return ProviderError(kind, message, status=code, retry_after_s=retry_after)

    def _describe(self, what: str, exc: BaseException) -> str:
        return describe(what, exc, self._secrets)

    async def aclose(self) -> None:
        """Close the SDK's connection pools (async and sync); safe to call twice."""
        aio = getattr(self._client, "aio", None)
        closer = getattr(aio, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - closing must not fail a run
                pass
        close = getattr(self._client, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001
                pass


def _read_candidate(response: types.GenerateContentResponse) -> tuple[str, str, dict[str, Any]]:
    """Text, normalised finish reason and diagnostics from the first candidate.

    SAFETY and MAX_TOKENS win over EMPTY even with no text (a thinking model can spend the whole
    budget on thoughts), so the runner can tell "raise the limit" from "nothing came back".
    """
    extra: dict[str, Any] = {}
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        extra["block_reason"] = _raw(feedback.block_reason)
    if not response.candidates:
        return "", FINISH_EMPTY, extra
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(p.text for p in parts if p.text and not p.thought)
    raw = _raw(candidate.finish_reason) if candidate.finish_reason is not None else None
    if raw is not None:
        extra["finish_reason_raw"] = raw
    if candidate.finish_message:
        extra["finish_message"] = candidate.finish_message
    finish = _FINISH.get(raw or "", FINISH_OTHER)
    if not text and finish not in (FINISH_SAFETY, FINISH_MAX_TOKENS):
        finish = FINISH_EMPTY
    return text, finish, extra


def _raw(value: Any) -> str:
    """An SDK enum (possibly an unknown, newer value) as its wire string."""
    return str(getattr(value, "value", value))


def _header(exc: genai_errors.APIError, name: str) -> str | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        return headers.get(name) or headers.get(name.title())
    except Exception:  # noqa: BLE001 - an odd response type: no header
        return None


def _error_details(details: Any) -> list[dict[str, Any]]:
    """The google.rpc detail objects of an error body (`{"error": {"details": [...]}}`)."""
    if isinstance(details, list):
        details = details[0] if len(details) == 1 else {}
    if not isinstance(details, dict):
        return []
    inner = details.get("error", details)
    items = inner.get("details") if isinstance(inner, dict) else None
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def _retry_delay(details: Any) -> float | None:
    """Gemini puts the wait in a RetryInfo detail ("13s") rather than a Retry-After header."""
    for item in _error_details(details):
        if str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(item.get("retryDelay", "")).strip().removesuffix("s")
            return parse_retry_after(delay)
    return None


def _is_bad_key(details: Any, message: str | None) -> bool:
    """Whether the body says the key was refused (the Gemini API answers a wrong key with 400
    INVALID_ARGUMENT, reason API_KEY_INVALID); kind_for_status weighs it against the status."""
    for item in _error_details(details):
        if str(item.get("reason", "")).startswith("API_KEY_"):
            return True
    return mentions_bad_key(message)
