"""Tests for the fake OpenAI upstream, driven mostly through the real ``openai`` client."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes import openai_payloads as p
from tests.fakes.openai_upstream import FakeOpenAIUpstream, FakeUpstreamThread, run_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a place",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "ratio": {"type": "number"},
                "note": {"type": "string"},
            },
            "required": ["location", "days", "metric", "ratio"],
        },
    },
}
TIME_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}
WEATHER_ARGS = '{"location": "Paris", "days": 1, "metric": true, "ratio": 1}'


@pytest.fixture
def fake() -> Iterator[FakeUpstreamThread]:
    with run_in_thread(api_key="sk-test") as server:
        yield server


@pytest.fixture
def client(fake: FakeUpstreamThread) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    yield c
    c.close()


def _sse_events(body: str) -> list[str]:
    assert body.endswith("data: [DONE]\n\n")
    events = body.split("\n\n")
    assert events[-1] == ""
    assert all(e.startswith("data: ") for e in events[:-1])
    return [e[len("data: ") :] for e in events[:-1]]


# ------------------------------------------------------------------------ chat
def test_chat_echo_usage_and_recording(fake: FakeUpstreamThread, client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello big world"},
        ],
    )
    assert resp.id.startswith("chatcmpl-")
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o-mini"
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello big world"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (6, 4, 10)

    assert len(fake.requests) == 1
    rec = fake.requests[0]
    assert (rec.method, rec.path, rec.status, rec.disconnected) == ("POST", "/v1/chat/completions", 200, False)
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert rec.json["messages"][1] == {"role": "user", "content": "hello big world"}


def test_chat_content_parts_n_max_tokens_and_stop(client: openai.OpenAI) -> None:
    parts: list[Any] = [
        {"type": "text", "text": "alpha beta"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "gamma"},
    ]
    resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": parts}], n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert [c.message.content for c in resp.choices] == ["echo: alpha beta gamma"] * 2
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (3, 8)

    msgs: Any = [{"role": "user", "content": "one two three four"}]
    cut = client.chat.completions.create(model="m", messages=msgs, max_tokens=3)
    assert cut.choices[0].message.content == "echo: one two"
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 3

    stopped = client.chat.completions.create(model="m", messages=msgs, stop=["three", "two"])
    assert stopped.choices[0].message.content == "echo: one "
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage is not None and stopped.usage.completion_tokens == 2


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "one two"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["echo: ", "one ", "two"]
    assert chunks[4].choices[0].finish_reason == "stop"
    assert chunks[4].choices[0].delta.content is None
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)
    assert len(chunks) == 6


def test_chat_stream_wire_format(fake: FakeUpstreamThread) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(fake.base_url + "/chat/completions", json=body, headers={"Authorization": "Bearer sk-test"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    events = [json.loads(e) for e in _sse_events(r.text)[:-1]]
    assert [e["choices"][0]["delta"] for e in events] == [
        {"role": "assistant", "content": ""},
        {"content": "echo: "},
        {"content": "x"},
        {},
    ]
    assert all("usage" not in e for e in events)
    assert [e["choices"][0]["finish_reason"] for e in events] == [None, None, None, "stop"]


# ----------------------------------------------------------------------- tools
def test_tool_call_auto_named_none_and_followup(client: openai.OpenAI) -> None:
    msgs: Any = [{"role": "user", "content": "weather in Paris?"}]
    resp = client.chat.completions.create(model="m", messages=msgs, tools=[WEATHER_TOOL, TIME_TOOL])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == WEATHER_ARGS
    assert resp.usage is not None and resp.usage.completion_tokens == len(WEATHER_ARGS.split())

    named = client.chat.completions.create(
        model="m",
        messages=msgs,
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    named_call = named.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert named_call.function.name == "get_time"  # type: ignore[union-attr]
    assert named_call.function.arguments == '{"tz": "Paris"}'  # type: ignore[union-attr]

    plain = client.chat.completions.create(model="m", messages=msgs, tools=[WEATHER_TOOL], tool_choice="none")
    assert plain.choices[0].message.content == "echo: weather in Paris?"
    assert plain.choices[0].message.tool_calls is None

    followup: Any = [
        *msgs,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "22C and sunny"},
    ]
    answer = client.chat.completions.create(model="m", messages=followup, tools=[WEATHER_TOOL])
    assert answer.choices[0].message.content == "tool said: 22C and sunny"
    assert answer.choices[0].finish_reason == "stop"


def test_tool_call_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "go"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.tool_calls is not None
    head = first.tool_calls[0]
    assert (head.index, head.type) == (0, "function")
    assert head.id is not None and head.id.startswith("call_")
    assert head.function is not None and head.function.name == "get_weather"
    assert head.function.arguments == ""
    fragments = [c.choices[0].delta.tool_calls[0].function.arguments for c in chunks[1:-1]]  # type: ignore[index,union-attr]
    assert len(fragments) > 2
    assert "".join(fragments) == WEATHER_ARGS  # type: ignore[arg-type]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_response_format(client: openai.OpenAI) -> None:
    msgs: Any = [{"role": "user", "content": "hi there"}]
    obj = client.chat.completions.create(model="m", messages=msgs, response_format={"type": "json_object"})
    assert obj.choices[0].message.content == '{"echo": "hi there"}'

    schema: Any = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "pet": {"$ref": "#/$defs/Pet"},
            "kind": {"enum": ["a", "b"]},
            "nick": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "unused": {"type": "number"},
        },
        "required": ["name", "age", "tags", "pet", "kind", "nick"],
        "$defs": {"Pet": {"type": "object", "properties": {"good": {"type": "boolean"}}, "required": ["good"]}},
    }
    resp = client.chat.completions.create(
        model="m",
        messages=msgs,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    assert json.loads(resp.choices[0].message.content or "") == {
        "name": "Paris",
        "age": 1,
        "tags": [],
        "pet": {"good": True},
        "kind": "a",
        "nick": "Paris",
    }


# ------------------------------------------------------------ completions etc.
def test_completions_prompts_and_n(client: openai.OpenAI) -> None:
    resp = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=["a b", "c"], n=2)
    assert resp.object == "text_completion"
    assert resp.model == "gpt-3.5-turbo-instruct"
    assert [(c.index, c.text, c.finish_reason) for c in resp.choices] == [
        (0, "echo: a b", "stop"),
        (1, "echo: a b", "stop"),
        (2, "echo: c", "stop"),
        (3, "echo: c", "stop"),
    ]
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (3, 10, 13)

    single = client.completions.create(model="m", prompt="say this please", max_tokens=2)
    assert (single.choices[0].text, single.choices[0].finish_reason) == ("echo: say", "length")


def test_completions_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(model="m", prompt="x y", stream=True, stream_options={"include_usage": True})
    )
    assert all(c.object == "text_completion" for c in chunks)
    assert [c.choices[0].text for c in chunks[:-1]] == ["echo: ", "x ", "y", ""]
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None, None, None, "stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)


def test_embeddings_base64_default_and_float(fake: FakeUpstreamThread, client: openai.OpenAI) -> None:
    resp = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"])
    assert fake.requests[-1].json["encoding_format"] == "base64"  # the client's default
    assert resp.model == "text-embedding-3-small"
    assert [d.index for d in resp.data] == [0, 1]
    assert resp.data[0].embedding == p.embedding_vector("hello world")
    assert resp.data[1].embedding == p.embedding_vector("bye")
    assert len(resp.data[0].embedding) == 8
    assert math.isclose(math.sqrt(sum(v * v for v in resp.data[0].embedding)), 1.0, rel_tol=1e-6)
    assert resp.data[0].embedding != resp.data[1].embedding
    assert (resp.usage.prompt_tokens, resp.usage.total_tokens) == (3, 3)

    floats = client.embeddings.create(model="e", input="hello world", encoding_format="float", dimensions=16)
    assert fake.requests[-1].json["encoding_format"] == "float"
    assert floats.data[0].embedding == p.embedding_vector("hello world", 16)
    assert len(floats.data[0].embedding) == 16

    raw = httpx.post(
        fake.base_url + "/embeddings",
        json={"model": "e", "input": [[1, 2, 3]], "encoding_format": "base64"},
        headers={"Authorization": "Bearer sk-test"},
    ).json()
    assert raw["data"][0]["embedding"] == p.encode_base64(p.embedding_vector("1 2 3"))
    assert raw["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-3.5-turbo-instruct"]
    assert client.models.retrieve("gpt-4o").owned_by == "modelgate-fake"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


# --------------------------------------------------------- failures and auth
@pytest.mark.parametrize(
    ("status", "exc_type", "retry_after"),
    [
        (400, openai.BadRequestError, None),
        (429, openai.RateLimitError, "1"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, "1"),
    ],
)
def test_fail_model_injection(
    client: openai.OpenAI, status: int, exc_type: type[openai.APIStatusError], retry_after: str | None
) -> None:
    with pytest.raises(exc_type) as info:
        client.chat.completions.create(model=f"fail-{status}", messages=[{"role": "user", "content": "x"}])
    err = info.value
    assert err.status_code == status
    assert err.response.headers.get("retry-after") == retry_after
    assert err.message.endswith(f"Injected {status} error")
    body = err.response.json()
    assert body["error"]["message"] == f"Injected {status} error"
    assert body["error"]["code"] == p.ERROR_KINDS[status][1]


def test_fail_next_control_and_client_retry(fake: FakeUpstreamThread, client: openai.OpenAI) -> None:
    r = httpx.post(fake.url + "/__control/fail_next", json={"status": 503, "count": 2, "retry_after": 1})
    assert r.json() == {"ok": True}
    msgs: Any = [{"role": "user", "content": "x"}]
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="m", messages=msgs)
        assert info.value.response.headers["retry-after"] == "1"
    assert client.chat.completions.create(model="m", messages=msgs).choices[0].message.content == "echo: x"

    fake.fail_next(429, retry_after=0.1)
    retrying = client.with_options(max_retries=1)
    assert retrying.embeddings.create(model="e", input="a").data[0].embedding == p.embedding_vector("a")
    assert [r.status for r in fake.requests[-2:]] == [429, 200]

    listed = httpx.get(fake.url + "/__control/requests").json()
    assert [r["status"] for r in listed] == [503, 503, 200, 429, 200]
    assert listed[0]["json"]["messages"] == msgs
    httpx.post(fake.url + "/__control/reset")
    assert fake.requests == []


def test_slow_model(client: openai.OpenAI) -> None:
    started = time.monotonic()
    resp = client.chat.completions.create(model="slow-300", messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - started >= 0.3
    assert resp.model == "slow-300"


def test_bad_requests(fake: FakeUpstreamThread) -> None:
    auth = {"Authorization": "Bearer sk-test"}
    bad_json = httpx.post(fake.base_url + "/chat/completions", content=b"{nope", headers=auth)
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    no_model = httpx.post(fake.base_url + "/embeddings", json={"input": "x"}, headers=auth)
    assert (no_model.status_code, no_model.json()["error"]["param"]) == (400, "model")
    unknown = httpx.get(fake.base_url + "/nope", headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/nope)"


def test_auth_rejection(fake: FakeUpstreamThread) -> None:
    bad = openai.OpenAI(base_url=fake.base_url, api_key="wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.status_code == 401
    assert info.value.response.json() == {
        "error": {
            "message": "Incorrect API key provided",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert fake.requests[-1].status == 401


def test_custom_api_key_header() -> None:
    with run_in_thread(api_key_header=("X-Api-Key", "abc"), base_path="/serving") as fake:
        assert fake.base_url == fake.url + "/serving"
        url = fake.base_url + "/embeddings"
        body = {"model": "e", "input": "x"}
        assert httpx.post(url, json=body, headers={"Authorization": "Bearer abc"}).status_code == 401
        ok = httpx.post(url, json=body, headers={"x-api-key": "abc"})
        assert ok.status_code == 200
        assert ok.json()["data"][0]["embedding"] == p.embedding_vector("x")


def test_disconnect_mid_stream_is_recorded() -> None:
    with run_in_thread(stream_delay_ms=50) as fake:
        words = " ".join(f"w{i}" for i in range(40))
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": words}]}
        with httpx.Client() as http:
            with http.stream("POST", fake.base_url + "/chat/completions", json=body) as resp:
                lines = resp.iter_lines()
                assert next(lines).startswith("data: ")
            deadline = time.monotonic() + 5
            while not fake.requests[0].disconnected and time.monotonic() < deadline:
                time.sleep(0.02)
            assert fake.requests[0].disconnected is True
            short = {**body, "messages": [{"role": "user", "content": "a b"}]}
            complete = http.post(fake.base_url + "/chat/completions", json=short)
            assert complete.text.endswith("data: [DONE]\n\n")
            assert fake.requests[1].disconnected is False


def test_tcp_nodelay_and_keep_alive(fake: FakeUpstreamThread) -> None:
    assert httpx.get(fake.url + "/__control/conn").json() == {"tcp_nodelay": True, "keep_alive": True}


# --------------------------------------------------------------- other modes
async def test_in_process_async_server() -> None:
    async with FakeOpenAIUpstream(base_path="/openai/v1", record=False) as fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/openai/v1"
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="any", max_retries=0)
        try:
            resp = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "async hi"}])
        finally:
            await client.close()
        assert resp.choices[0].message.content == "echo: async hi"
        assert fake.requests == []


def test_subprocess_mode() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_upstream", "--port", "0", "--api-key", "k", "--no-record"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split(" ", 1)[1]
        assert int(url.rsplit(":", 1)[1]) > 0
        with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as c:
            resp = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "sub"}])
        assert resp.choices[0].message.content == "echo: sub"
        assert httpx.get(url + "/__control/requests").json() == []
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


# ---------------------------------------------------------------- pure helpers
def test_apply_limits_and_pieces() -> None:
    assert p.word_pieces("echo: a  b") == ["echo: ", "a  ", "b"]
    assert p.apply_limits("a b c d", 2, None) == ("a b", "length")
    assert p.apply_limits("a b c d", 10, "c") == ("a b ", "stop")
    assert p.apply_limits("a b c d", 1, ["d"]) == ("a", "length")
    assert p.apply_limits("a b", None, ["zz"]) == ("a b", "stop")
