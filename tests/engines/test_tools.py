"""Function calling on the transformers engine: tools through the chat template, tool calls parsed and forced."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelgate.engines.local_tools import ToolCallStream, split_calls
from modelgate.errors import BadRequest, InvalidParameterValue
from modelgate.protocol.chat import ChatRequest
from tests.engines.conftest import serve_engine
from tests.engines.schema_subset import check

TAGS = ("<tool_call>", "</tool_call>")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "integer", "minimum": 0, "maximum": 99},
                "b": {"type": "integer", "minimum": 0, "maximum": 99},
            },
            "required": ["a", "b"],
        },
    },
}
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, ADD)}  # type: ignore[index]
PARIS = {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}
HISTORY = [
    {"role": "user", "content": "weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": PARIS}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
]


def chat(messages: list[dict[str, Any]] | None = None, **extra: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": messages or [{"role": "user", "content": "the cat"}], **extra})


@pytest.fixture(scope="module", params=["tools-template", "plain-template"])
def backend(request: pytest.FixtureRequest, tools_engine: Any, plain_engine: Any) -> Any:
    """The same tests on a model whose template renders tools and on one whose template ignores them."""
    engine = tools_engine if request.param == "tools-template" else plain_engine
    assert engine.renders_tools() is (request.param == "tools-template")
    return serve_engine(engine)


def assert_call(call: dict[str, Any], names: set[str]) -> None:
    assert call["id"].startswith("call_") and len(call["id"]) > 10
    assert call["type"] == "function"
    assert call["function"]["name"] in names
    check(json.loads(call["function"]["arguments"]), PARAMS[call["function"]["name"]])


async def test_required_tool_choice_always_calls_a_tool(backend: Any) -> None:
    result = await backend.chat(chat(tools=[WEATHER, ADD], tool_choice="required", temperature=1.0, n=4, seed=11,
                                     max_tokens=120))  # fmt: skip
    names = set()
    for choice in result["choices"]:
        assert choice["finish_reason"] == "tool_calls", choice
        message = choice["message"]
        assert message["content"] is None
        [call] = message["tool_calls"]
        assert_call(call, {"get_weather", "add"})
        names.add(call["function"]["name"])
    assert len({c["message"]["tool_calls"][0]["id"] for c in result["choices"]}) == 4


async def test_named_tool_choice_calls_that_tool(backend: Any) -> None:
    choice = {"type": "function", "function": {"name": "add"}}
    result = await backend.chat(chat(tools=[WEATHER, ADD], tool_choice=choice, n=3, seed=4, max_tokens=120))
    for c in result["choices"]:
        assert c["finish_reason"] == "tool_calls"
        assert_call(c["message"]["tool_calls"][0], {"add"})


async def test_stream_sends_openai_tool_call_deltas(backend: Any) -> None:
    request = chat(tools=[WEATHER], tool_choice="required", seed=2, max_tokens=120, stream=True)
    chunks = [c async for c in backend.chat_stream(request)]
    deltas = [c["choices"][0] for c in chunks if c["choices"]]
    assert deltas[0]["delta"]["role"] == "assistant"
    pieces = [d["delta"]["tool_calls"][0] for d in deltas if "tool_calls" in d["delta"]]
    head, *rest = pieces
    assert head["index"] == 0 and head["id"].startswith("call_") and head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert rest and all(set(p) == {"index", "function"} and set(p["function"]) == {"arguments"} for p in rest)
    check(json.loads("".join(p["function"]["arguments"] for p in rest)), PARAMS["get_weather"])
    assert all(not d["delta"].get("content") for d in deltas)
    assert [d["finish_reason"] for d in deltas][-1] == "tool_calls"
    assert all(d["finish_reason"] is None for d in deltas[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_auto_renders_tools_and_may_answer_in_text(backend: Any) -> None:
    plain = await backend.chat(chat(temperature=0, max_tokens=6))
    auto = await backend.chat(chat(tools=[WEATHER], temperature=0, max_tokens=6))
    none = await backend.chat(chat(tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=6))
    assert auto["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 20  # the tools are in the prompt
    assert none["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]  # "none": not shown at all
    [choice] = auto["choices"]
    assert choice["finish_reason"] == "length" and "tool_calls" not in choice["message"]
    assert isinstance(choice["message"]["content"], str)


async def test_tool_history_goes_back_through_the_template(backend: Any) -> None:
    engine = backend.deployment.engine
    from modelgate.engines.local_tools import template_messages, tools_of

    request = chat(HISTORY, tools=[WEATHER])
    text = engine.tokenizer.decode(engine.encode_chat(template_messages(request), tools=tools_of(request)))
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>' in text
    assert "<tool_response>\nsunny, 21 C\n</tool_response>" in text
    assert text.count("get_weather") == 2  # once in the tool list, once in the call
    result = await backend.chat(chat(HISTORY, tools=[WEATHER], temperature=0, max_tokens=4))
    assert result["choices"][0]["finish_reason"] == "length"


async def test_bad_tool_input_is_400(backend: Any) -> None:
    history = [dict(m) for m in HISTORY]
    bad_call = {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "[1, 2]"}}
    history[1] = {**history[1], "tool_calls": [bad_call]}
    with pytest.raises(BadRequest, match=r"messages\[1\]\.tool_calls\[0\]\.function\.arguments must be a JSON object"):
        await backend.chat(chat(history, tools=[WEATHER]))
    strict = {"type": "function", "function": {**WEATHER["function"], "strict": True}}  # type: ignore[dict-item]
    with pytest.raises(InvalidParameterValue, match=r"tools\[0\]\.function\.parameters: with strict"):
        await backend.chat(chat(tools=[strict], tool_choice="required"))
    broken = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 3, "maximum": 1}}}}}  # fmt: skip
    with pytest.raises(InvalidParameterValue, match="a tool's parameters is not a JSON schema"):
        await backend.chat(chat(tools=[broken], tool_choice="required"))


# -- parsing the model's text (pure) -------------------------------------------------------------------


def test_split_calls_finds_calls_and_keeps_the_rest_as_text() -> None:
    text = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n'
        '</tool_call>\n<tool_call>{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}</tool_call>'
    )
    content, calls = split_calls(text, TAGS, {"get_weather", "add"})
    assert content == "Let me check."
    assert [c["function"]["name"] for c in calls] == ["get_weather", "add"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo", "unit": "c"}
    assert json.loads(calls[1]["function"]["arguments"]) == {"a": 1, "b": 2}
    assert calls[0]["id"] != calls[1]["id"]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "unknown", "arguments": {}}</tool_call>',
        "<tool_call>not json</tool_call>",
        '<tool_call>{"name": "add", "arguments": [1]}</tool_call>',
        '<tool_call>{"name": "add", "arguments": {"a": 1}',  # cut off by max_tokens
        "a < b and <tool_ call>",
    ],
)
def test_what_is_not_a_call_stays_text(text: str) -> None:
    assert split_calls(text + " \n", TAGS, {"add"}) == (text, [])


def test_streaming_split_matches_the_whole_text_split() -> None:
    text = 'Sure <tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call> done'
    stream = ToolCallStream(TAGS, {"add"})
    deltas = [d for ch in text for d in stream.feed(ch)] + stream.finish()
    assert "".join(d.get("content", "") for d in deltas) == "Sure done"
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["function"] == {"name": "add", "arguments": ""} and calls[0]["index"] == 0
    assert json.loads(calls[1]["function"]["arguments"]) == {"a": 1, "b": 2}
    held = ToolCallStream(TAGS, {"add"})
    assert held.feed("text <tool_") == [{"content": "text"}]  # a possible tag start is held back
    assert held.finish() == [{"content": " <tool_"}]


def test_a_forced_call_streams_its_arguments_as_they_come() -> None:
    arguments = '{"city": "Oslo", "unit": "c"}'
    text = '<tool_call>\n{"name": "get_weather", "arguments": ' + arguments + "}\n</tool_call>"
    stream = ToolCallStream(TAGS, {"get_weather"}, stream_arguments=True)
    deltas: list[tuple[int, dict[str, Any]]] = []
    for i, ch in enumerate(text):
        deltas += [(i, d) for d in stream.feed(ch)]
    deltas += [(len(text), d) for d in stream.finish()]
    head_at, head = deltas[0]
    assert head["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert head_at == text.index(arguments)  # the head goes out with the first character of the arguments
    pieces = [(i, d["tool_calls"][0]["function"]["arguments"]) for i, d in deltas[1:]]
    assert len(pieces) > 5 and pieces[0][0] < text.index("</tool_call>")  # arguments stream before the close
    assert "".join(p for _, p in pieces) == arguments
    assert all(d["tool_calls"][0]["index"] == 0 for _, d in deltas)
    cut = ToolCallStream(TAGS, {"get_weather"}, stream_arguments=True)
    sent = cut.feed(text[:60]) + cut.finish()  # max_tokens ran out mid-call
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in sent[1:]) == text[49:60]


async def test_a_template_that_rejects_the_messages_is_400(tiny_llama: Any) -> None:
    from modelgate.engines.transformers_chat import TransformersEngine

    engine = TransformersEngine(str(tiny_llama), dtype="float32")
    engine.tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['content'] }}{% endfor %}"
    )
    with pytest.raises(BadRequest, match="chat template rejected the messages: System role not supported"):
        await serve_engine(engine).chat(chat(tools=[WEATHER]))  # the tool preamble needs a system message


async def test_auto_with_a_response_format_answers_json_or_calls_a_tool(backend: Any) -> None:
    schema = {"type": "object", "properties": {"k": {"enum": ["x", "y"]}}, "required": ["k"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "k", "schema": schema}}
    kinds = set()
    for seed in (1, 2, 3):
        result = await backend.chat(chat(tools=[ADD], response_format=fmt, n=5, seed=seed, max_tokens=100))
        for choice in result["choices"]:
            message = choice["message"]
            if "tool_calls" in message:
                assert choice["finish_reason"] == "tool_calls" and message["content"] is None
                assert_call(message["tool_calls"][0], {"add"})
                kinds.add("call")
            else:
                assert choice["finish_reason"] == "stop"
                check(json.loads(message["content"]), schema)
                kinds.add("json")
    assert kinds == {"call", "json"}  # with 15 samples the random model picks each way at least once
