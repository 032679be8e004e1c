"""Provider `anthropic` end to end: the official OpenAI client → live modelgate → the fake Messages API.

Each test asserts the exact request the fake received (headers, body) as well as what came back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.anthropic_upstream import REDACTED_DATA, FakeAnthropicThread, signature_for
from tests.providers.client_calls import invoke, stream_thinking, text_before_error
from tests.providers.conftest import ANTHROPIC_KEY
from tests.providers.sent import only_sent, sent_with
from tests.serving.support import sse_events
from tests.support.live import LiveServer, create_endpoint

Json = dict[str, Any]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_plain_chat_translates_every_field(
    oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    resp = oai.chat.completions.create(
        model=name,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": f"hello {name} STOP here"},
        ],
        stop=["STOP"],
        temperature=0.5,
        top_p=0.9,
        max_tokens=50,
        user="alice",
        extra_body={"top_k": 7},
    )
    found = sent_with(anthropic_fake, name)
    assert len(found) == 1
    rec = found[0]
    assert rec.path == "/v1/messages"
    assert rec.headers["x-api-key"] == ANTHROPIC_KEY
    assert rec.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in rec.headers
    assert rec.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": f"hello {name} STOP here"},
        ],
        "stop_sequences": ["STOP"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 7,
        "metadata": {"user_id": "alice"},
    }
    assert resp.choices[0].message.content == f"echo: hello {name} "
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.role == "assistant"
    # input words: system 3 + 2 + 2 + 4; output words: 3
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (11, 3, 14)


def test_default_max_tokens_and_length_finish(
    oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"no limit {name}"}])
    assert only_sent(anthropic_fake, name)["max_tokens"] == 4096
    resp = oai.chat.completions.create(
        model=name, messages=[{"role": "user", "content": f"a b c {name}"}], max_tokens=2
    )
    assert resp.choices[0].message.content == "echo: a"
    assert resp.choices[0].finish_reason == "length"


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tools_and_tool_choice(
    oai: openai.OpenAI,
    anthropic_fake: FakeAnthropicThread,
    anthropic_endpoint: Callable[..., str],
    tool_choice: Any,
    parallel: bool | None,
    expected: Json,
) -> None:
    name = anthropic_endpoint()
    extra = {"parallel_tool_calls": parallel} if parallel is not None else {}
    resp = oai.chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": f"weather please {name}"}],
        tools=[WEATHER_TOOL],
        tool_choice=tool_choice,
        **extra,
    )
    body = only_sent(anthropic_fake, name)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
            "description": "Weather in a city",
        }
    ]
    assert body["tool_choice"] == expected
    choice = resp.choices[0]
    if tool_choice == "none":
        assert choice.message.tool_calls is None
        assert choice.finish_reason == "stop"
    else:
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        assert choice.message.tool_calls is not None
        (call,) = choice.message.tool_calls
        assert call.id.startswith("toolu_")
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_tool_results_merge_into_one_user_turn(
    oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    messages: list[Any] = [
        {"role": "user", "content": f"two cities {name}"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "toolu_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
                {
                    "id": "toolu_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_a", "content": "cold"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "warm"},
    ]
    resp = oai.chat.completions.create(model=name, messages=messages, tools=[WEATHER_TOOL])
    body = only_sent(anthropic_fake, name)
    assert body["messages"] == [
        {"role": "user", "content": f"two cities {name}"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "cold"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "warm"},
            ],
        },
    ]
    assert resp.choices[0].message.content == "tool said: cold warm"


def test_streamed_tool_call_deltas(
    oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    tool = {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}, "late": {"type": "boolean"}},
                "required": ["city", "nights", "late"],
            },
        },
    }
    stream = oai.chat.completions.create(
        model=name, messages=[{"role": "user", "content": f"book it {name}"}], tools=[tool], stream=True
    )
    chunks = list(stream)
    assert only_sent(anthropic_fake, name)["stream"] is True
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(calls) > 3  # the arguments arrive in several fragments
    first, rest = calls[0], calls[1:]
    assert (first.index, first.type) == (0, "function")
    assert first.id is not None and first.id.startswith("toolu_")
    assert first.function is not None and first.function.name == "book"
    assert first.function.arguments == ""
    assert all(c.index == 0 and c.id is None and c.function and c.function.name is None for c in rest)
    arguments = "".join(c.function.arguments or "" for c in rest if c.function)
    assert json.loads(arguments) == {"city": "Paris", "nights": 1, "late": True}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 1)


def test_streamed_text_has_usage_from_message_start_and_delta(
    oai: openai.OpenAI, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    stream = oai.chat.completions.create(
        model=name, messages=[{"role": "user", "content": f"one two three {name}"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"echo: one two three {name}"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (
        4,
        5,
        9,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_structured_output_via_forced_tool(
    oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str], stream: bool
) -> None:
    name = anthropic_endpoint()
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    kwargs: Any = {
        "model": name,
        "messages": [{"role": "user", "content": f"structured {name}"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}},
    }
    if stream:
        chunks = list(oai.chat.completions.create(stream=True, **kwargs))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    else:
        resp = oai.chat.completions.create(**kwargs)
        content = resp.choices[0].message.content or ""
        finishes = [resp.choices[0].finish_reason]
        assert resp.choices[0].message.tool_calls is None
    assert json.loads(content) == {"answer": "Paris"}
    assert finishes == ["stop"]
    body = only_sent(anthropic_fake, name)
    assert body["tools"] == [
        {"name": "reply", "description": "Answer with an object matching this schema.", "input_schema": schema}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "reply"}


def test_json_object_format(
    oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    resp = oai.chat.completions.create(
        model=name, messages=[{"role": "user", "content": f"json {name}"}], response_format={"type": "json_object"}
    )
    assert resp.choices[0].message.content == "{}"
    assert only_sent(anthropic_fake, name)["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_reasoning_blocks_and_round_trip(
    server: LiveServer, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    with server.client() as c:
        first = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={
                "messages": [{"role": "user", "content": f"think then redact {name}"}],
                "thinking": {"type": "enabled", "budget_tokens": 2048},
            },
        )
        assert first.status_code == 200, first.text
        body = only_sent(anthropic_fake, name)
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        assert body["max_tokens"] == 4096
        thought = "The user wrote 4 words; answer plainly."
        message = first.json()["choices"][0]["message"]
        assert message["content"] == [
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": thought, "signature": signature_for(thought)}],
            },
            {"type": "reasoning", "summary": [{"type": "summary_encrypted_text", "data": REDACTED_DATA}]},
            {"type": "text", "text": f"echo: think then redact {name}"},
        ]
        # Multi-turn: the assistant message goes back as it came; the fake rejects any changed signature.
        second = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={
                "messages": [
                    {"role": "user", "content": f"think then redact {name}"},
                    message,
                    {"role": "user", "content": f"and again {name}"},
                ],
                "thinking": {"type": "enabled", "budget_tokens": 2048},
            },
        )
        assert second.status_code == 200, second.text
        history = sent_with(anthropic_fake, f"and again {name}")[0].json["messages"][1]
        assert history["content"] == [
            {"type": "thinking", "thinking": thought, "signature": signature_for(thought)},
            {"type": "redacted_thinking", "data": REDACTED_DATA},
            {"type": "text", "text": f"echo: think then redact {name}"},
        ]
        # A changed signature reaches the provider unmodified too, and the provider's refusal comes back.
        message["content"][0]["summary"][0]["signature"] = "sig-forged"
        forged = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={"messages": [{"role": "user", "content": "q"}, message, {"role": "user", "content": "again"}]},
        )
        assert forged.status_code == 400
        assert forged.json()["external_model_message"] == {
            "type": "invalid_request_error",
            "message": "messages.1.content.0: Invalid `signature` in `thinking` block",
        }


@pytest.mark.parametrize(("effort", "budget", "max_tokens"), [("low", 2048, 4096), ("high", 16384, 20480)])
def test_reasoning_effort_maps_to_thinking_budget(
    oai: openai.OpenAI,
    anthropic_fake: FakeAnthropicThread,
    anthropic_endpoint: Callable[..., str],
    effort: Any,
    budget: int,
    max_tokens: int,
) -> None:
    name = anthropic_endpoint()
    oai.chat.completions.create(
        model=name, messages=[{"role": "user", "content": f"effort {name}"}], reasoning_effort=effort
    )
    body = only_sent(anthropic_fake, name)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens


def test_streamed_reasoning_deltas(server: LiveServer, anthropic_endpoint: Callable[..., str]) -> None:
    name = anthropic_endpoint()
    streamed = stream_thinking(server, name, f"stream thinking {name}", 1024)
    reasoning = [block["summary"][0] for block in streamed.reasoning]
    thought = "The user wrote 3 words; answer plainly."
    assert "".join(r["text"] for r in reasoning) == thought
    assert [r["signature"] for r in reasoning if "signature" in r] == [signature_for(thought)]
    assert streamed.text == f"echo: stream thinking {name}"
    assert streamed.events[-1]["usage"]["completion_tokens"] == 4 + 7


@pytest.mark.parametrize("stream", [False, True])
def test_n_fans_out(
    oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str], stream: bool
) -> None:
    name = anthropic_endpoint()
    kwargs: Any = {"model": name, "messages": [{"role": "user", "content": f"twice {name}"}], "n": 2}
    if stream:
        chunks = list(oai.chat.completions.create(stream=True, **kwargs))
        texts: dict[int, str] = {}
        for c in chunks:
            for ch in c.choices:
                texts[ch.index] = texts.get(ch.index, "") + (ch.delta.content or "")
        assert texts == {0: f"echo: twice {name}", 1: f"echo: twice {name}"}
        assert len({c.id for c in chunks}) == 1
        usage = chunks[-1].usage
    else:
        resp = oai.chat.completions.create(**kwargs)
        assert [(c.index, c.message.content) for c in resp.choices] == [
            (0, f"echo: twice {name}"),
            (1, f"echo: twice {name}"),
        ]
        usage = resp.usage
    bodies = sent_with(anthropic_fake, name)
    assert len(bodies) == 2
    assert all("n" not in r.json for r in bodies)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (4, 6, 10)


@pytest.mark.parametrize(
    ("model", "status", "code", "retry_after", "upstream"),
    [
        (
            "fail-429",
            429,
            "REQUEST_LIMIT_EXCEEDED",
            "3",
            {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"},
        ),
        ("fail-529", 503, "TEMPORARILY_UNAVAILABLE", "1", {"type": "overloaded_error", "message": "Overloaded"}),
        ("fail-401", 400, "BAD_REQUEST", None, {"type": "authentication_error", "message": "Injected 401 error"}),
        ("fail-500", 500, "INTERNAL_ERROR", None, {"type": "api_error", "message": "Injected 500 error"}),
    ],
)
def test_provider_errors(
    server: LiveServer,
    anthropic_endpoint: Callable[..., str],
    model: str,
    status: int,
    code: str,
    retry_after: str | None,
    upstream: Json,
) -> None:
    name = anthropic_endpoint(model=model)
    with server.client() as c:
        for stream in (False, True):
            resp = c.post(
                f"/serving-endpoints/{name}/invocations",
                json={"messages": [{"role": "user", "content": "hi"}], "stream": stream},
            )
            assert resp.status_code == status
            assert resp.headers.get("retry-after") == retry_after
            assert resp.json() == {
                "error_code": code,
                "message": "Received error from anthropic",
                "external_model_message": upstream,
            }
    assert ANTHROPIC_KEY not in server.log()


def test_context_overflow_and_rate_limit_through_openai_client(
    oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"overflow {name}"}])
    assert info.value.body == {
        "error_code": "BAD_REQUEST",
        "message": "Received error from anthropic",
        "external_model_message": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 201234 tokens > 200000 maximum",
        },
    }
    anthropic_fake.fail_next(429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as limited:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"limited {name}"}])
    assert limited.value.response.headers["retry-after"] == "7"


def test_mid_stream_overload_becomes_error_event(server: LiveServer, anthropic_endpoint: Callable[..., str]) -> None:
    name = anthropic_endpoint(model="stream-overload")
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "a long answer"}], "stream": True})
    assert resp.status_code == 200
    events = sse_events(resp.text)
    last = events[-1]
    assert last["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert last["external_model_message"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert text_before_error(events) == "echo: a long answer"


def test_api_key_from_secret_reference(
    server: LiveServer, oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, ep_name: Callable[..., str]
) -> None:
    scope = ep_name("scope")
    name = ep_name()
    with server.client() as c:
        assert c.post("/api/2.0/secrets/scopes/create", json={"scope": scope}).status_code == 200
        create_endpoint(
            c,
            name,
            {
                "external_model": {
                    "name": "claude-haiku-4-5",
                    "provider": "anthropic",
                    "task": "llm/v1/chat",
                    "anthropic_config": {
                        "anthropic_api_key": f"{{{{secrets/{scope}/anthropic}}}}",
                        "anthropic_api_base": anthropic_fake.url,
                    },
                }
            },
        )
        missing = c.post(
            f"/serving-endpoints/{name}/invocations", json={"messages": [{"role": "user", "content": "x"}]}
        )
        assert missing.status_code == 503
        assert missing.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert f"secret {scope}/anthropic, which does not exist" in missing.json()["message"]
        put = c.post("/api/2.0/secrets/put", json={"scope": scope, "key": "anthropic", "string_value": ANTHROPIC_KEY})
        assert put.status_code == 200
        got = c.get(f"/api/2.0/serving-endpoints/{name}")
        assert ANTHROPIC_KEY not in got.text
    resp = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"secret {name}"}])
    assert resp.choices[0].message.content == f"echo: secret {name}"
    assert sent_with(anthropic_fake, name)[0].headers["x-api-key"] == ANTHROPIC_KEY


def test_config_validation(server: LiveServer, ep_name: Callable[..., str]) -> None:
    with server.client() as c:
        body = {
            "name": ep_name(),
            "config": {
                "served_entities": [
                    {
                        "external_model": {
                            "name": "claude",
                            "provider": "anthropic",
                            "task": "llm/v1/chat",
                            "anthropic_config": {},
                        }
                    }
                ]
            },
        }
        resp = c.post("/api/2.0/serving-endpoints", json=body)
        assert resp.status_code == 400
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "'anthropic_api_key'" in resp.json()["message"]


def test_palm_is_retired(server: LiveServer, ep_name: Callable[..., str]) -> None:
    name = ep_name()
    entity = {
        "external_model": {
            "name": "chat-bison-001",
            "provider": "palm",
            "task": "llm/v1/chat",
            "palm_config": {"palm_api_key_plaintext": "palm-key"},
        }
    }
    with server.client() as c:
        create_endpoint(c, name, entity)
        for stream in (False, True):
            resp = c.post(
                f"/serving-endpoints/{name}/invocations",
                json={"messages": [{"role": "user", "content": "hi"}], "stream": stream},
            )
            assert resp.status_code == 400
            assert resp.json()["error_code"] == "BAD_REQUEST"
            assert "google-cloud-vertex-ai" in resp.json()["message"]
            assert "palm-key" not in resp.text


def test_unsupported_task_is_clear(server: LiveServer, anthropic_endpoint: Callable[..., str]) -> None:
    name = anthropic_endpoint()
    resp = httpx.post(
        f"{server.url}/serving-endpoints/{name}/invocations",
        headers={"Authorization": f"Bearer {server.admin_token}"},
        json={
            "messages": [
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}
            ]
        },
    )
    assert resp.status_code == 400
    assert resp.json()["message"] == "Bad request: messages[0]: provider 'anthropic' does not accept audio input"
