"""Gemini thought signatures on any part (ai.google.dev/gemini-api/docs/thought-signatures): they come back to
the client in Google's OpenAI-compatible shape (`extra_content.google.thought_signature` on the tool call or on
the message) and go back to Gemini on the same part, streamed or not, over two and three turns."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import validate_request
from modelgate.providers import vertex_translate as vt
from tests.fakes.vertex_types import request_problems, response_problems
from tests.fakes.vertex_upstream import FakeVertexThread, signature
from tests.providers.conftest import VERTEX_MODELS
from tests.providers.sent import sent_with
from tests.providers.tool_round_trip import WEATHER_TOOL

SIG = "c2lnbmF0dXJlLW9mLWdlbWluaQ=="  # base64, as Gemini's are (the field is bytes)
TIME_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}},
}


def _gemini(*parts: Any) -> Any:
    answer = {"candidates": [{"index": 0, "content": {"role": "model", "parts": list(parts)}, "finishReason": "STOP"}]}
    assert response_problems(answer) == []
    return answer


def _echo(message: Any, *after: Any) -> Any:
    """The Gemini body of the next turn when the client sends `message` back unchanged."""
    history = [{"role": "user", "content": "q"}, message, *after]
    body = vt.chat_body(validate_request(ChatRequest, {"messages": history}))
    assert request_problems(body) == []
    return body["contents"][1]


def test_function_call_signature_round_trips() -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG}
    message = vt.chat_response(_gemini(call), "gemini-3-pro-preview")["choices"][0]["message"]
    assert message["tool_calls"] == [
        {
            "id": "call_0_get_weather",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            "extra_content": {"google": {"thought_signature": SIG}},
        }
    ]
    result = {"role": "tool", "tool_call_id": "call_0_get_weather", "content": "sunny"}
    assert _echo(message, result) == {"role": "model", "parts": [call]}


def test_text_signature_after_a_thought_round_trips() -> None:
    parts = [{"text": "Thinking it over.", "thought": True}, {"text": "Yes.", "thoughtSignature": SIG}]
    message = vt.chat_response(_gemini(*parts), "gemini-3-pro-preview")["choices"][0]["message"]
    assert message["content"] == [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking it over.", "signature": None}]},
        {"type": "text", "text": "Yes."},
    ]
    assert message["extra_content"] == {"google": {"thought_signature": SIG}}
    assert _echo(message) == {"role": "model", "parts": parts}


def test_only_the_first_of_parallel_calls_is_signed() -> None:
    first = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG}
    second = {"functionCall": {"name": "get_time", "args": {"zone": "CET"}}}
    message = vt.chat_response(_gemini(first, second), "gemini-3-pro-preview")["choices"][0]["message"]
    assert [c.get("extra_content") for c in message["tool_calls"]] == [{"google": {"thought_signature": SIG}}, None]
    results = [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in message["tool_calls"]]
    assert _echo(message, *results)["parts"] == [first, second]


def test_history_from_another_provider() -> None:
    """Calls with no signature of Gemini's get Google's stand-in on the first; redacted reasoning (Anthropic's
    redacted_thinking, Bedrock's redactedContent) has no Gemini part and is dropped."""
    message = {
        "role": "assistant",
        "content": [
            {"type": "reasoning", "summary": [{"type": "summary_encrypted_text", "data": "ant-redacted"}]},
            {"type": "text", "text": "Checking."},
        ],
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ],
    }
    results = [{"role": "tool", "tool_call_id": f"toolu_{i}", "content": "ok"} for i in (1, 2)]
    assert _echo(message, *results)["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": vt.SKIP_SIGNATURE},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]


def _accumulate(chunks: list[Any]) -> Any:
    """What a client keeps of a streamed answer, Google's extra_content included (as clients for Gemini's
    OpenAI-compatible API do): one assistant message."""
    message: Any = {"role": "assistant", "content": None}
    calls: dict[int, Any] = {}
    texts: list[str] = []
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            delta = choice["delta"]
            if isinstance(delta.get("content"), list):
                message.setdefault("reasoning", []).extend(delta["content"])
            elif delta.get("content"):
                texts.append(delta["content"])
            if "extra_content" in delta:
                message["extra_content"] = delta["extra_content"]
            for tc in delta.get("tool_calls") or []:
                entry = calls.setdefault(tc["index"], {"type": "function", "function": {"name": "", "arguments": ""}})
                entry["id"] = tc.get("id") or entry.get("id")
                entry["function"]["name"] += tc["function"].get("name") or ""
                entry["function"]["arguments"] += tc["function"].get("arguments") or ""
                if "extra_content" in tc:
                    entry["extra_content"] = tc["extra_content"]
    text = "".join(texts)
    reasoning = message.pop("reasoning", None)
    message["content"] = [*reasoning, {"type": "text", "text": text}] if reasoning else (text or None)
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


def _streamed(*events: Any) -> Any:
    translator = vt.StreamTranslator("gemini-3-pro-preview")
    chunks = [c for e in events for c in translator.feed(e)]
    return _accumulate([*chunks, *translator.close()])


def test_streamed_signatures_round_trip() -> None:
    thought = {"text": "Hmm.", "thought": True}
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG}
    message = _streamed(_gemini(thought), _gemini({"text": "Let me look."}), _gemini(call))
    result = {"role": "tool", "tool_call_id": "call_0_get_weather", "content": "sunny"}
    assert _echo(message, result)["parts"] == [thought, {"text": "Let me look."}, call]
    # Text whose signature arrives last, on an empty part, as Gemini streams it.
    message = _streamed(
        _gemini({"text": "Yes"}), _gemini({"text": ", sure."}), _gemini({"text": "", "thoughtSignature": SIG})
    )
    assert message["extra_content"] == {"google": {"thought_signature": SIG}}
    assert _echo(message)["parts"] == [{"text": "Yes, sure.", "thoughtSignature": SIG}]


# -- through modelgate, against the fake behaving like Gemini 3 (it refuses an unsigned function-call turn) ----


def _ask(oai: openai.OpenAI, name: str, messages: list[Any], stream: bool, **kw: Any) -> tuple[Any, str | None]:
    """One turn; the assistant message exactly as the client received it, ready to be sent back."""
    if not stream:
        answer = oai.chat.completions.create(model=name, messages=messages, **kw)
        return answer.choices[0].message.model_dump(exclude_none=True, warnings=False), answer.choices[0].finish_reason
    raw = oai.chat.completions.with_raw_response.create(model=name, messages=messages, stream=True, **kw)
    chunks = [c.model_dump(exclude_none=True, warnings=False) for c in raw.parse()]
    finish = [ch["finish_reason"] for c in chunks for ch in c.get("choices") or [] if ch.get("finish_reason")]
    return _accumulate(chunks), finish[-1]


@pytest.mark.parametrize("stream", [False, True])
def test_three_turns_with_parallel_calls_on_gemini_3(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str], stream: bool
) -> None:
    name = vertex_endpoint("gemini-3-pro-preview")
    marker = f"parallel weather and time {name}"
    messages: list[Any] = [{"role": "user", "content": marker}]
    tools = [WEATHER_TOOL, TIME_TOOL]
    first, finish = _ask(oai, name, messages, stream, tools=tools, reasoning_effort="low")
    assert finish == "tool_calls"
    assert [c["function"]["name"] for c in first["tool_calls"]] == ["get_weather", "get_time"]
    assert first["tool_calls"][0]["extra_content"] == {
        "google": {"thought_signature": signature("call", "get_weather")}
    }
    assert "extra_content" not in first["tool_calls"][1]
    messages += [first, *({"role": "tool", "tool_call_id": c["id"], "content": "fine"} for c in first["tool_calls"])]
    second, finish = _ask(oai, name, messages, stream, tools=tools, reasoning_effort="low")
    assert finish == "stop"
    assert second["extra_content"] == {"google": {"thought_signature": signature("text")}}
    messages += [second, {"role": "user", "content": "thanks"}]
    third, _ = _ask(oai, name, messages, stream, tools=tools, tool_choice="none")
    assert third["content"] == "echo: thanks"
    sent = sent_with(vertex_fake, marker, VERTEX_MODELS)
    assert len(sent) == 3
    model_turns = [c for c in sent[2].json["contents"] if c["role"] == "model"]
    assert model_turns == [
        {
            "role": "model",
            "parts": [
                {"text": "Let me think.", "thought": True},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": signature("call", "get_weather"),
                },
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Let me think.", "thought": True},
                {"text": "tool said: fine; fine", "thoughtSignature": signature("text")},
            ],
        },
    ]


def test_a_call_sent_back_bare_is_refused_like_gemini_3_does(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    """What a lost signature costs: the fake refuses it as Gemini 3 does, and Google's stand-in passes."""
    name = vertex_endpoint("gemini-3-pro-preview")
    body: Any = {
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"x": 1}}}]},
        ]
    }
    url = f"{vertex_fake.url}{VERTEX_MODELS}/gemini-3-pro-preview:generateContent"
    oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])  # modelgate gets a token
    token = next(iter(vertex_fake.server.tokens))
    refused = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 400
    assert "missing a thought_signature" in refused.json()["error"]["message"]
    body["contents"][1]["parts"][0]["thoughtSignature"] = vt.SKIP_SIGNATURE
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    body["contents"][1]["parts"][0]["thoughtSignature"] = signature("text")  # a signature moved to another part
    moved = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    assert moved.status_code == 400
    assert json.loads(moved.text)["error"]["message"].endswith("Corrupted thought signature.")
