"""One async interface for every teacher provider.

A provider takes a system prompt and a conversation (the user's prompt, and on retries the
model's previous answer plus a corrective instruction) and returns a `Completion`: text, token
usage, latency, finish reason. Every failure is a `ProviderError` that says whether retrying can
help and, when the server said so, after how long. The retry policy lives with the caller, not
here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

Role = Literal["user", "model"]

# Finish reasons, normalised across providers.
FINISH_STOP = "STOP"
FINISH_MAX_TOKENS = "MAX_TOKENS"
FINISH_SAFETY = "SAFETY"
FINISH_EMPTY = "EMPTY"  # no candidate / no text at all
FINISH_OTHER = "OTHER"

# ProviderError kinds.
RATE_LIMITED = "rate_limited"  # 429 / RESOURCE_EXHAUSTED
SERVER_ERROR = "server_error"  # 5xx
TIMEOUT = "timeout"
CONNECTION = "connection"
BAD_RESPONSE = "bad_response"  # unparseable body
INVALID_REQUEST = "invalid_request"  # 400: this request will never work
AUTH = "auth"  # 401/403, or 400 with a refused key: no request will work
NOT_FOUND = "not_found"  # 404: model or endpoint unknown
RETRYABLE_KINDS = frozenset({RATE_LIMITED, SERVER_ERROR, TIMEOUT, CONNECTION, BAD_RESPONSE})
FATAL_KINDS = frozenset({AUTH, NOT_FOUND})  # stop the run: every request would fail the same way


@dataclass(frozen=True)
class Message:
    role: Role
    text: str


@dataclass
class Completion:
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int  # billed output, thinking tokens included
    latency_s: float
    model: str
    thinking_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """A failed call. `message` never contains credentials (providers scrub them)."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def fatal(self) -> bool:
        return self.kind in FATAL_KINDS

    def __str__(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.kind}{status}: {self.message}"


class Provider(Protocol):
    name: str  # "gemini", "vertex", "openai", "synthetic"
    model: str

    async def generate(
        self,
        system: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_output_tokens: int | None,
        seed: int | None,
    ) -> Completion: ...

    async def aclose(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import time
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """Remove known secret values from a message before it can reach an event or a log."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


MAX_MESSAGE_CHARS = 500  # a provider's error text in a ProviderError (events, logs, one stderr line)


def scrubbed(text: str, secrets: Sequence[str | None]) -> str:
    """`text` without the secrets and cut to MAX_MESSAGE_CHARS: every provider's error message."""
    text = scrub(text, secrets)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def describe(what: str, exc: BaseException, secrets: Sequence[str | None]) -> str:
    """"what: ExcType: detail" for an exception a provider's client raised, `scrubbed`."""
    detail = str(exc).strip()
    return scrubbed(f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else ""), secrets)


# What an error body says when the key itself is refused (Gemini: "API key not valid", "API key
# expired"; OpenAI: "Incorrect API key provided", code invalid_api_key).
_BAD_KEY = re.compile(
    r"api[ _-]?key\b.{0,40}\b(not valid|invalid|incorrect|expired|revoked|disabled)"
    r"|\b(invalid|incorrect|expired|revoked|bad)[ _-]+api[ _-]?key",
    re.IGNORECASE | re.DOTALL,
)


def mentions_bad_key(*texts: object) -> bool:
    """Whether an error body says the API key was refused (one input to kind_for_status)."""
    return any(isinstance(t, str) and _BAD_KEY.search(t) is not None for t in texts)


def kind_for_status(status: int, *, bad_key: bool = False) -> str:
    """The class of an HTTP error: the status code decides first, the body only refines a 400.

    A 429 or a 5xx is retryable whatever its body says (a proxy or an overloaded backend can
    wrap any text, "API key not valid" included, in a 503); only 401/403, or a 400 whose body
    says the key was refused (`bad_key`, how the Gemini API answers a wrong key), stop the run
    as an auth error.
    """
    if status == 429:
        return RATE_LIMITED
    if status >= 500:
        return SERVER_ERROR
    if status == 408:
        return TIMEOUT
    if status in (401, 403) or (status == 400 and bad_key):
        return AUTH
    if status == 404:
        return NOT_FOUND
    return INVALID_REQUEST
