"""Teacher providers, driven through the REAL clients (google-genai, httpx) against local fakes.

Every error path is checked for kind, status, Retry-After and for the API key never leaking
into the exception text (the fakes echo the key back inside their error messages).
"""

from __future__ import annotations

import asyncio
import socket
import time
from email.utils import formatdate
from typing import Any

import google.auth
import httpx
import pytest
from google.auth import exceptions as auth_exceptions
from google.oauth2.credentials import Credentials

from engine.providers import openai_compat
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
    RATE_LIMITED,
    SERVER_ERROR,
    TIMEOUT,
    Completion,
    Message,
    ProviderError,
)
from engine.providers.gemini import GeminiProvider
from engine.providers.openai_compat import OpenAICompatProvider
from tests.fakes import (
    CANNED_PO_ANSWER,
    FakeGemini,
    FakeOpenAI,
    drop_connection,
    empty_candidates,
    error,
    malformed_json,
    max_tokens,
    ok,
    safety,
    slow,
)

KEY = "AIzaFAKE-test-key-0123456789abcdef"
MODEL = "gemini-test-pro"
SYSTEM = "You are a meticulous Product Owner."
CONVERSATION = [
    Message("user", "Review these requirements."),
    Message("model", "status: aligned"),
    Message("user", "Your answer was not valid YAML; answer again."),
]

# (behaviour, kind, status, retry_after_s); each echoes the key to prove it is scrubbed.
ERROR_MATRIX = [
    pytest.param(error(429, retry_after="2", echo_key=True), RATE_LIMITED, 429, 2.0, id="429-retry-after"),
    pytest.param(error(429, echo_key=True), RATE_LIMITED, 429, None, id="429-bare"),
    pytest.param(error(500, echo_key=True), SERVER_ERROR, 500, None, id="500"),
    pytest.param(error(503, retry_after="1", echo_key=True), SERVER_ERROR, 503, 1.0, id="503"),
    pytest.param(error(401, echo_key=True), AUTH, 401, None, id="401"),
    pytest.param(error(403, echo_key=True), AUTH, 403, None, id="403"),
    pytest.param(error(404, echo_key=True), NOT_FOUND, 404, None, id="404"),
    pytest.param(error(400, echo_key=True), INVALID_REQUEST, 400, None, id="400"),
]


# The status code decides first: a body saying the key is bad (as a proxy or an overloaded backend
# may send with any status) makes only a 400 an auth error; 401/403 are auth whatever they say.
BAD_KEY_TEXT = "API key not valid. Please pass a valid API key."
STATUS_FIRST = [
    pytest.param(error(503, message=BAD_KEY_TEXT, reason="API_KEY_INVALID", echo_key=True), SERVER_ERROR, 503, id="503-bad-key-body"),
    pytest.param(error(500, message="API key expired. Please renew the API key.", echo_key=True), SERVER_ERROR, 500,
                 id="500-expired-key-body"),
    pytest.param(error(502, message="Incorrect API key provided", api_status="invalid_api_key"), SERVER_ERROR, 502, id="502-bad-key-body"),
    pytest.param(error(504, message=BAD_KEY_TEXT), SERVER_ERROR, 504, id="504-bad-key-body"),
    pytest.param(error(429, message=BAD_KEY_TEXT, reason="API_KEY_INVALID"), RATE_LIMITED, 429, id="429-bad-key-body"),
    pytest.param(error(408, message=BAD_KEY_TEXT), TIMEOUT, 408, id="408-bad-key-body"),
    pytest.param(error(404, message=BAD_KEY_TEXT), NOT_FOUND, 404, id="404-bad-key-body"),
    pytest.param(error(422, message=BAD_KEY_TEXT), INVALID_REQUEST, 422, id="422-bad-key-body"),
    pytest.param(error(400, message="API key expired. Please renew the API key.", echo_key=True), AUTH, 400, id="400-expired-key"),
    pytest.param(error(400, message="Incorrect API key provided: sk-...", echo_key=True), AUTH, 400, id="400-incorrect-key"),
    pytest.param(error(400, message="temperature must be at most 2"), INVALID_REQUEST, 400, id="400-plain"),
    pytest.param(error(401, message="upstream said no"), AUTH, 401, id="401-any-body"),
    pytest.param(error(403, message="Forbidden"), AUTH, 403, id="403-any-body"),
]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment would swallow requests meant for the local fakes."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def _free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ask(provider: Any, messages: list[Message] | None = None, **kw: Any) -> Completion:
    args = {"temperature": 0.3, "max_output_tokens": 256, "seed": 42} | kw
    return await provider.generate(SYSTEM, messages or CONVERSATION[:1], **args)


async def _fails(provider: Any, secret: str | None = KEY) -> ProviderError:
    """The call raises a ProviderError whose every rendering is free of the secret."""
    with pytest.raises(ProviderError) as info:
        await _ask(provider)
    exc = info.value
    if secret:
        for text in (str(exc), exc.message, repr(exc)):
            assert secret not in text
    return exc


def _assert_error(exc: ProviderError, kind: str, status: int | None, retry_after: float | None) -> None:
    assert (exc.kind, exc.status, exc.retry_after_s) == (kind, status, retry_after)
    assert exc.retryable == (kind in {RATE_LIMITED, SERVER_ERROR, TIMEOUT, CONNECTION, BAD_RESPONSE})
    assert exc.fatal == (kind in {AUTH, NOT_FOUND})


# --------------------------------------------------------------------------- Gemini


@pytest.fixture
def gemini_server():
    with FakeGemini() as server:
        yield server


@pytest.fixture
async def gemini(gemini_server: FakeGemini):
    provider = GeminiProvider(MODEL, api_key=KEY, base_url=gemini_server.url, timeout_s=5.0)
    yield provider
    await provider.aclose()


async def test_gemini_ok_maps_text_tokens_and_request(gemini: GeminiProvider, gemini_server: FakeGemini):
    gemini_server.push(
        ok("final answer", prompt_tokens=11, output_tokens=22, thoughts_tokens=7, thought="private musing")
    )
    done = await _ask(gemini, CONVERSATION, temperature=0.25, max_output_tokens=512, seed=7)

    assert gemini.name == "gemini"
    assert (done.text, done.finish_reason, done.model) == ("final answer", FINISH_STOP, MODEL)
    assert (done.input_tokens, done.output_tokens, done.thinking_tokens) == (11, 29, 7)
    assert done.latency_s > 0
    [(path, headers, body)] = gemini_server.requests
    assert path == f"/v1beta/models/{MODEL}:generateContent"
    assert headers["x-goog-api-key"] == KEY
    assert body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert [c["parts"][0]["text"] for c in body["contents"]] == [m.text for m in CONVERSATION]
    assert body["generationConfig"] == {"temperature": 0.25, "maxOutputTokens": 512, "seed": 7}


async def test_gemini_default_answer_comes_from_the_responder():
    with FakeGemini(responder=lambda body: "echo: " + body["contents"][-1]["parts"][0]["text"]) as server:
        provider = GeminiProvider(MODEL, api_key=KEY, base_url=server.url, timeout_s=5.0)
        try:
            assert (await _ask(provider)).text == "echo: " + CONVERSATION[0].text
        finally:
            await provider.aclose()
    with FakeGemini() as server:
        provider = GeminiProvider(MODEL, api_key=KEY, base_url=server.url, timeout_s=5.0)
        try:
            assert (await _ask(provider)).text == CANNED_PO_ANSWER
        finally:
            await provider.aclose()


@pytest.mark.parametrize(("behaviour", "kind", "status", "retry_after"), ERROR_MATRIX)
async def test_gemini_http_errors(gemini, gemini_server, behaviour, kind, status, retry_after):
    gemini_server.push(behaviour)
    exc = await _fails(gemini)
    _assert_error(exc, kind, status, retry_after)
    assert gemini_server.request_count == 1  # the SDK must not retry on its own


async def test_gemini_http_date_retry_after(gemini, gemini_server):
    gemini_server.push(error(429, retry_after=formatdate(time.time() + 30, usegmt=True)))
    exc = await _fails(gemini)
    assert exc.kind == RATE_LIMITED and 25.0 <= exc.retry_after_s <= 31.0


async def test_gemini_retry_info_detail_stands_in_for_retry_after(gemini, gemini_server):
    gemini_server.push(error(429, retry_delay="13s"))
    assert (await _fails(gemini)).retry_after_s == 13.0


async def test_gemini_invalid_key_400_is_fatal_auth(gemini, gemini_server):
    gemini_server.push(error(400, reason="API_KEY_INVALID", message="API key not valid.", echo_key=True))
    exc = await _fails(gemini)
    assert (exc.kind, exc.status, exc.fatal) == (AUTH, 400, True)


@pytest.mark.parametrize(("behaviour", "kind", "status"), STATUS_FIRST)
async def test_gemini_error_class_is_decided_by_the_status_first(gemini, gemini_server, behaviour, kind, status):
    gemini_server.push(behaviour)
    exc = await _fails(gemini)
    assert (exc.kind, exc.status) == (kind, status)
    assert exc.retryable == (kind in {RATE_LIMITED, SERVER_ERROR, TIMEOUT})
    assert exc.fatal == (kind in {AUTH, NOT_FOUND})


async def test_gemini_slow_reply_times_out(gemini_server):
    provider = GeminiProvider(MODEL, api_key=KEY, base_url=gemini_server.url, timeout_s=0.3)
    gemini_server.push(slow(2.0))
    start = time.perf_counter()
    try:
        exc = await _fails(provider)
    finally:
        await provider.aclose()
    _assert_error(exc, TIMEOUT, None, None)
    assert time.perf_counter() - start < 1.5


@pytest.mark.parametrize(("reason", "extra"), [("PROHIBITED_CONTENT", {"block_reason": "PROHIBITED_CONTENT"}), (None, {})])
async def test_gemini_empty_candidates(gemini, gemini_server, reason, extra):
    gemini_server.push(empty_candidates(reason))
    done = await _ask(gemini)
    assert (done.text, done.finish_reason, done.extra) == ("", FINISH_EMPTY, extra)
    assert done.input_tokens == 120


async def test_gemini_safety(gemini, gemini_server):
    gemini_server.push(safety())
    done = await _ask(gemini)
    assert (done.text, done.finish_reason) == ("", FINISH_SAFETY)


async def test_gemini_max_tokens_keeps_partial_text(gemini, gemini_server):
    gemini_server.push(max_tokens("status: alig"))
    done = await _ask(gemini)
    assert (done.text, done.finish_reason) == ("status: alig", FINISH_MAX_TOKENS)


async def test_gemini_other_finish_keeps_raw_value(gemini, gemini_server):
    gemini_server.push(ok("some text", finish="RECITATION"))
    done = await _ask(gemini)
    assert (done.finish_reason, done.extra["finish_reason_raw"]) == (FINISH_OTHER, "RECITATION")


async def test_gemini_stop_without_text_is_empty(gemini, gemini_server):
    gemini_server.push(ok("", finish="STOP"))
    assert (await _ask(gemini)).finish_reason == FINISH_EMPTY


async def test_gemini_malformed_json_is_bad_response(gemini, gemini_server):
    gemini_server.push(malformed_json())
    _assert_error(await _fails(gemini), BAD_RESPONSE, None, None)


async def test_gemini_dropped_connection(gemini, gemini_server):
    gemini_server.push(drop_connection())
    _assert_error(await _fails(gemini), CONNECTION, None, None)


async def test_gemini_connection_refused():
    provider = GeminiProvider(MODEL, api_key=KEY, base_url=f"http://127.0.0.1:{_free_port()}", timeout_s=2.0)
    try:
        _assert_error(await _fails(provider), CONNECTION, None, None)
    finally:
        await provider.aclose()


async def test_gemini_cancellation_propagates(gemini, gemini_server):
    gemini_server.push(slow(2.0))
    task = asyncio.create_task(_ask(gemini))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_gemini_without_key_is_fatal_at_construction():
    with pytest.raises(ProviderError) as info:
        GeminiProvider(MODEL, api_key=None)
    assert info.value.fatal


async def test_vertex_uses_adc_token_and_vertex_path(gemini_server, monkeypatch):
    token = "ya29.fake-adc-token"
    monkeypatch.setattr(google.auth, "default", lambda **kw: (Credentials(token=token), "proj"))
    provider = GeminiProvider(
        MODEL, vertex=True, project="proj", location="europe-west4", base_url=gemini_server.url, timeout_s=5.0
    )
    try:
        done = await _ask(provider)
    finally:
        await provider.aclose()
    assert provider.name == "vertex" and done.finish_reason == FINISH_STOP
    [(path, headers, _)] = gemini_server.requests
    assert path.endswith(f"/projects/proj/locations/europe-west4/publishers/google/models/{MODEL}:generateContent")
    assert headers["authorization"] == f"Bearer {token}"
    assert "x-goog-api-key" not in headers


async def test_vertex_without_credentials_is_fatal_auth(gemini_server, monkeypatch):
    def no_adc(**kw: Any) -> Any:
        raise auth_exceptions.DefaultCredentialsError("no application default credentials")

    monkeypatch.setattr(google.auth, "default", no_adc)
    provider = GeminiProvider(MODEL, vertex=True, project="p", location="us-central1", base_url=gemini_server.url)
    try:
        exc = await _fails(provider, secret=None)
    finally:
        await provider.aclose()
    assert exc.kind == AUTH and exc.fatal
    assert gemini_server.request_count == 0


# --------------------------------------------------------------------------- OpenAI-compatible


@pytest.fixture
def openai_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def openai(openai_server: FakeOpenAI):
    provider = OpenAICompatProvider("qwen3:8b", base_url=openai_server.url + "/v1/", api_key=KEY, timeout_s=5.0)
    yield provider
    await provider.aclose()


async def test_openai_ok_maps_text_tokens_and_request(openai: OpenAICompatProvider, openai_server: FakeOpenAI):
    openai_server.push(ok("final answer", prompt_tokens=11, output_tokens=22, thoughts_tokens=7))
    done = await _ask(openai, CONVERSATION, temperature=0.25, max_output_tokens=512, seed=7)

    assert openai.name == "openai"
    assert (done.text, done.finish_reason, done.model) == ("final answer", FINISH_STOP, "qwen3:8b")
    assert (done.input_tokens, done.output_tokens, done.thinking_tokens) == (11, 29, 7)
    assert done.latency_s > 0
    [(path, headers, body)] = openai_server.requests
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": CONVERSATION[0].text},
        {"role": "assistant", "content": CONVERSATION[1].text},
        {"role": "user", "content": CONVERSATION[2].text},
    ]
    assert (body["model"], body["temperature"], body["max_tokens"], body["seed"]) == ("qwen3:8b", 0.25, 512, 7)


async def test_openai_without_key_sends_no_authorization(openai_server):
    provider = OpenAICompatProvider("llama", base_url=openai_server.url + "/v1", timeout_s=5.0)
    try:
        done = await _ask(provider, max_output_tokens=None, seed=None)
    finally:
        await provider.aclose()
    assert done.text == CANNED_PO_ANSWER
    [(_, headers, body)] = openai_server.requests
    assert "authorization" not in headers
    assert "max_tokens" not in body and "seed" not in body


@pytest.mark.parametrize(("behaviour", "kind", "status", "retry_after"), ERROR_MATRIX)
async def test_openai_http_errors(openai, openai_server, behaviour, kind, status, retry_after):
    openai_server.push(behaviour)
    exc = await _fails(openai)
    _assert_error(exc, kind, status, retry_after)
    assert openai_server.request_count == 1


@pytest.mark.parametrize(("behaviour", "kind", "status"), STATUS_FIRST)
async def test_openai_error_class_is_decided_by_the_status_first(openai, openai_server, behaviour, kind, status):
    openai_server.push(behaviour)
    exc = await _fails(openai)
    assert (exc.kind, exc.status) == (kind, status)
    assert exc.retryable == (kind in {RATE_LIMITED, SERVER_ERROR, TIMEOUT})
    assert exc.fatal == (kind in {AUTH, NOT_FOUND})


async def test_openai_invalid_api_key_code_on_a_400_is_fatal_auth(openai, openai_server):
    openai_server.push(error(400, api_status="invalid_api_key", message="the request was refused", echo_key=True))
    exc = await _fails(openai)
    assert (exc.kind, exc.status, exc.fatal) == (AUTH, 400, True)


async def test_openai_http_date_retry_after(openai, openai_server):
    openai_server.push(error(429, retry_after=formatdate(time.time() + 30, usegmt=True)))
    exc = await _fails(openai)
    assert exc.kind == RATE_LIMITED and 25.0 <= exc.retry_after_s <= 31.0


async def test_openai_slow_reply_times_out(openai_server):
    provider = OpenAICompatProvider("m", base_url=openai_server.url + "/v1", api_key=KEY, timeout_s=0.3)
    openai_server.push(slow(2.0))
    start = time.perf_counter()
    try:
        exc = await _fails(provider)
    finally:
        await provider.aclose()
    _assert_error(exc, TIMEOUT, None, None)
    assert time.perf_counter() - start < 1.5


async def test_openai_empty_choices(openai, openai_server):
    openai_server.push(empty_candidates())
    done = await _ask(openai)
    assert (done.text, done.finish_reason, done.input_tokens, done.output_tokens) == ("", FINISH_EMPTY, 0, 0)


async def test_openai_content_filter_is_safety(openai, openai_server):
    openai_server.push(safety())
    done = await _ask(openai)
    assert (done.text, done.finish_reason) == ("", FINISH_SAFETY)


async def test_openai_length_is_max_tokens_with_partial_text(openai, openai_server):
    openai_server.push(max_tokens("status: alig"))
    done = await _ask(openai)
    assert (done.text, done.finish_reason) == ("status: alig", FINISH_MAX_TOKENS)


async def test_openai_other_finish_keeps_raw_value(openai, openai_server):
    openai_server.push(ok("text", finish="tool_calls"))
    done = await _ask(openai)
    assert (done.finish_reason, done.extra["finish_reason_raw"]) == (FINISH_OTHER, "tool_calls")


async def test_openai_malformed_json_is_bad_response(openai, openai_server):
    openai_server.push(malformed_json())
    exc = await _fails(openai)
    assert exc.kind == BAD_RESPONSE and exc.retryable


async def test_openai_dropped_connection(openai, openai_server):
    openai_server.push(drop_connection())
    _assert_error(await _fails(openai), CONNECTION, None, None)


async def test_openai_connection_refused():
    provider = OpenAICompatProvider("m", base_url=f"http://127.0.0.1:{_free_port()}/v1", api_key=KEY, timeout_s=2.0)
    try:
        _assert_error(await _fails(provider), CONNECTION, None, None)
    finally:
        await provider.aclose()


async def test_openai_cancellation_propagates(openai, openai_server):
    openai_server.push(slow(2.0))
    task = asyncio.create_task(_ask(openai))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": 'model "qwen9" not found, try pulling it first'}, 'model "qwen9" not found'),  # Ollama
        ({"object": "error", "message": "max_tokens is too large", "type": "BadRequestError"}, "too large"),  # vLLM
        ({"error": {"message": "bad seed", "type": "invalid_request_error"}}, "invalid_request_error: bad seed"),
    ],
)
def test_openai_error_text_reads_each_server_dialect(body: dict, expected: str):
    assert expected in openai_compat._error_text(httpx.Response(400, json=body))


# --------------------------------------------------------------------------- both HTTP stacks


def _http_modules() -> list[Any]:
    import importlib.util

    names = ["httpx"] + (["httpx2"] if importlib.util.find_spec("httpx2") else [])
    return [pytest.param(__import__(n), id=n) for n in names]


@pytest.mark.parametrize("http", _http_modules())
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda h: h.ReadTimeout("read timed out"), TIMEOUT),
        (lambda h: h.ConnectTimeout("connect timed out"), TIMEOUT),
        (lambda h: h.ConnectError(f"refused for {KEY}"), CONNECTION),
        (lambda h: h.RemoteProtocolError("peer closed"), CONNECTION),
        (lambda h: h.DecodingError("bad gzip"), BAD_RESPONSE),
        (lambda h: h.UnsupportedProtocol("ftp://"), NOT_FOUND),
    ],
)
def test_both_providers_map_httpx_and_httpx2_exceptions(http: Any, make: Any, kind: str):
    """Gemini's SDK raises httpx2 errors, our OpenAI client may be either library."""
    exc = make(http)
    gemini = GeminiProvider(MODEL, api_key=KEY)
    openai = OpenAICompatProvider("m", base_url="http://127.0.0.1:1/v1", api_key=KEY)
    for mapped in (gemini._error(exc), openai._transport_error(exc)):
        assert mapped.kind == kind
        assert KEY not in str(mapped) and KEY not in repr(mapped)


def test_unexpected_exceptions_become_bad_response():
    gemini = GeminiProvider(MODEL, api_key=KEY)
    openai = OpenAICompatProvider("m", base_url="http://127.0.0.1:1/v1", api_key=KEY)
    for mapped in (gemini._error(KeyError(KEY)), openai._transport_error(RuntimeError(KEY))):
        assert mapped.kind == BAD_RESPONSE and KEY not in str(mapped)
