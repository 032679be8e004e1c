"""The official `openai` client against /serving-endpoints, and the same bodies on /invocations.

The fake upstream answers deterministically (tests/fakes/openai_payloads.py): chat says "echo: <last user
text>", token counts are word counts, so every value below is exact.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from tests.fakes import openai_payloads as p
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.serving.support import external_entity, requests_with, sse_events
from tests.support.live import LiveServer, create_endpoint

CHAT_EP = "oaiclient-chat"
COMPLETIONS_EP = "oaiclient-completions"
EMBEDDINGS_EP = "oaiclient-embeddings"

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location"],
        },
    },
}
TIME_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"utc_offset": {"type": "integer"}, "dst": {"type": "boolean"}},
            "required": ["utc_offset", "dst"],
        },
    },
}


@pytest.fixture(scope="module")
def endpoints(server: LiveServer, upstream: FakeUpstreamThread) -> Iterator[None]:
    """One chat, one completions and one embeddings endpoint, shared by this module's tests."""
    with server.client() as c:
        create_endpoint(c, CHAT_EP, external_entity(upstream.base_url, "gpt-4o-mini"))
        create_endpoint(
            c,
            COMPLETIONS_EP,
            external_entity(upstream.base_url, "gpt-3.5-turbo-instruct", task="llm/v1/completions"),
        )
        create_endpoint(
            c,
            EMBEDDINGS_EP,
            external_entity(upstream.base_url, "text-embedding-3-small", task="llm/v1/embeddings"),
        )
    yield
    with server.client() as c:
        for name in (CHAT_EP, COMPLETIONS_EP, EMBEDDINGS_EP):
            c.delete(f"/api/2.0/serving-endpoints/{name}")


pytestmark = pytest.mark.usefixtures("endpoints")


# -- chat ----------------------------------------------------------------------------------------------
def test_chat_plain(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    resp = oai.chat.completions.create(model=CHAT_EP, messages=[{"role": "user", "content": "plain chat marker"}])
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: plain chat marker"
    assert choice.finish_reason == "stop"
    assert resp.object == "chat.completion"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (3, 4, 7)
    [sent] = requests_with(upstream, "plain chat marker")
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "plain chat marker"}]}


def test_chat_multi_turn_with_system_message(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second multiturn question"},
    ]
    resp = oai.chat.completions.create(model=CHAT_EP, messages=messages)
    assert resp.choices[0].message.content == "echo: second multiturn question"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 3 + 2 + 2 + 3
    assert resp.usage.completion_tokens == 4
    [sent] = requests_with(upstream, "second multiturn question")
    assert sent.json["messages"] == messages


def test_chat_n_choices(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model=CHAT_EP, messages=[{"role": "user", "content": "two please"}], n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert [c.message.content for c in resp.choices] == ["echo: two please", "echo: two please"]
    assert resp.usage is not None and resp.usage.completion_tokens == 2 * 3


def test_chat_stop_sequence(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    resp = oai.chat.completions.create(
        model=CHAT_EP, messages=[{"role": "user", "content": "alpha beta STOP gamma"}], stop=["STOP"]
    )
    assert resp.choices[0].message.content == "echo: alpha beta "
    assert resp.choices[0].finish_reason == "stop"
    [sent] = requests_with(upstream, "alpha beta STOP gamma")
    assert sent.json["stop"] == ["STOP"]


def test_chat_max_tokens_gives_finish_reason_length(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    resp = oai.chat.completions.create(
        model=CHAT_EP, messages=[{"role": "user", "content": "maxtok one two three four"}], max_tokens=3
    )
    assert resp.choices[0].message.content == "echo: maxtok one"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    [sent] = requests_with(upstream, "maxtok one two three four")
    assert sent.json["max_tokens"] == 3


def test_chat_named_tool_choice(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    resp = oai.chat.completions.create(
        model=CHAT_EP,
        messages=[{"role": "user", "content": "what time is it, named tool"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id.startswith("call_")
    assert call.function.name == "get_time"
    assert json.loads(call.function.arguments) == {"utc_offset": 1, "dst": True}
    [sent] = requests_with(upstream, "what time is it, named tool")
    assert sent.json["tools"] == [WEATHER_TOOL, TIME_TOOL]
    assert sent.json["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


def test_chat_required_tool_choice(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    resp = oai.chat.completions.create(
        model=CHAT_EP,
        messages=[{"role": "user", "content": "weather in Paris, required tool"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    calls = resp.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert isinstance(calls[0], ChatCompletionMessageFunctionToolCall)
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"location": "Paris"}
    [sent] = requests_with(upstream, "weather in Paris, required tool")
    assert sent.json["tool_choice"] == "required"


def test_chat_tool_result_turn(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "weather in Paris, tool result turn"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": "22 degrees and sunny"},
    ]
    resp = oai.chat.completions.create(model=CHAT_EP, messages=messages, tools=[WEATHER_TOOL])
    assert resp.choices[0].message.content == "tool said: 22 degrees and sunny"
    assert resp.choices[0].finish_reason == "stop"
    [sent] = requests_with(upstream, "weather in Paris, tool result turn")
    # The history goes upstream as sent, except that the assistant's null `content` is left out.
    assert sent.json["messages"] == [messages[0], {k: v for k, v in messages[1].items() if k != "content"}, messages[2]]


def test_chat_response_format_json_schema(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {
            "name": "city_facts",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
                "required": ["city", "population"],
                "additionalProperties": False,
            },
        },
    }
    resp = oai.chat.completions.create(
        model=CHAT_EP,
        messages=[{"role": "user", "content": "facts about a city, json schema"}],
        response_format=response_format,
    )
    content = resp.choices[0].message.content
    assert content is not None and json.loads(content) == {"city": "Paris", "population": 1}
    [sent] = requests_with(upstream, "facts about a city, json schema")
    assert sent.json["response_format"] == response_format


def test_chat_streaming_reassembles_and_ends_with_usage_chunk(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=CHAT_EP,
            messages=[{"role": "user", "content": "stream me some words please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "echo: stream me some words please"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (5, 6, 11)
    # Usage comes once, in that final chunk only (ChatDatabricks would count it twice otherwise).
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_streaming_without_stream_options_still_reports_usage(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=CHAT_EP, messages=[{"role": "user", "content": "default usage stream"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: default usage stream"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 3 + 4


def test_chat_streaming_n_choices(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=CHAT_EP, messages=[{"role": "user", "content": "two streamed choices"}], stream=True, n=2
        )
    )
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {0: "echo: two streamed choices", 1: "echo: two streamed choices"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2 * 4


def test_chat_streaming_tool_call(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=CHAT_EP,
            messages=[{"role": "user", "content": "streamed tool call"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    names = [
        tc.function.name
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function and tc.function.name
    ]
    arguments = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function
    )
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"location": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


# -- completions ---------------------------------------------------------------------------------------
def test_completions_string_prompt(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    resp = oai.completions.create(model=COMPLETIONS_EP, prompt="complete this string prompt")
    assert [(c.index, c.text, c.finish_reason) for c in resp.choices] == [
        (0, "echo: complete this string prompt", "stop")
    ]
    assert resp.usage is not None and (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (4, 5)
    [sent] = requests_with(upstream, "complete this string prompt")
    assert sent.path == "/v1/completions"
    assert sent.json == {"model": "gpt-3.5-turbo-instruct", "prompt": "complete this string prompt"}


def test_completions_list_prompt(oai: openai.OpenAI) -> None:
    resp = oai.completions.create(model=COMPLETIONS_EP, prompt=["first list prompt", "second"], max_tokens=3)
    assert [(c.index, c.text, c.finish_reason) for c in resp.choices] == [
        (0, "echo: first list", "length"),
        (1, "echo: second", "stop"),
    ]


def test_completions_streaming(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.completions.create(
            model=COMPLETIONS_EP,
            prompt=["streamed completion one", "streamed two"],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {0: "echo: streamed completion one", 1: "echo: streamed two"}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 7)


def test_completions_streaming_string_prompt(oai: openai.OpenAI) -> None:
    chunks = list(oai.completions.create(model=COMPLETIONS_EP, prompt="single streamed prompt", stream=True))
    assert "".join(ch.text for c in chunks for ch in c.choices) == "echo: single streamed prompt"


# -- embeddings ----------------------------------------------------------------------------------------
def test_embeddings_default_base64_is_decoded_by_client(oai: openai.OpenAI, upstream: FakeUpstreamThread) -> None:
    resp = oai.embeddings.create(model=EMBEDDINGS_EP, input="embed me with the default encoding")
    assert len(resp.data) == 1
    vector = resp.data[0].embedding
    assert len(vector) == p.DEFAULT_EMBEDDING_DIMS
    assert vector == p.embedding_vector("embed me with the default encoding")
    assert resp.usage.prompt_tokens == 6
    [sent] = requests_with(upstream, "embed me with the default encoding")
    assert sent.path == "/v1/embeddings"
    assert sent.json["encoding_format"] == "base64"


def test_embeddings_float_list_input(oai: openai.OpenAI) -> None:
    resp = oai.embeddings.create(model=EMBEDDINGS_EP, input=["first float text", "second"], encoding_format="float")
    assert [d.index for d in resp.data] == [0, 1]
    assert resp.data[0].embedding == p.embedding_vector("first float text")
    assert resp.data[1].embedding == p.embedding_vector("second")
    assert resp.usage.prompt_tokens == 4


# -- the same bodies on /invocations ---------------------------------------------------------------------
def test_invocations_chat(server: LiveServer) -> None:
    body = {"messages": [{"role": "user", "content": "invocations chat"}], "max_tokens": 20}
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{CHAT_EP}/invocations", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["served-model-name"] == "gpt-4o-mini"
    assert resp.headers["content-type"] == "application/json"
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "echo: invocations chat"}
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_invocations_completions(server: LiveServer) -> None:
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{COMPLETIONS_EP}/invocations", json={"prompt": ["a b", "c"]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["served-model-name"] == "gpt-3-5-turbo-instruct"
    assert [(ch["index"], ch["text"]) for ch in resp.json()["choices"]] == [(0, "echo: a b"), (1, "echo: c")]


def test_invocations_embeddings(server: LiveServer) -> None:
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{EMBEDDINGS_EP}/invocations", json={"input": ["x y", "z"]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["served-model-name"] == "text-embedding-3-small"
    data = resp.json()
    assert data["object"] == "list"
    assert [d["embedding"] for d in data["data"]] == [p.embedding_vector("x y"), p.embedding_vector("z")]
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_invocations_streaming_chat(server: LiveServer) -> None:
    body = {"messages": [{"role": "user", "content": "invocations stream"}], "stream": True}
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{CHAT_EP}/invocations", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["served-model-name"] == "gpt-4o-mini"
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == (
        "echo: invocations stream"
    )
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 2 + 3


def test_openai_route_sets_served_model_name_header(server: LiveServer) -> None:
    body = {"model": CHAT_EP, "messages": [{"role": "user", "content": "header check"}]}
    with server.client() as c:
        resp = c.post("/serving-endpoints/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["served-model-name"] == "gpt-4o-mini"
    assert resp.json()["choices"][0]["message"]["content"] == "echo: header check"


def test_wrong_task_is_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model=CHAT_EP, prompt="a chat endpoint gets a prompt")
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["error_code"] == "BAD_REQUEST"


def test_unknown_endpoint_is_a_404(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="oaiclient-no-such", messages=[{"role": "user", "content": "hi"}])
    assert isinstance(info.value.body, dict) and info.value.body["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# -- models (discovery) --------------------------------------------------------------------------------
def test_models_list_and_retrieve(oai: openai.OpenAI) -> None:
    ids = {m.id: m for m in oai.models.list()}
    assert {CHAT_EP, COMPLETIONS_EP, EMBEDDINGS_EP} <= ids.keys()
    chat = ids[CHAT_EP]
    assert chat.object == "model" and chat.owned_by == "admin" and chat.created > 1_600_000_000
    got = oai.models.retrieve(EMBEDDINGS_EP)
    assert (got.id, got.object) == (EMBEDDINGS_EP, "model")
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("oaiclient-no-such")


def test_models_list_shows_only_what_the_caller_may_query(server: LiveServer) -> None:
    querier, viewer = f"q-{secrets.token_hex(4)}@example.com", f"v-{secrets.token_hex(4)}@example.com"
    with server.client() as admin:
        ep = admin.get(f"/api/2.0/serving-endpoints/{CHAT_EP}").json()
        acl = [
            {"user_name": querier, "permission_level": "CAN_QUERY"},
            {"user_name": viewer, "permission_level": "CAN_VIEW"},
        ]
        resp = admin.patch(f"/api/2.0/permissions/serving-endpoints/{ep['id']}", json={"access_control_list": acl})
        assert resp.status_code == 200, resp.text
    for user, expected in ((querier, {CHAT_EP}), (viewer, set())):
        client = openai.OpenAI(base_url=server.url + "/serving-endpoints", api_key=server.create_token(user))
        ours = {m.id for m in client.models.list()} & {CHAT_EP, COMPLETIONS_EP, EMBEDDINGS_EP}
        assert ours == expected, user
    with pytest.raises(openai.PermissionDeniedError):
        client.models.retrieve(CHAT_EP)  # the viewer may see it exists, not query it
