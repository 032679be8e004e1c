"""Cohere v2 bodies checked against Cohere's own types (the `cohere` SDK).

The SDK is generated (Fern) from Cohere's API definition. It has no model of a request body: `v2.chat`,
`v2.chat_stream` and `v2.embed` take the body's fields as keyword arguments, typed, and send each under its
own name. So the request types here are built from those signatures (a field without a default is required).
Its pydantic models (`ChatMessageV2`, `ToolV2`, `Thinking`, `V2ChatResponse`, the stream events, ...) allow
extra keys, for forward compatibility; Cohere's API does not ("unknown field"), so
:mod:`tests.fakes.strict_types` checks every key of a request by name, all the way down. Answers may carry
keys the SDK does not model (Cohere's documented message-start event lists `content`, `tool_plan`,
`tool_calls` and `citations`; the SDK models only `role`), so answers are checked for what the SDK reads.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, NotRequired, Required, TypedDict

from cohere.types import EmbedByTypeResponse
from cohere.v2.raw_client import RawV2Client
from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse

from tests.fakes.strict_types import problems, readable_problems

_NOT_BODY = {"self", "request_options", "return"}


@functools.cache
def _body_type(method: Any, name: str, **extra: Any) -> Any:
    """A TypedDict of the body that the SDK's `method` sends: one key per keyword argument."""
    hints = typing.get_type_hints(method, include_extras=True)
    parameters = inspect.signature(method).parameters
    fields: dict[str, Any] = {}
    for key, tp in hints.items():
        if key in _NOT_BODY:
            continue
        required = parameters[key].default is inspect.Parameter.empty
        fields[key] = Required[tp] if required else NotRequired[tp]
    return TypedDict(name, {**fields, **extra})  # type: ignore[operator]


def chat_problems(body: Any) -> list[str]:
    """Why Cohere would refuse this POST /v2/chat body; empty when its types accept it."""
    if isinstance(body, dict) and body.get("stream") is True:
        tp = _body_type(RawV2Client.chat_stream, "V2ChatStreamRequest", stream=Required[typing.Literal[True]])
    else:
        tp = _body_type(RawV2Client.chat, "V2ChatRequest", stream=NotRequired[typing.Literal[False]])
    return problems(tp, body)


def embed_problems(body: Any) -> list[str]:
    """Why Cohere would refuse this POST /v2/embed body."""
    return problems(_body_type(RawV2Client.embed, "V2EmbedRequest"), body)


def chat_answer_problems(answer: Any) -> list[str]:
    return readable_problems(V2ChatResponse, answer, "answer")


def stream_event_problems(event: Any) -> list[str]:
    return readable_problems(V2ChatStreamResponse, event, "event")


def embed_answer_problems(answer: Any) -> list[str]:
    return readable_problems(EmbedByTypeResponse, answer, "answer")
