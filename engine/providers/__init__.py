"""The model providers both the teacher and eval stages call (Gemini/Vertex, OpenAI-compatible,
synthetic), the one call path with retries and rate limits (`calls`), and `make_provider`.

They live beside the stages, not inside one, because two stages use them. Credentials come from
the environment only, never from flags.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Protocol

from engine.errors import InputError
from engine.providers.base import Provider


class ProviderSettings(Protocol):
    """What `make_provider` reads from a stage's settings (TeacherSettings has all of it)."""

    provider: str
    api_key_env: str | None
    base_url: str | None
    project: str | None
    location: str | None
    timeout_s: float
    seed: int
    thinking_budget: int | None  # gemini/vertex only (validated by TeacherSettings)
    synthetic: Any  # SyntheticSettings: model_dump() gives the SyntheticProvider's knobs

    def resolved_model(self) -> str: ...

GEMINI_KEY_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
OPENAI_KEY_VAR = "OPENAI_API_KEY"


def api_key(settings: ProviderSettings, env: Mapping[str, str] | None = None) -> str | None:
    """The key for the configured provider, from the environment (None when it needs none)."""
    env = os.environ if env is None else env
    if settings.api_key_env:
        return env.get(settings.api_key_env) or None
    if settings.provider == "gemini":
        return next((env[v] for v in GEMINI_KEY_VARS if env.get(v)), None)
    if settings.provider == "openai":
        return env.get(OPENAI_KEY_VAR) or None
    return None


def make_provider(settings: ProviderSettings, env: Mapping[str, str] | None = None) -> Provider:
    env = os.environ if env is None else env
    model = settings.resolved_model()
    if settings.provider == "synthetic":
        from engine.providers.synthetic import SyntheticProvider

        return SyntheticProvider(model=model, seed=settings.seed, **settings.synthetic.model_dump())
    if settings.provider in ("gemini", "vertex"):
        from engine.providers.gemini import GeminiProvider

        if settings.provider == "gemini":
            key = api_key(settings, env)
            if not key:
                names = settings.api_key_env or " or ".join(GEMINI_KEY_VARS)
                raise InputError(f"no API key: set {names} in the environment", field="provider")
            return GeminiProvider(
                model, api_key=key, base_url=settings.base_url, timeout_s=settings.timeout_s, thinking_budget=settings.thinking_budget
            )
        project = settings.project or env.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise InputError("vertex needs a project: set teacher.project or GOOGLE_CLOUD_PROJECT", field="project")
        location = settings.location or env.get("GOOGLE_CLOUD_LOCATION") or "us-central1"
        return GeminiProvider(
            model, vertex=True, project=project, location=location, base_url=settings.base_url, timeout_s=settings.timeout_s,
            thinking_budget=settings.thinking_budget,
        )
    from engine.providers.openai_compat import OpenAICompatProvider, api_url

    base_url = settings.base_url or env.get("OPENAI_BASE_URL")
    if not base_url:
        raise InputError("the openai provider needs --base-url (or OPENAI_BASE_URL)", field="base_url")
    try:
        api_url(base_url)
    except ValueError as exc:
        raise InputError(str(exc), field="base_url") from None
    return OpenAICompatProvider(model, base_url=base_url, api_key=api_key(settings, env), timeout_s=settings.timeout_s)
