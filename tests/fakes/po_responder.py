"""A realistic answer for the fake servers: the synthetic PO writer applied to the request's prompt."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from engine.core.records import split_prompt
from engine.providers.po_writer import write_answer


def _first_user_text(body: Any) -> str:
    if isinstance(body, dict) and "contents" in body:  # Gemini
        return body["contents"][0]["parts"][0]["text"]
    if isinstance(body, dict) and "messages" in body:  # OpenAI-compatible
        return next(m["content"] for m in body["messages"] if m["role"] == "user")
    return ""


def po_responder(body: Any) -> str:
    prompt = _first_user_text(body)
    parts = split_prompt(prompt)
    if parts is None:
        return "I could not find a concept in your message."
    seed = int.from_bytes(hashlib.sha256(repr(body).encode()).digest()[:4], "big")
    return write_answer(parts[0], parts[1], random.Random(seed))
