"""`po-tui export config`: the consuming pipeline's `roles.product_owner` block for a model that
really exists under that name.

The consuming pipeline addresses the student by name only (`model: po-student-v1`), so a block
naming something that was never created fails later, in another program, at its first request.
`--check URL` asks the server that will answer -- Ollama, vLLM or llama-server, all of which list
their models at the OpenAI-compatible `GET {root}/models` -- and refuses, in one line that names
what is served, when the name is not among them. Ollama lists a model created as `NAME` as
`NAME:latest`; either spelling matches the other.

The block itself is `engine.stages.export.consumer_config` (the seeds' shape: provider, model,
temperature, max_tokens).
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.core.inert import one_line
from engine.errors import InputError
from engine.stages.export import consumer_config

OLLAMA_API = "http://localhost:11434/v1"  # Ollama's OpenAI-compatible root
CHECK_TIMEOUT_S = 10.0
_PROVIDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LATEST = ":latest"


def same_model(name: str, served: str) -> bool:
    """Equal names, Ollama's implicit `:latest` tag aside."""

    def norm(n: str) -> str:
        return n[: -len(_LATEST)] if n.endswith(_LATEST) else n

    return norm(name) == norm(served)


def served_models(base_url: str, *, timeout_s: float = CHECK_TIMEOUT_S) -> list[str]:
    """The model ids a server lists at `GET {root}/models`; InputError (one line) when it cannot say."""
    import httpx

    from engine.providers.openai_compat import api_url

    try:
        url = api_url(base_url, "/models")
    except ValueError as exc:
        raise InputError(str(exc), field="--check") from None
    try:
        response = httpx.get(url, timeout=timeout_s, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise InputError(f"cannot reach {url}: {type(exc).__name__}: {one_line(exc, 200)}", field="--check") from None
    if response.status_code != 200:
        raise InputError(f"{url} answered HTTP {response.status_code}, not a list of models", field="--check")
    try:
        body: Any = response.json()
        ids = [m["id"] for m in body["data"]]
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        raise InputError(f"{url} did not answer with an OpenAI-style model list", field="--check") from None
    return [str(i) for i in ids]


def check_served(name: str, base_url: str) -> str:
    """The listed id that is `name`; InputError naming what is served otherwise."""
    served = served_models(base_url)
    match = next((s for s in served if same_model(name, s)), None)
    if match is None:
        listed = ", ".join(one_line(s, 80) for s in served[:10]) or "nothing"
        more = f" and {len(served) - 10} more" if len(served) > 10 else ""
        raise InputError(
            f"{name!r} is not served at {base_url} (it lists {listed}{more}): create or serve it under that name "
            "first, or pass the name it has",
            field="--name",
        )
    return match


def check_provider(provider: str) -> str:
    if not _PROVIDER.match(provider):
        raise InputError("expected a provider name such as ollama", field="--provider")
    return provider


def config_block(
    name: str,
    *,
    temperature: float,
    max_tokens: int,
    provider: str = "ollama",
    check_url: str | None = None,
) -> str:
    """The YAML block; every option is checked first, the server (if asked) last."""
    check_provider(provider)
    text = consumer_config(name, temperature=temperature, max_tokens=max_tokens, provider=provider)
    if check_url is not None:
        check_served(name, check_url)
    return text
