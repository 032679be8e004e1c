"""Messages API bodies checked against Anthropic's own types (the `anthropic` SDK).

Requests: the SDK's `MessageCreateParams` TypedDicts, walked by :mod:`tests.fakes.strict_types` (unknown keys
anywhere are refused, as the API answers "Extra inputs are not permitted"). One deliberate addition: the SDK's
types dropped `temperature`, `top_p` and `top_k` in 1.0, but the API reference still lists them for the
models that take them and modelgate passes them on, so they are checked here by their documented types
(docs.anthropic.com/en/api/messages). Answers: the SDK's `Message` model and, per streamed event, the
`RawMessageStreamEvent` union (`ping` and `error` events are not in it: the SDK handles them itself).
"""

from __future__ import annotations

from typing import Any

from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types import message_create_params as params

from tests.fakes.strict_types import problems


class _Streaming(params.MessageCreateParamsStreaming, total=False):
    temperature: float
    top_p: float
    top_k: int


class _NonStreaming(params.MessageCreateParamsNonStreaming, total=False):
    temperature: float
    top_p: float
    top_k: int


_UNCHECKED_EVENTS = {"ping", "error"}


def request_problems(body: Any) -> list[str]:
    """Why Anthropic would refuse this POST /v1/messages body; empty when its types accept it."""
    streaming = isinstance(body, dict) and body.get("stream") is True
    return problems(_Streaming if streaming else _NonStreaming, body)


def response_problems(answer: Any) -> list[str]:
    """Why the SDK would not read this answer as a `Message`."""
    return problems(Message, answer, "message")


def event_problems(event: Any) -> list[str]:
    """Why the SDK would not read this streamed event as one of Anthropic's."""
    if isinstance(event, dict) and event.get("type") in _UNCHECKED_EVENTS:
        return []
    return problems(RawMessageStreamEvent, event, "event")
