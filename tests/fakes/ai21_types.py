"""Jamba chat bodies checked against AI21's own types (the `ai21` SDK).

The SDK has no model of the request body either: `client.chat.completions.create` takes its fields as typed
keyword arguments (messages as `ChatMessageParam` models, tools as `ToolDefinition` TypedDicts,
`ResponseFormat`, `DocumentSchema`), so the request type is built from that signature. Two keys the API
reference lists (docs.ai21.com/reference/jamba-1-6-api-ref) are not in it and are added by their documented
shape: `tool_choice` and `stream_options`. Message `content` is a string in every SDK message type: Jamba
takes no content parts. The models allow extra keys; keys are checked by name all the same
(:mod:`tests.fakes.strict_types`), since the API answers 422 "extra fields not permitted".
"""

from __future__ import annotations

import functools
import inspect
import operator
import types
import typing
from typing import Any, Literal, NotRequired, Required, TypedDict

from ai21.clients.studio.resources.chat.chat_completions import ChatCompletions
from ai21.models.chat import ChatCompletionChunk, ChatCompletionResponse
from ai21.types import NotGiven

from tests.fakes.strict_types import problems, readable_problems


class StreamOptions(TypedDict, total=False):
    include_usage: bool


class _NamedFunction(TypedDict):
    name: str


class NamedToolChoice(TypedDict):
    type: Literal["function"]
    function: _NamedFunction


@functools.cache
def _request_type() -> Any:
    hints = typing.get_type_hints(ChatCompletions.create)
    parameters = inspect.signature(ChatCompletions.create).parameters
    fields: dict[str, Any] = {}
    for key, tp in hints.items():
        if key in ("self", "kwargs", "return"):
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # `X | NotGiven`: the SDK's "not sent"
            tp = functools.reduce(operator.or_, [a for a in typing.get_args(tp) if a is not NotGiven])
        required = parameters[key].default is inspect.Parameter.empty
        fields[key] = Required[tp] if required else NotRequired[tp]
    fields["stream"] = NotRequired[bool]
    fields["tool_choice"] = NotRequired[Literal["auto", "none", "required"] | NamedToolChoice]
    fields["stream_options"] = NotRequired[StreamOptions]
    return TypedDict("JambaChatRequest", fields)  # type: ignore[operator]


def request_problems(body: Any) -> list[str]:
    """Why Jamba would refuse this POST /studio/v1/chat/completions body (a 422 naming the field)."""
    return problems(_request_type(), body)


def answer_problems(answer: Any) -> list[str]:
    return readable_problems(ChatCompletionResponse, answer, "answer")


def chunk_problems(chunk: Any) -> list[str]:
    return readable_problems(ChatCompletionChunk, chunk, "chunk")
