"""Pure translation tests for the Anthropic provider (no network): the documented examples, both ways."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.providers.anthropic_translate import StreamTranslator, chat_response, messages_body

Json = dict[str, Any]


def chat(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate(fields)


def test_stream_example_from_docs_two_tools_after_text() -> None:
    """docs.anthropic.com streaming example shape: text block 0, then tool_use blocks 1 and 2."""
    t = StreamTranslator(None)
    events: list[Json] = [
        {
            "type": "message_start",
            "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 472, "output_tokens": 2}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}},
        },
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"loc'}},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_B", "name": "get_time", "input": {}},
        },
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '":"SF"}'}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 89}},
        {"type": "message_stop"},
    ]
    chunks = [c for e in events for c in t.feed(e)]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[:2] == [{"role": "assistant", "content": ""}, {"content": "Okay"}]
    assert deltas[2:][:-1] == [
        {
            "tool_calls": [
                {"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"loc'}}]},
        {
            "tool_calls": [
                {"index": 1, "id": "toolu_B", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '":"SF"}'}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}
    assert {c["id"] for c in chunks} == {"msg_1"}


def test_response_with_redacted_thinking_and_cache_usage() -> None:
    out = chat_response(
        {
            "id": "msg_2",
            "model": "claude",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "S1"},
                {"type": "redacted_thinking", "data": "ENC"},
                {"type": "text", "text": "done"},
            ],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 5,
                "cache_creation_input_tokens": 2,
                "output_tokens": 3,
            },
        },
        None,
    )
    assert out["choices"][0]["message"]["content"] == [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hmm", "signature": "S1"}]},
        {"type": "reasoning", "summary": [{"type": "summary_encrypted_text", "data": "ENC"}]},
        {"type": "text", "text": "done"},
    ]
    assert out["usage"] == {
        "prompt_tokens": 17,
        "completion_tokens": 3,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 5},
    }


def test_refusal_maps_to_content_filter() -> None:
    out = chat_response({"content": [], "stop_reason": "refusal", "usage": {}}, None)
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["choices"][0]["message"]["content"] == ""


def test_user_text_after_tool_result_goes_after_the_results() -> None:
    body, _ = messages_body(
        chat(
            messages=[
                {"role": "developer", "content": [{"type": "text", "text": "sys"}]},
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}],
                },
                {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "r"}]},
                {"role": "user", "content": "and?"},
            ]
        ),
        "claude",
    )
    assert body["system"] == [{"type": "text", "text": "sys"}]
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r"}]},
            {"type": "text", "text": "and?"},
        ],
    }


def test_bad_tool_arguments_are_a_400() -> None:
    req = chat(
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "t1", "function": {"name": "f", "arguments": "{nope"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "r"},
        ]
    )
    with pytest.raises(BadRequest) as info:
        messages_body(req, "claude")
    assert info.value.message == "Bad request: messages[1].tool_calls: arguments of 't1' are not valid JSON"


def test_structured_output_with_thinking_is_asked_not_forced() -> None:
    body, tool = messages_body(
        chat(
            messages=[{"role": "user", "content": "q"}],
            thinking={"type": "enabled", "budget_tokens": 8000},
            response_format={"type": "json_object"},
        ),
        "claude",
    )
    assert tool == "json_response"
    assert body["tool_choice"] == {"type": "auto"}
    assert body["max_tokens"] == 8000 + 4096
    # The forced tool's streamed input becomes content.
    t = StreamTranslator(tool)
    t.feed({"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 1}}})
    start = {"type": "tool_use", "id": "x", "name": "json_response", "input": {}}
    assert t.feed({"type": "content_block_start", "index": 0, "content_block": start}) == []
    piece = t.feed(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"a":1}'}}
    )
    assert piece[0]["choices"][0]["delta"] == {"content": '{"a":1}'}
    end = t.feed({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}})
    assert end[0]["choices"][0]["finish_reason"] == "stop"
    assert orjson.loads(piece[0]["choices"][0]["delta"]["content"]) == {"a": 1}
