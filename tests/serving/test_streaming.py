"""Streaming mechanics: a client that leaves cancels the upstream call; `include_usage: false` means no usage."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.serving.support import external_entity, openai_client, requests_with, sse_events, wait_for
from tests.support.live import LiveServer, create_endpoint

STREAM_DELAY_MS = 20


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[FakeUpstreamThread]:
    """A fake that pauses before every SSE chunk, so a stream is still running when the client leaves."""
    with FakeUpstreamThread(api_key=UPSTREAM_KEY, stream_delay_ms=STREAM_DELAY_MS) as fake:
        yield fake


def test_client_disconnect_cancels_upstream(
    server: LiveServer, slow_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, external_entity(slow_upstream.base_url, "gpt-4o-mini"))
    marker = "disconnect-marker"
    # ~300 words at 20 ms per chunk: the full answer would take about 6 seconds to stream.
    prompt = marker + " " + " ".join(f"word{i}" for i in range(300))
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 4000, "stream": True}
    with server.client() as c, c.stream("POST", f"/serving-endpoints/{name}/invocations", json=body) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        received = [line for line in (next(lines) for _ in range(4)) if line]
    assert len(received) == 2 and all(line.startswith("data: {") for line in received)
    [sent] = requests_with(slow_upstream, marker)
    assert wait_for(lambda: sent.disconnected, timeout=5.0), "the upstream stream was not cancelled"
    assert sent.json["stream"] is True


def test_openai_client_closing_a_stream_cancels_upstream(
    server: LiveServer, slow_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, external_entity(slow_upstream.base_url, "gpt-4o-mini"))
    marker = "openai-close-marker"
    prompt = marker + " " + " ".join(f"w{i}" for i in range(300))
    with openai_client(server) as client:
        stream = client.chat.completions.create(model=name, messages=[{"role": "user", "content": prompt}], stream=True)
        first = next(iter(stream))
        stream.close()
    assert first.choices[0].delta.role == "assistant"
    [sent] = requests_with(slow_upstream, marker)
    assert wait_for(lambda: sent.disconnected, timeout=5.0), "the upstream stream was not cancelled"


def test_streaming_still_works_after_a_disconnect(
    server: LiveServer, slow_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    """A cancelled stream leaves nothing broken behind: the next stream on the same endpoint completes."""
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, external_entity(slow_upstream.base_url, "gpt-4o-mini"))
        body = {"messages": [{"role": "user", "content": " ".join(["w"] * 100)}], "stream": True}
        with c.stream("POST", f"/serving-endpoints/{name}/invocations", json=body) as resp:
            next(resp.iter_lines())
        resp2 = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={"messages": [{"role": "user", "content": "after the disconnect"}], "stream": True},
        )
    assert resp2.status_code == 200
    events = sse_events(resp2.text)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == (
        "echo: after the disconnect"
    )


@pytest.mark.parametrize("route", ["invocations", "openai"])
def test_include_usage_false_sends_no_usage_chunk(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str], route: str
) -> None:
    name = ep_name()
    body = {
        "messages": [{"role": "user", "content": "no usage please"}],
        "stream": True,
        "stream_options": {"include_usage": False},
    }
    with server.client() as c:
        create_endpoint(c, name, external_entity(upstream.base_url, "gpt-4o-mini"))
        if route == "openai":
            resp = c.post("/serving-endpoints/chat/completions", json={"model": name, **body})
        else:
            resp = c.post(f"/serving-endpoints/{name}/invocations", json=body)
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    assert all(e["choices"] for e in events), "a chunk without choices (a usage chunk) was sent"
    assert all("usage" not in e or e["usage"] is None for e in events)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "echo: no usage please"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def test_completions_include_usage_false(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    with server.client() as c:
        create_endpoint(
            c, name, external_entity(upstream.base_url, "gpt-3.5-turbo-instruct", task="llm/v1/completions")
        )
        body = {"prompt": "completion without usage", "stream": True, "stream_options": {"include_usage": False}}
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=body)
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    assert all(e["choices"] and e.get("usage") is None for e in events)
    assert "".join(e["choices"][0]["text"] for e in events) == "echo: completion without usage"


def test_stream_events_carry_one_id_and_object(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    """Every chunk of one stream, the usage chunk included, has the same id and `chat.completion.chunk`."""
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, external_entity(upstream.base_url, "gpt-4o-mini"))
        body = {"messages": [{"role": "user", "content": "same id everywhere"}], "stream": True}
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=body)
    events = sse_events(resp.text)
    assert len({e["id"] for e in events}) == 1
    assert {e["object"] for e in events} == {"chat.completion.chunk"}
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 4


def test_stream_request_body_sent_upstream(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    """The upstream is always asked for usage (so it can be reported) even when the caller did not ask."""
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, external_entity(upstream.base_url, "gpt-4o-mini"))
        body = {"messages": [{"role": "user", "content": "upstream stream body"}], "stream": True, "max_tokens": 9}
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=body)
    assert resp.status_code == 200
    [sent] = requests_with(upstream, "upstream stream body")
    assert sent.json == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "upstream stream body"}],
        "max_tokens": 9,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_events_are_forwarded_as_they_arrive(
    server: LiveServer, slow_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    """The first event reaches the client while the upstream is still streaming (nothing buffers the stream)."""
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, external_entity(slow_upstream.base_url, "gpt-4o-mini"))
    marker = "incremental-marker"
    # ~100 chunks at 20 ms each: the upstream needs about 2 s to finish.
    body = {"messages": [{"role": "user", "content": marker + " x" * 100}], "stream": True}
    with server.client() as c, c.stream("POST", f"/serving-endpoints/{name}/invocations", json=body) as resp:
        first = next(line for line in resp.iter_lines() if line)
        [sent] = requests_with(slow_upstream, marker)
        assert sent.status == 0, "the upstream had already finished: the stream was buffered"
    event = orjson.loads(first.removeprefix("data: "))
    assert event["choices"][0]["delta"]["role"] == "assistant"
