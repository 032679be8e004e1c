"""The client side of a tool-call round trip through the openai client, shared by the provider tests."""

from __future__ import annotations

import json
from typing import Any

import openai

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def ask_for_one_tool_call(
    oai: openai.OpenAI, endpoint: str, messages: Any, tools: list[Any], *, stream: bool
) -> tuple[str, str, str]:
    """Ask (streaming or not) and return the single tool call's (id, name, arguments), checking finish_reason."""
    if stream:
        calls: dict[int, dict[str, str]] = {}
        finish = []
        for chunk in oai.chat.completions.create(model=endpoint, messages=messages, tools=tools, stream=True):
            for choice in chunk.choices:
                finish.append(choice.finish_reason)
                for tc in choice.delta.tool_calls or []:
                    entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] += tc.id or ""
                    entry["name"] += (tc.function and tc.function.name) or ""
                    entry["arguments"] += (tc.function and tc.function.arguments) or ""
        assert finish[-1] == "tool_calls"
        assert list(calls) == [0]
        return calls[0]["id"], calls[0]["name"], calls[0]["arguments"]
    answer = oai.chat.completions.create(model=endpoint, messages=messages, tools=tools)
    assert answer.choices[0].finish_reason == "tool_calls"
    tool_calls = answer.choices[0].message.tool_calls
    assert tool_calls is not None and len(tool_calls) == 1
    call = tool_calls[0]
    return call.id, call.function.name, call.function.arguments  # type: ignore[union-attr]


def with_tool_result(messages: Any, call: tuple[str, str, str], result: str) -> list[Any]:
    """The conversation continued with the assistant's tool call and the tool's answer."""
    call_id, name, arguments = call
    return [
        *messages,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def weather_round_trip(
    oai: openai.OpenAI, endpoint: str, *, stream: bool, call_id: str, tool_choice: str = "auto"
) -> tuple[str, tuple[str, str, str], Any]:
    """Ask for the weather, expect one get_weather(city=Paris) call with `call_id`, answer it, and check the
    model's final text. Returns the question (to find what was sent upstream), the call and the final answer."""
    marker = f"weather in Paris {endpoint}"
    messages: Any = [{"role": "user", "content": marker}]
    call = ask_for_one_tool_call(oai, endpoint, messages, [WEATHER_TOOL], stream=stream)
    assert call[:2] == (call_id, "get_weather")
    assert json.loads(call[2]) == {"city": "Paris"}
    history = with_tool_result(messages, call, "sunny, 21C")
    final = oai.chat.completions.create(
        model=endpoint,
        messages=history,
        tools=[WEATHER_TOOL],
        tool_choice=tool_choice,  # type: ignore[arg-type]
    )
    assert final.choices[0].message.content == "tool said: sunny, 21C"
    return marker, call, final
