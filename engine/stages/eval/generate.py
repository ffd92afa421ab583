"""What every generator (local model or provider) takes and gives back.

A `Request` is one attempt of one case: the conversation so far (the student prompt; on a retry
also the previous answer and the corrective instruction). A `Generation` is its answer with the
numbers the results record. Generators call `on_done` as each answer arrives, so the runner can
store it durably before the next one is produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

USER, ASSISTANT = "user", "assistant"
FINISH_STOP = "STOP"  # the model ended its answer (EOS) -- the providers' spelling
FINISH_MAX_TOKENS = "MAX_TOKENS"  # cut at --max-new-tokens


@dataclass(frozen=True)
class Turn:
    role: str  # user | assistant
    text: str


@dataclass(frozen=True)
class Request:
    key: int  # the case index
    turns: tuple[Turn, ...]
    seed: int
    concept_id: str = ""  # for messages and events


@dataclass
class Generation:
    key: int
    text: str
    output_tokens: int
    input_tokens: int
    finish_reason: str
    latency_s: float  # wall time of the call (local: of the batch) that produced it
    wall_share_s: float  # this answer's share of the run's generation wall time (sums to it)
    batch_size: int = 1  # sequences decoded together with it (local) / 1 (providers)
    error: str | None = None  # providers: the call failed after its API retries (no answer)


OnDone = Callable[[Generation], None]


class Generator(Protocol):
    """Answers requests, calling `on_done` once per request as soon as its answer exists."""

    def run(self, requests: Sequence[Request], on_done: OnDone) -> None: ...

    def close(self) -> None: ...
