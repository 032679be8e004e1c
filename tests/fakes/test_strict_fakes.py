"""The fakes refuse what the providers' own types refuse: an unknown key anywhere, a snake_case key where
Gemini's REST API or Bedrock's Converse wants camelCase (and a camelCase one where Anthropic, Cohere and
AI21 want snake_case), a part of the wrong type."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from botocore.credentials import Credentials
from openai.types.chat import completion_create_params as chat_params

from modelgate.providers.bedrock_auth import sign
from tests.fakes import ai21_types, anthropic_types, bedrock_types, cohere_types
from tests.fakes.ai21_upstream import FakeAI21Thread
from tests.fakes.anthropic_upstream import FakeAnthropicThread
from tests.fakes.bedrock_upstream import FakeBedrockThread
from tests.fakes.cohere_upstream import FakeCohereThread
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


# -- Anthropic: the `anthropic` SDK's MessageCreateParams, Message and stream events ------------------------

CLAUDE_OK: Any = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**CLAUDE_OK, "n": 2}, "body.n: unknown field"),
        ({**CLAUDE_OK, "maxTokens": 16}, "body.maxTokens: unknown field"),
        ({**CLAUDE_OK, "tool_choice": {"type": "auto", "parallel_tool_calls": False}}, "tool_choice.parallel"),
        (
            {**CLAUDE_OK, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "x": 1}]}]},
            "messages[0].content[0].x",
        ),
        ({**CLAUDE_OK, "thinking": {"type": "enabled", "budgetTokens": 1024}}, "thinking.budgetTokens"),
    ],
)
def test_anthropic_types_refuse_unknown_keys(body: Any, where: str) -> None:
    assert anthropic_types.request_problems({**CLAUDE_OK, "temperature": 0.5, "stream": True}) == []
    found = anthropic_types.request_problems(body)
    assert found and where in found[0]


def test_anthropic_answers_and_events_are_checked_too() -> None:
    assert anthropic_types.response_problems({"type": "message", "role": "assistant", "content": []})
    bad = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}
    assert anthropic_types.event_problems(bad) == ["event.content_block.signature: required"]


def test_anthropic_fake_answers_a_400_for_an_unknown_key() -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    with FakeAnthropicThread("k") as fake, httpx.Client(base_url=fake.url) as c:
        assert c.post("/v1/messages", json=CLAUDE_OK, headers=headers).status_code == 200
        resp = c.post("/v1/messages", json={**CLAUDE_OK, "top_logprobs": 2}, headers=headers)
        assert resp.status_code == 400
        assert resp.json()["error"] == {
            "type": "invalid_request_error",
            "message": "body.top_logprobs: Extra inputs are not permitted",
        }


# -- Bedrock: botocore's bedrock-runtime service model -------------------------------------------------------

CONVERSE_OK: Any = {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 8}}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**CONVERSE_OK, "max_tokens": 8}, 'Unknown parameter in input: "max_tokens"'),
        ({**CONVERSE_OK, "inferenceConfig": {"max_tokens": 8}}, 'inferenceConfig: "max_tokens"'),
        ({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}, "tagged union"),
        ({"messages": [{"role": "user", "content": [{"text": " "}]}]}, "messages.0.content.0 is blank"),
        ({**CONVERSE_OK, "system": [{"text": " "}]}, "system.0 is blank"),
        (
            {**CONVERSE_OK, "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {}}}]}},
            "inputSchema",
        ),
    ],
)
def test_bedrock_model_refuses_unknown_and_snake_case_members(body: Any, where: str) -> None:
    assert bedrock_types.converse_problems(CONVERSE_OK, "m") == []
    found = bedrock_types.converse_problems(body, "m")
    assert found and where in " ".join(found)


def test_bedrock_answers_and_events_are_checked_too() -> None:
    assert bedrock_types.converse_answer_problems({"output": {"message": {"role": "assistant", "content": []}}})
    assert bedrock_types.stream_event_problems("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"txt": "a"}})


def test_bedrock_fake_answers_a_validation_exception_for_an_unknown_key() -> None:
    with FakeBedrockThread("AKIDEXAMPLE", "secret", "us-east-1") as fake, httpx.Client(base_url=fake.url) as c:
        creds = Credentials("AKIDEXAMPLE", "secret").get_frozen_credentials()

        def post(body: Any) -> httpx.Response:
            url, raw = f"{fake.url}/model/m/converse", orjson.dumps(body)
            return c.post(url, content=raw, headers=sign(url, raw, "application/json", creds, "us-east-1"))

        assert post(CONVERSE_OK).status_code == 200
        resp = post({**CONVERSE_OK, "additional_model_request_fields": {}})
        assert resp.status_code == 400
        assert resp.headers["x-amzn-ErrorType"] == "ValidationException"
        assert 'Unknown parameter in input: "additional_model_request_fields"' in resp.json()["message"]


# -- Cohere: the `cohere` SDK's v2 chat / embed types, keys checked by name ----------------------------------

COHERE_OK: Any = {"model": "command-a-03-2025", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**COHERE_OK, "top_p": 0.5}, "body.top_p: unknown field"),
        ({**COHERE_OK, "thinking": {"type": "enabled", "budget_tokens": 10}}, "thinking.budget_tokens"),
        ({**COHERE_OK, "response_format": {"type": "json_object", "schema": {}}}, "response_format.schema"),
        (
            {**COHERE_OK, "messages": [{"role": "user", "content": [{"type": "text", "text": "a", "cache": 1}]}]},
            "messages[0].content[0].cache",
        ),
    ],
)
def test_cohere_types_refuse_unknown_keys(body: Any, where: str) -> None:
    assert cohere_types.chat_problems({**COHERE_OK, "stream": True, "p": 0.5}) == []
    found = cohere_types.chat_problems(body)
    assert found and where in found[0]


def test_cohere_embed_types_and_answers() -> None:
    embed = {"model": "embed-v4.0", "texts": ["a"], "input_type": "search_document", "embedding_types": ["float"]}
    assert cohere_types.embed_problems(embed) == []
    assert cohere_types.embed_problems({**embed, "dimensions": 4}) == ["body.dimensions: unknown field"]
    assert cohere_types.chat_answer_problems({"id": "c", "message": {"role": "assistant"}})


def test_cohere_fake_answers_a_400_for_an_unknown_key() -> None:
    with FakeCohereThread("k") as fake, httpx.Client(base_url=fake.url) as c:
        headers = {"Authorization": "Bearer k"}
        assert c.post("/v2/chat", json=COHERE_OK, headers=headers).status_code == 200
        resp = c.post("/v2/chat", json={**COHERE_OK, "stop": ["x"]}, headers=headers)
        assert resp.status_code == 400
        assert resp.json() == {"message": "invalid request: body.stop: unknown field"}


# -- AI21: the `ai21` SDK's chat types -----------------------------------------------------------------------

JAMBA_OK: Any = {"model": "jamba-large", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**JAMBA_OK, "seed": 1}, "body.seed: unknown field"),
        ({**JAMBA_OK, "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}, "expected str"),
        ({**JAMBA_OK, "response_format": {"type": "json_schema"}}, "response_format.type"),
        ({**JAMBA_OK, "tools": [{"type": "function", "function": {"name": "f", "strict": True}}]}, "strict"),
    ],
)
def test_ai21_types_refuse_unknown_keys_and_content_parts(body: Any, where: str) -> None:
    ok = {**JAMBA_OK, "stream": True, "stream_options": {"include_usage": True}, "tool_choice": "auto"}
    assert ai21_types.request_problems(ok) == []
    found = ai21_types.request_problems(body)
    assert found and where in found[0]


def test_ai21_fake_answers_a_422_for_an_unknown_key() -> None:
    with FakeAI21Thread("k") as fake, httpx.Client(base_url=fake.url) as c:
        headers = {"Authorization": "Bearer k"}
        assert c.post("/chat/completions", json=JAMBA_OK, headers=headers).status_code == 200
        resp = c.post("/chat/completions", json={**JAMBA_OK, "user": "u"}, headers=headers)
        assert resp.status_code == 422
        assert resp.json() == {"detail": [{"loc": ["body", "user"], "msg": "unknown field"}]}
