"""One record per query, handed to observers: the metrics, and the AI Gateway recorder (usage, inference tables).

Observers are called once the request is finished (streams included, even when the client left early)
and must not block: anything slow goes through a queue to its own writer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelgate.auth.principal import Principal
from modelgate.gateway.tables import RecordingPlan
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest

_ids = random.Random()


def new_request_id() -> str:
    """A random 128-bit id as 32 hex digits, like a UUID's hex. Not a secret, so no system entropy call."""
    return _ids.randbytes(16).hex()  # twice as fast as formatting the int with :032x


@dataclass(slots=True)
class CallRecord:
    endpoint: str
    endpoint_id: str
    task: str
    principal: Principal
    streaming: bool
    request: Any  # the validated wire model
    # The body as the client sent it, which inference tables store; None once a guardrail changed the request.
    request_body: bytes | None = None
    client_request_id: str | None = None
    usage_context: dict[str, str] | None = None
    served_entity: str | None = None
    started: float = field(default_factory=time.perf_counter)
    request_time: float = field(default_factory=time.time)
    status_code: int = 200
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_reported: bool = False
    response: Any = None
    # The response as the client got it (JSON), when an inference table will keep it; else made from `response`.
    response_body: bytes | None = None
    duration_s: float = 0.0
    client_disconnected: bool = False
    # What the endpoint's AI Gateway config records of the query (usage row, inference table), if anything.
    recording: RecordingPlan | None = None
    guardrail_blocked: str | None = None  # "input" or "output" when a guardrail refused the query
    rate_limited: bool = False  # refused by the endpoint's own AI Gateway limits (not by the upstream)
    admission: Any = None  # the rate limiter's admission, charged with the tokens used when the query ends

    def set_usage(self, usage: dict[str, Any] | None) -> None:
        if usage:
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
            self.usage_reported = True


Observer = Callable[[CallRecord], None]


def request_chars(request: ChatRequest | CompletionRequest | EmbeddingRequest) -> int:
    """Characters of a request's text (usage tracking's input_character_count and token estimates)."""
    if isinstance(request, ChatRequest):
        total = 0
        for message in request.messages:
            content = message.content
            total += len(content) if isinstance(content, str) else len(message.text())
        return total
    if isinstance(request, CompletionRequest):
        return sum(len(p) for p in request.prompts())
    return sum(len(t) for t in request.inputs())


def output_chars(response: Any) -> int:
    """Characters of the generated text in a chat or completions response (0 for anything else)."""
    if isinstance(response, dict) and "choices" in response:
        total = 0
        for choice in response.get("choices") or []:
            msg = choice.get("message")
            content = msg.get("content") if msg else choice.get("text")
            if isinstance(content, str):
                total += len(content)
        return total
    return 0
