"""The fakes refuse what the providers' own types refuse: an unknown key anywhere, a snake_case key where
Gemini's REST API wants camelCase, a part of the wrong type."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai.types.chat import completion_create_params as chat_params

from tests.fakes.openai_upstream import run_in_thread
from tests.fakes.strict_types import problems
from tests.fakes.vertex_types import request_problems, response_problems

GEMINI_OK: Any = {
    "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    "generationConfig": {"maxOutputTokens": 5, "thinkingConfig": {"thinkingBudget": 0}},
}
CHAT_OK: Any = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_gemini_types_accept_a_camel_case_body() -> None:
    assert request_problems(GEMINI_OK) == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**GEMINI_OK, "generation_config": {}}, "generation_config"),
        ({**GEMINI_OK, "generationConfig": {"max_output_tokens": 5}}, "max_output_tokens"),
        ({"contents": [{"role": "user", "parts": [{"text": "hi", "thought_signature": "c2ln"}]}]}, "thought_signature"),
        ({"contents": [{"role": "user", "parts": [{"text": "hi", "thoughtSignature": "sig-0"}]}]}, "base64"),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}, "type": "x"}}]}]},
            "type",
        ),
        ({**GEMINI_OK, "stream": True}, "stream"),
    ],
)
def test_gemini_types_refuse_snake_case_and_unknown_keys(body: Any, where: str) -> None:
    found = request_problems(body)
    assert found and where in " ".join(found)


def test_gemini_answers_are_checked_too() -> None:
    assert response_problems({"candidates": [{"index": 0, "finish_reason": "STOP"}]})


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**CHAT_OK, "top_k": 3}, "body.top_k: unknown field"),
        ({**CHAT_OK, "messages": [{"role": "user", "content": "hi", "cache": 1}]}, "messages[0].cache"),
        (
            {**CHAT_OK, "messages": [{"role": "assistant", "content": [{"type": "reasoning", "summary": []}]}]},
            "messages[0].content",
        ),
        (
            {
                **CHAT_OK,
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}, "x": 1}
                        ],
                    }
                ],
            },
            "tool_calls[0].x",
        ),
    ],
)
def test_openai_types_refuse_unknown_keys_all_the_way_down(body: Any, where: str) -> None:
    assert problems(chat_params.CompletionCreateParamsNonStreaming, CHAT_OK) == []
    found = problems(chat_params.CompletionCreateParamsNonStreaming, body)
    assert found and where in found[0]


def test_openai_fake_answers_a_400_for_an_unknown_key() -> None:
    with run_in_thread(api_key="k") as fake, httpx.Client(base_url=fake.base_url) as c:
        headers = {"Authorization": "Bearer k"}
        assert c.post("/chat/completions", json=CHAT_OK, headers=headers).status_code == 200
        resp = c.post("/chat/completions", json={**CHAT_OK, "thinking": {"type": "enabled"}}, headers=headers)
        assert resp.status_code == 400
        assert resp.json()["error"]["type"] == "invalid_request_error"
        assert "body.thinking: unknown field" in resp.json()["error"]["message"]
        lenient = c.post("/embeddings", json={"model": "m", "input": "x", "extra": 1}, headers=headers)
        assert lenient.status_code == 400
