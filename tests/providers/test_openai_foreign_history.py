"""Assistant history written by another provider (a fallback, a traffic split, a client echoing messages) sent
to OpenAI-compatible upstreams: the fake OpenAI server takes only what the openai SDK's request types take,
so reasoning blocks and Google's extra_content must be translated or dropped, streamed or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.providers.client_calls import invoke
from tests.serving.support import external_entity, requests_with
from tests.support.live import LiveServer, create_endpoint

GEMINI_SIG = {"google": {"thought_signature": "c2ln"}}


def foreign_history(marker: str) -> list[Any]:
    return [
        {"role": "user", "content": marker},
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Hmm.", "signature": "ant-sig"}]},
                {"type": "reasoning", "summary": [{"type": "summary_encrypted_text", "data": "redacted"}]},
                {"type": "text", "text": "Let me check."},
            ],
            "extra_content": GEMINI_SIG,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    "extra_content": GEMINI_SIG,
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "content": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "x"}]}]},
        {"role": "user", "content": "and tomorrow?"},
    ]


@pytest.fixture
def make_endpoint(server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]) -> Callable[..., str]:
    def make(provider: str) -> str:
        name = ep_name(provider)
        if provider == "openai":
            entity = external_entity(upstream.base_url, "gpt-4o-mini")
        else:
            auth = {"bearer_token_auth": {"token_plaintext": UPSTREAM_KEY}}
            entity = {
                "external_model": {
                    "name": "gpt-4o-mini",
                    "provider": "custom",
                    "task": "llm/v1/chat",
                    "custom_provider_config": {"custom_provider_url": upstream.base_url, **auth},
                }
            }
        with server.client() as c:
            create_endpoint(c, name, entity)
        return name

    return make


@pytest.mark.parametrize("stream", [False, True])
def test_openai_gets_reasoning_dropped_and_no_extra_content(
    server: LiveServer, upstream: FakeUpstreamThread, make_endpoint: Callable[..., str], stream: bool
) -> None:
    name = make_endpoint("openai")
    marker = f"foreign history {name} {stream}"
    resp = invoke(server, name, {"messages": foreign_history(marker), "stream": stream})
    assert resp.status_code == 200, resp.text
    [sent] = requests_with(upstream, marker)
    assert sent.json["messages"][1:4] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "content": ""},
    ]


def test_custom_keeps_google_extra_content_for_gemini_compatible_servers(
    server: LiveServer, make_endpoint: Callable[..., str], upstream: FakeUpstreamThread
) -> None:
    name = make_endpoint("custom")
    marker = f"foreign history custom {name}"
    resp = invoke(server, name, {"messages": foreign_history(marker)})
    # The fake is OpenAI itself, which refuses extra_content: the body is what a Gemini-compatible server takes.
    assert resp.status_code == 400
    [sent] = requests_with(upstream, marker)
    assistant = sent.json["messages"][1]
    assert assistant["content"] == "Let me check."
    assert assistant["extra_content"] == GEMINI_SIG
    assert assistant["tool_calls"][0]["extra_content"] == GEMINI_SIG
    assert sent.json["messages"][3] == {"role": "assistant", "content": ""}
