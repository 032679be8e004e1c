"""POST /serving-endpoints/responses: the Responses API over a chat endpoint, checked on the wire both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.clients.conftest import Endpoints
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _post(server: LiveServer, body: dict[str, Any]) -> Any:
    with server.client() as c:
        return c.post("/serving-endpoints/responses", json=body)


def test_request_is_translated_to_chat(
    server: LiveServer, endpoints: Endpoints, clean_upstream: FakeUpstreamThread
) -> None:
    body = {
        "model": endpoints.chat,
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "one two three four"}]}],
        "max_output_tokens": 3,
        "temperature": 0.2,
    }
    resp = _post(server, body)
    assert resp.status_code == 200
    assert resp.headers["served-model-name"] == "chat"
    out = resp.json()
    assert out["object"] == "response" and out["model"] == endpoints.chat
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert out["output"][0]["content"][0] == {
        "type": "output_text",
        "text": "echo: one two",
        "annotations": [],
        "logprobs": [],
    }
    assert out["usage"]["input_tokens"] == 6 and out["usage"]["output_tokens"] == 3
    sent = clean_upstream.requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "one two three four"}]},
    ]
    assert (sent["max_tokens"], sent["temperature"]) == (3, 0.2)


def test_function_calls_round_trip(
    server: LiveServer, endpoints: Endpoints, clean_upstream: FakeUpstreamThread
) -> None:
    first = _post(server, {"model": endpoints.chat, "input": "Weather in Paris?", "tools": [TOOL]}).json()
    call = first["output"][0]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert clean_upstream.requests[-1].json["tools"] == [
        {"type": "function", "function": {k: TOOL[k] for k in ("name", "description", "parameters")}}
    ]
    follow = {
        "model": endpoints.chat,
        "tools": [TOOL],
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call["call_id"],
                "name": "get_weather",
                "arguments": call["arguments"],
            },
            {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
        ],
    }
    second = _post(server, follow).json()
    assert second["output"][0]["content"][0]["text"] == "tool said: sunny"
    sent = clean_upstream.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call["call_id"]
    assert sent[2] == {"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"}


def test_streamed_function_call(server: LiveServer, endpoints: Endpoints) -> None:
    resp = _post(server, {"model": endpoints.chat, "input": "Weather?", "tools": [TOOL], "stream": True})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in resp.text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines)  # no event: lines, no comments
    events = [json.loads(line[6:]) for line in lines]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = events[-1]
    assert done["type"] == "response.completed"
    item = done["response"]["output"][0]
    assert item["type"] == "function_call" and json.loads(item["arguments"]) == {"city": "Paris"}
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert deltas == item["arguments"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "EP"}, "input"),
        ({"model": "EP", "input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"model": "EP", "input": "hi", "tools": [{"type": "web_search"}]}, "web_search"),
        ({"model": "EP", "input": [{"type": "mystery"}]}, "mystery"),
        ({"model": "EP", "input": "hi", "bogus": True}, "bogus"),
    ],
)
def test_bad_requests_are_400(server: LiveServer, endpoints: Endpoints, body: dict[str, Any], fragment: str) -> None:
    if body.get("model") == "EP":
        body = {**body, "model": endpoints.chat}
    resp = _post(server, body)
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "BAD_REQUEST"
    assert fragment in resp.json()["message"]


def test_embeddings_endpoint_is_refused(server: LiveServer, endpoints: Endpoints) -> None:
    resp = _post(server, {"model": endpoints.embeddings, "input": "hi"})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "BAD_REQUEST"
