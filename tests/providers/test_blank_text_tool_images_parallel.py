"""Three things each provider handles its own way, checked on the translated body against the provider's own
types: a blank text block (Bedrock refuses one: never send it), a tool result that carries an image, and
`parallel_tool_calls`."""

from __future__ import annotations

from typing import Any

import pytest

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import validate_request
from modelgate.providers import anthropic_translate, bedrock_translate, cohere_translate, vertex_translate
from tests.fakes import anthropic_types, bedrock_types, cohere_types, vertex_types

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
TOOL: Any = {"type": "function", "function": {"name": "shot", "parameters": {"type": "object"}}}
CALL: Any = {"id": "call_1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}


def _chat(messages: list[Any], **fields: Any) -> ChatRequest:
    return validate_request(ChatRequest, {"messages": messages, **fields})


def _tool_turns(result: Any) -> list[Any]:
    return [
        {"role": "user", "content": "take a screenshot"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ]


IMAGE_RESULT: Any = [
    {"type": "text", "text": "here it is"},
    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
]


# -- blank text ----------------------------------------------------------------------------------------------


BLANK_HISTORY: Any = [
    {"role": "system", "content": " "},
    {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
    {"role": "assistant", "content": ""},
    {"role": "user", "content": "  "},
    {"role": "assistant", "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": "\n"}]},
    {"role": "user", "content": "more"},
]


def test_bedrock_never_sends_a_blank_text_block() -> None:
    body, _ = bedrock_translate.converse_body(_chat(BLANK_HISTORY))
    assert bedrock_types.converse_problems(body, "m") == []
    assert "system" not in body
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "hi"}]},
        {"role": "assistant", "content": [{"text": "ok"}]},
        {"role": "user", "content": [{"text": "more"}]},
    ]


def test_bedrock_assistant_turn_of_only_dropped_reasoning_leaves_no_blank_block() -> None:
    unsigned = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Cohere's"}]}
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [unsigned]},
        {"role": "user", "content": "r"},
    ]
    body, _ = bedrock_translate.converse_body(_chat(history))
    assert bedrock_types.converse_problems(body, "m") == []
    assert body["messages"] == [{"role": "user", "content": [{"text": "q"}, {"text": "r"}]}]


def test_bedrock_a_conversation_with_nothing_to_send_is_a_400() -> None:
    with pytest.raises(BadRequest, match="no text"):
        bedrock_translate.converse_body(_chat([{"role": "user", "content": " "}]))


def test_anthropic_drops_blank_text_too() -> None:
    body, _ = anthropic_translate.messages_body(_chat(BLANK_HISTORY), "claude-sonnet-4-5")
    assert anthropic_types.request_problems(body) == []
    assert all(b.get("text", "x").strip() for m in body["messages"] for b in m["content"] if isinstance(b, dict))


# -- a tool result with an image -------------------------------------------------------------------------------


def test_bedrock_tool_result_carries_the_image() -> None:
    body, _ = bedrock_translate.converse_body(_chat(_tool_turns(IMAGE_RESULT), tools=[TOOL]))
    assert bedrock_types.converse_problems(body, "m") == []
    result = body["messages"][2]["content"][0]["toolResult"]
    assert result["content"] == [{"text": "here it is"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]


def test_bedrock_blank_tool_result_is_not_a_blank_text_block() -> None:
    body, _ = bedrock_translate.converse_body(_chat(_tool_turns(""), tools=[TOOL]))
    assert bedrock_types.converse_problems(body, "m") == []
    assert body["messages"][2]["content"][0]["toolResult"]["content"] == [{"json": {}}]


def test_anthropic_tool_result_carries_the_image() -> None:
    body, _ = anthropic_translate.messages_body(_chat(_tool_turns(IMAGE_RESULT), tools=[TOOL]), "claude-sonnet-4-5")
    assert anthropic_types.request_problems(body) == []
    result = body["messages"][2]["content"][0]
    assert result["content"] == [
        {"type": "text", "text": "here it is"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]


def test_cohere_tool_result_with_an_image_is_a_clear_400() -> None:
    with pytest.raises(BadRequest, match=r"messages\[2\].*cohere.*image"):
        cohere_translate.chat_body(_chat(_tool_turns(IMAGE_RESULT), tools=[TOOL]), "command-a-03-2025")


def test_cohere_tool_result_text_parts_pass() -> None:
    body = cohere_translate.chat_body(_chat(_tool_turns(IMAGE_RESULT[:1]), tools=[TOOL]), "command-a-03-2025")
    assert cohere_types.chat_problems(body) == []


# -- parallel_tool_calls ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        ("none", {"type": "none"}),
    ],
)
def test_anthropic_parallel_tool_calls_false_disables_parallel_use(tool_choice: Any, expected: Any) -> None:
    fields: Any = {"tools": [TOOL], "parallel_tool_calls": False}
    if tool_choice is not None:
        fields["tool_choice"] = tool_choice
    body, _ = anthropic_translate.messages_body(_chat([{"role": "user", "content": "q"}], **fields), "claude")
    assert anthropic_types.request_problems(body) == []
    assert body["tool_choice"] == expected


def test_anthropic_parallel_tool_calls_true_is_anthropics_default() -> None:
    request = _chat([{"role": "user", "content": "q"}], tools=[TOOL], parallel_tool_calls=True)
    body, _ = anthropic_translate.messages_body(request, "claude")
    assert "tool_choice" not in body


def test_bedrock_and_cohere_drop_parallel_tool_calls() -> None:
    request = _chat([{"role": "user", "content": "q"}], tools=[TOOL], parallel_tool_calls=False)
    body, _ = bedrock_translate.converse_body(request)
    assert bedrock_types.converse_problems(body, "m") == []
    assert cohere_types.chat_problems(cohere_translate.chat_body(request, "command-a-03-2025")) == []


def test_vertex_tool_result_carries_the_image_as_a_function_response_part() -> None:
    body = vertex_translate.chat_body(_chat(_tool_turns(IMAGE_RESULT), tools=[TOOL]))
    assert vertex_types.request_problems(body) == []
    response = body["contents"][2]["parts"][0]["functionResponse"]
    assert response == {
        "name": "shot",
        "response": {"content": "here it is"},
        "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}],
    }
