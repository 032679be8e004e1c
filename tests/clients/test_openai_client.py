"""The openai package, 3.x (.venv-clients-new) and 2.x (.venv-clients-lc), against a live modelgate."""

from __future__ import annotations

import pytest

from tests.clients.conftest import SCRIPTS, Endpoints, client_env, run_script
from tests.fakes.openai_payloads import embedding_vector
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer


@pytest.mark.parametrize(("venv", "major"), [("new", "3."), ("lc", "2.")])
def test_openai_client(
    venv: str, major: str, server: LiveServer, endpoints: Endpoints, clean_upstream: FakeUpstreamThread
) -> None:
    out = run_script(
        venv,
        SCRIPTS / "openai_client.py",
        client_env(server, server.admin_token),
        endpoints.chat,
        endpoints.completions,
        endpoints.embeddings,
    )
    assert out["openai_version"].startswith(major)
    assert out["plain"] == {"content": "echo: What is MLflow?", "finish_reason": "stop", "usage": [5, 4, 9]}
    assert out["multi_turn"] == "echo: What is my name?"
    assert out["tool_call"] == {"finish_reason": "tool_calls", "name": "get_weather", "arguments": {"city": "Paris"}}
    assert out["tool_followup"] == "tool said: sunny"
    # Usage arrives once, in its own final chunk with no choices (clients.md §0.7).
    assert out["stream"]["text"] == "echo: stream this please"
    assert out["stream"]["usage_chunks"] == [{"choices": 0, "total": 7}]
    assert out["completion"] == "echo: Once upon a time"
    # The client asks for base64 by default and decodes it; the float request gets floats. Same vectors.
    assert out["embeddings"]["default"] == [embedding_vector("hello"), embedding_vector("world")]
    assert out["embeddings"]["float"] == embedding_vector("hello")
    assert out["responses"]["text"] == "echo: Tell me about responses"
    assert out["responses"]["status"] == "completed"
    assert out["responses"]["stream_text"] == "echo: stream a response"
    types = out["responses"]["stream_types"]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert out["not_found"] == {
        "status": 404,
        "body": {
            "error_code": "RESOURCE_DOES_NOT_EXIST",
            "message": "Endpoint with name 'no-such-endpoint-xyz' does not exist.",
        },
    }

    bodies = [r.json for r in clean_upstream.requests]
    embedding_calls = [b for b in bodies if b.get("model") == "text-embedding-3-small"]
    assert [b["input"] for b in embedding_calls] == [["hello", "world"], "hello"]
    responses_call = next(b for b in bodies if b.get("messages", [{}])[-1].get("content") == "Tell me about responses")
    assert responses_call["messages"][0] == {"role": "system", "content": "Be brief."}
