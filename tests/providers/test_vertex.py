"""Provider `google-cloud-vertex-ai` through the OpenAI client pointed at modelgate, against the fake Vertex AI
server: the service-account assertion the fake verified, the exact Gemini bodies, and what came back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import validate_request
from modelgate.providers import vertex_translate as vt
from modelgate.providers.vertex_translate import SKIP_SIGNATURE
from tests.fakes.echo_upstream import EchoUpstreamThread
from tests.fakes.vertex_upstream import FakeVertexThread, signature
from tests.providers.client_calls import invoke, multi_turn, stream_chat
from tests.providers.conftest import VERTEX_MODELS, service_account_key
from tests.providers.sent import sent_with
from tests.providers.tool_round_trip import WEATHER_TOOL, weather_round_trip
from tests.support.live import LiveServer

GEMINI_WEATHER = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
}


def test_chat_multi_turn_with_service_account_token(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    name = vertex_endpoint()
    marker = f"hello gemini {name}"
    answer = oai.chat.completions.create(
        model=name,
        messages=multi_turn(marker),
        max_tokens=50,
        temperature=0.3,
        top_p=0.9,
        stop="END",
        n=2,
        extra_body={"top_k": 40},
    )
    assert [c.message.content for c in answer.choices] == [f"echo: {marker}"] * 2
    assert [c.finish_reason for c in answer.choices] == ["stop", "stop"]
    words_in = 1 + 2 + len(marker.split())
    assert answer.usage is not None
    out = 2 * (1 + len(marker.split()))
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (words_in + 3, out)
    [sent] = sent_with(vertex_fake, marker, VERTEX_MODELS)
    assert sent.path == f"{VERTEX_MODELS}/gemini-2.5-flash:generateContent"
    assert sent.headers["authorization"] in {f"Bearer {t}" for t in vertex_fake.server.tokens}
    assert sent.json == {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "first"}]},
            {"role": "model", "parts": [{"text": "echo: first"}]},
            {"role": "user", "parts": [{"text": marker}]},
        ],
        "generationConfig": {
            "temperature": 0.3,
            "topP": 0.9,
            "topK": 40,
            "maxOutputTokens": 50,
            "stopSequences": ["END"],
            "candidateCount": 2,
        },
    }
    grants = [r for r in vertex_fake.requests if r.path == "/token"]
    assert grants and all(r.json["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer" for r in grants)


def test_token_is_cached_between_calls(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    name = vertex_endpoint()
    for i in range(3):
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"cache {i} {name}"}])
    sent = [sent_with(vertex_fake, f"cache {i} {name}", VERTEX_MODELS)[0] for i in range(3)]
    assert len({r.headers["authorization"] for r in sent}) == 1


def test_token_outlives_the_registry_poll_after_a_change_made_here(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    """The endpoint was created by this server: its next poll of the endpoint counter must not take that change
    for another process's and rebuild every endpoint (a new token, cold connections)."""
    name = vertex_endpoint()
    oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"before poll {name}"}])
    time.sleep(2.5)  # the registry polls every second
    oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"after poll {name}"}])
    sent = [sent_with(vertex_fake, f"{when} poll {name}", VERTEX_MODELS)[0] for when in ("before", "after")]
    assert sent[0].headers["authorization"] == sent[1].headers["authorization"]


def test_chat_stream_with_usage(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    name = vertex_endpoint()
    marker = f"stream gemini {name}"
    got = stream_chat(oai, name, marker)
    assert got.text == f"echo: {marker}"
    assert got.finish_reasons == ["stop"]
    assert got.usage is not None
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (
        len(marker.split()) + 3,
        1 + len(marker.split()),
    )
    [sent] = sent_with(vertex_fake, marker, VERTEX_MODELS)
    assert sent.path == f"{VERTEX_MODELS}/gemini-2.5-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": marker}]}]}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_and_result_round_trip(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str], stream: bool
) -> None:
    name = vertex_endpoint()
    marker, _, final = weather_round_trip(
        oai, name, stream=stream, call_id="call_0_get_weather", tool_choice="required"
    )
    assert final.choices[0].finish_reason == "stop"
    first, second = sent_with(vertex_fake, marker, VERTEX_MODELS)
    assert first.json["tools"] == [GEMINI_WEATHER]
    assert "toolConfig" not in first.json
    assert second.json == {
        "contents": [
            {"role": "user", "parts": [{"text": marker}]},
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": SKIP_SIGNATURE,  # the test's client echoes only id, name, arguments
                    }
                ],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny, 21C"}}}],
            },
        ],
        "tools": [GEMINI_WEATHER],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }


def test_json_schema_is_native_structured_output(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    name = vertex_endpoint()
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    marker = f"json {name}"
    answer = oai.chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": marker}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": True}},
    )
    assert json.loads(answer.choices[0].message.content or "") == {"a": 1}
    [sent] = sent_with(vertex_fake, marker, VERTEX_MODELS)
    assert sent.json["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    }


def test_thinking_comes_back_as_reasoning_and_round_trips(
    server: LiveServer, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    name = vertex_endpoint()
    marker = f"think {name}"
    with server.client() as c:
        first = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={
                "messages": [{"role": "user", "content": marker}],
                "thinking": {"type": "enabled", "budget_tokens": 2048},
            },
        )
        assert first.status_code == 200, first.text
        message = first.json()["choices"][0]["message"]
        assert message["content"] == [
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "Let me think.", "signature": signature("thought")}],
            },
            {"type": "text", "text": f"echo: {marker}"},
        ]
        assert first.json()["usage"]["completion_tokens"] == 1 + len(marker.split()) + 2
        again = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={
                "messages": [
                    {"role": "user", "content": marker},
                    message,
                    {"role": "user", "content": "and now?"},
                ],
                "reasoning_effort": "low",
            },
        )
        assert again.status_code == 200, again.text
    first_sent, second_sent = sent_with(vertex_fake, marker, VERTEX_MODELS)
    assert first_sent.json["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}}
    assert second_sent.json["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "Let me think.", "thought": True, "thoughtSignature": signature("thought")},
            {"text": f"echo: {marker}"},
        ],
    }
    assert second_sent.json["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}


def test_embeddings(oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]) -> None:
    name = vertex_endpoint("text-embedding-005", task="llm/v1/embeddings")
    marker = f"embed me {name}"
    result = oai.embeddings.create(model=name, input=[marker, "two words"], dimensions=3, encoding_format="float")
    assert [d.embedding for d in result.data] == [[round(len(marker) / 100, 4), 0.5, -0.25], [0.09, 0.5, -0.25]]
    assert result.usage.prompt_tokens == len(marker.split()) + 2
    [sent] = sent_with(vertex_fake, marker, VERTEX_MODELS)
    assert sent.path == f"{VERTEX_MODELS}/text-embedding-005:predict"
    assert sent.json == {
        "instances": [{"content": marker}, {"content": "two words"}],
        "parameters": {"outputDimensionality": 3},
    }


def test_429_maps_to_request_limit_exceeded(
    server: LiveServer, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    name = vertex_endpoint()  # the suite runs with no retry budget
    vertex_fake.fail_next(429, retry_after=7)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"
    assert resp.json() == {
        "error_code": "REQUEST_LIMIT_EXCEEDED",
        "message": "Received error from google-cloud-vertex-ai: Vertex AI quota or rate limit reached; retry later "
        "or raise the project's quota.",
        "external_model_message": {"code": 429, "message": "Injected 429 error", "status": "RESOURCE_EXHAUSTED"},
    }


def test_429_is_retried_after_retry_after(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    name = vertex_endpoint(retry_budget_s=10)
    vertex_fake.fail_next(429, retry_after=0)
    marker = f"retried {name}"
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}])
    assert answer.choices[0].message.content == f"echo: {marker}"
    assert len(sent_with(vertex_fake, marker, VERTEX_MODELS)) == 2


def test_key_of_another_account_is_refused_without_leaking_it(
    server: LiveServer, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    name = vertex_endpoint(private_key_plaintext=service_account_key(pem))
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    body = resp.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert "invalid_grant" in body["external_model_message"]["message"]
    assert "PRIVATE KEY" not in resp.text and "PRIVATE KEY" not in server.log()


@pytest.mark.parametrize("echoes", ["gemini", "token endpoint"])
def test_an_echo_of_the_access_token_or_the_signed_assertion_is_masked(
    server: LiveServer, vertex_endpoint: Callable[..., str], echoes: str
) -> None:
    """The access token sent to Gemini, and the signed JWT sent to the token endpoint (a credential for an
    hour), come back masked when the upstream or the token endpoint echoes what it received."""
    with EchoUpstreamThread() as echo:
        if echoes == "gemini":
            name = vertex_endpoint(vertex_api_base=echo.url)
        else:
            name = vertex_endpoint(vertex_token_uri=echo.url + "/token")
        resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
        [sent] = echo.requests
    if echoes == "gemini":
        credential = sent.headers["authorization"].removeprefix("Bearer ")
        assert credential.startswith("ya29.")
    else:
        [credential] = parse_qs(sent.json)["assertion"]
        assert credential.startswith("eyJ")
    assert resp.status_code == 400, resp.text
    assert "[REDACTED]" in resp.text
    assert credential not in resp.text and credential not in server.log()


def test_config_is_checked_at_create(server: LiveServer, ep_name: Callable[..., str]) -> None:
    entity: Any = {
        "external_model": {
            "name": "gemini-2.5-flash",
            "provider": "google-cloud-vertex-ai",
            "task": "llm/v1/chat",
            "google_cloud_vertex_ai_config": {"project_id": "proj-1", "region": "us-central1"},
        }
    }
    with server.client() as c:
        resp = c.post(
            "/api/2.0/serving-endpoints", json={"name": ep_name("vx"), "config": {"served_entities": [entity]}}
        )
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "'private_key'" in resp.json()["message"]


def test_key_that_is_not_a_json_key_file_is_a_400(
    server: LiveServer, vertex_endpoint: Callable[..., str], key_pair: tuple[str, bytes]
) -> None:
    name = vertex_endpoint(private_key_plaintext=key_pair[0])  # the bare PEM, not the JSON key file
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "google_cloud_vertex_ai_config.private_key must be a service account's JSON key "
        "(with client_email, private_key and token_uri): JSONDecodeError",
    }


def test_translation_of_images_named_tool_choice_and_parallel_results() -> None:
    request = validate_request(
        ChatRequest,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
                        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "a", "content": '{"ok": true}'},
                {"role": "tool", "tool_call_id": "b", "content": "plain"},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    )
    body = vt.chat_body(request)
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "look"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp"}},
            ],
        },
        {
            "role": "model",
            "parts": [  # a history with no signature of Gemini's: Google's stand-in on the first call
                {"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": SKIP_SIGNATURE},
                {"functionCall": {"name": "g", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "f", "response": {"ok": True}}},
                {"functionResponse": {"name": "g", "response": {"content": "plain"}}},
            ],
        },
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


def test_tool_result_without_its_call_is_a_400() -> None:
    request = validate_request(
        ChatRequest,
        {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "z", "content": "y"}]},
    )
    with pytest.raises(BadRequest, match="tool_call_id must name a tool call"):
        vt.chat_body(request)


def test_streamed_reasoning_and_candidates(
    oai: openai.OpenAI, vertex_fake: FakeVertexThread, vertex_endpoint: Callable[..., str]
) -> None:
    name = vertex_endpoint()
    marker = f"stream think {name}"
    chunks = list(
        oai.chat.completions.create(
            model=name,
            messages=[{"role": "user", "content": marker}],
            n=2,
            reasoning_effort="high",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [(c.choices[0].index, {"content": c.choices[0].delta.content}) for c in chunks if c.choices]
    for index in (0, 1):
        mine = [d for i, d in deltas if i == index]
        reasoning = [d["content"] for d in mine if isinstance(d.get("content"), list)]
        assert reasoning == [
            [
                {
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "Let me think.", "signature": signature("thought")}],
                }
            ]
        ]
        assert "".join(d["content"] for d in mine if isinstance(d.get("content"), str)) == f"echo: {marker}"
    finishes = [
        (c.choices[0].index, c.choices[0].finish_reason) for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [(0, "stop"), (1, "stop")]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2 * (1 + len(marker.split())) + 4
    [sent] = sent_with(vertex_fake, marker, VERTEX_MODELS)
    assert sent.json["generationConfig"] == {
        "candidateCount": 2,
        "thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True},
    }
