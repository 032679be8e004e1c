"""Provider `amazon-bedrock` through the OpenAI client pointed at modelgate, against the fake Bedrock runtime
(which verifies every SigV4 signature with botocore): what the fake received and what the client got back."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from botocore.eventstream import EventStreamBuffer
from PIL import Image

from tests.fakes.bedrock_upstream import FakeBedrockThread, encode_event, event_frame, signature
from tests.providers.client_calls import invoke, multi_turn, stream_chat, stream_thinking, text_before_error
from tests.providers.conftest import BEDROCK_ACCESS_KEY, BEDROCK_CLAUDE, BEDROCK_REGION, bedrock_entity
from tests.providers.sent import sent_with
from tests.providers.tool_round_trip import WEATHER_TOOL, weather_round_trip
from tests.serving.support import sse_events
from tests.support.live import LiveServer

WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
        "description": "Weather for a city",
    }
}


def test_fake_frames_decode_with_botocore() -> None:
    buffer = EventStreamBuffer()
    data = event_frame("messageStart", {"role": "assistant"}) + encode_event({":message-type": "event"}, b"")
    buffer.add_data(data[:7])
    assert list(buffer) == []
    buffer.add_data(data[7:])
    first, second = list(buffer)
    assert first.headers == {
        ":event-type": "messageStart",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload) == {"role": "assistant"}
    assert (second.headers, second.payload) == ({":message-type": "event"}, b"")


def test_chat_multi_turn_translates_both_ways(
    oai: openai.OpenAI, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint()
    marker = f"hello bedrock {name}"
    answer = oai.chat.completions.create(
        model=name,
        messages=multi_turn(marker),
        max_tokens=50,
        temperature=0.3,
        top_p=0.9,
        stop=["END"],
        extra_body={"top_k": 40},
    )
    assert answer.choices[0].message.content == f"echo: {marker}"
    assert answer.choices[0].finish_reason == "stop"
    words_in = 1 + 2 + len(marker.split()) + 2
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (words_in, 1 + len(marker.split()))
    [sent] = sent_with(bedrock_fake, marker)
    assert sent.path == f"/model/{BEDROCK_CLAUDE}/converse"
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY}/")
    assert f"/{BEDROCK_REGION}/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.json == {
        "messages": [
            {"role": "user", "content": [{"text": "first"}]},
            {"role": "assistant", "content": [{"text": "echo: first"}]},
            {"role": "user", "content": [{"text": marker}]},
        ],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"]},
        "additionalModelRequestFields": {"top_k": 40},
    }


def test_chat_stream_with_usage(
    oai: openai.OpenAI, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint()
    marker = f"stream bedrock {name}"
    got = stream_chat(oai, name, marker)
    assert got.text == f"echo: {marker}"
    assert got.finish_reasons == ["stop"]
    assert got.usage is not None
    words = len(marker.split())
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (words, 1 + words)
    [sent] = sent_with(bedrock_fake, marker)
    assert sent.path == f"/model/{BEDROCK_CLAUDE}/converse-stream"
    assert sent.headers["accept"] == "application/vnd.amazon.eventstream"
    assert sent.json == {"messages": [{"role": "user", "content": [{"text": marker}]}]}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_and_result_round_trip(
    oai: openai.OpenAI, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str], stream: bool
) -> None:
    name = bedrock_endpoint()
    marker, (call_id, _, _), _ = weather_round_trip(oai, name, stream=stream, call_id="tooluse_get_weather")
    first, second = sent_with(bedrock_fake, marker)
    assert first.json["toolConfig"] == {"tools": [WEATHER_SPEC]}
    assert second.json == {
        "messages": [
            {"role": "user", "content": [{"text": marker}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": call_id, "name": "get_weather", "input": {"city": "Paris"}}}],
            },
            {"role": "user", "content": [{"toolResult": {"toolUseId": call_id, "content": [{"text": "sunny, 21C"}]}}]},
        ],
        "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"auto": {}}},
    }


def test_named_and_required_tool_choice(
    oai: openai.OpenAI, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint()
    other: Any = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
    marker = f"forced {name}"
    answer = oai.chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": marker}],
        tools=[other, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert answer.choices[0].message.tool_calls is not None
    assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"
    oai.chat.completions.create(
        model=name, messages=[{"role": "user", "content": marker + " any"}], tools=[other], tool_choice="required"
    )
    forced, required = sent_with(bedrock_fake, marker)
    assert forced.json["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    assert required.json["toolConfig"]["toolChoice"] == {"any": {}}


@pytest.mark.parametrize(
    ("model", "provider", "sent_bodies", "vector1", "tokens"),
    [
        ("amazon.titan-embed-text-v2:0", "amazon", "titan", [0.09, 0.5, 0.5, 0.5], None),
        ("cohere.embed-english-v3", "COHERE", "cohere", [0.09, 0.5, -0.25, 1.0], "estimated"),
    ],
)
def test_embeddings(
    oai: openai.OpenAI,
    bedrock_fake: FakeBedrockThread,
    bedrock_endpoint: Callable[..., str],
    model: str,
    provider: str,
    sent_bodies: str,
    vector1: list[float],
    tokens: str | None,
) -> None:
    name = bedrock_endpoint(model, "llm/v1/embeddings", provider, bedrock_provider=provider)
    marker = f"embed {name}"
    result = oai.embeddings.create(model=name, input=[marker, "two words"])
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[1].embedding == pytest.approx(vector1, rel=1e-6)  # float32 on the wire
    sent = sent_with(bedrock_fake, marker)
    assert {r.path for r in sent} == {f"/model/{model}/invoke"}
    if sent_bodies == "titan":
        assert result.usage.prompt_tokens == len(marker.split()) + 2
        assert len(sent) == 1  # the other text went in its own call
        assert sent[0].json == {"inputText": marker}
        assert [r.json for r in bedrock_fake.requests if r.json == {"inputText": "two words"}]
    else:
        assert result.usage.prompt_tokens == (len(marker) + 1) // 4 + (len("two words") + 1) // 4
        assert [r.json for r in sent] == [{"texts": [marker, "two words"], "input_type": "search_document"}]


def test_rate_limit_maps_to_429_with_bedrock_message(
    server: LiveServer, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint("fail-429", retry_budget_s=0)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "3"
    assert resp.json() == {
        "error_code": "REQUEST_LIMIT_EXCEEDED",
        "message": "Received error from amazon-bedrock",
        "external_model_message": {"message": "Injected 429 error"},
    }


def test_throttling_is_retried(
    oai: openai.OpenAI, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint(retry_budget_s=10)
    marker = f"retry {name}"
    bedrock_fake.fail_next(429, 1, retry_after=0)
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}])
    assert answer.choices[0].message.content == f"echo: {marker}"
    assert len(sent_with(bedrock_fake, marker)) == 2  # the throttled attempt, then the answered one


def test_wrong_secret_fails_the_signature_check_without_leaking_it(
    server: LiveServer, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    wrong = "wrong/secret+key9876543210fedcba"
    name = bedrock_endpoint(aws_secret_access_key_plaintext=wrong)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    assert resp.json()["external_model_message"] == {
        "message": "The request signature we calculated does not match the signature you provided."
    }
    assert wrong not in resp.text
    assert wrong not in server.log()


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"bedrock_provider": "mistral"}, "bedrock_provider"),
        ({"aws_region": "nowhere"}, "aws_region"),
        ({"aws_secret_access_key_plaintext": None}, "aws_secret_access_key"),
        ({"aws_session_token": "not-a-reference"}, "aws_session_token must be a secret reference"),
        ({"instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/p"}, "not both"),
        ({"instance_profile_arn": "my-profile"}, "instance_profile_arn"),
        ({"uc_service_credential_name": "cred"}, "uc_service_credential_name"),
        (
            {"aws_access_key_id_plaintext": None, "aws_secret_access_key_plaintext": None},
            "or instance_profile_arn to use the AWS credentials of the host",
        ),
    ],
)
def test_bad_config_is_refused(
    server: LiveServer, bedrock_fake: FakeBedrockThread, ep_name: Callable[..., str], config: Any, problem: str
) -> None:
    entity = bedrock_entity(bedrock_fake.url, BEDROCK_CLAUDE, "llm/v1/chat", **config)
    cfg = entity["external_model"]["amazon_bedrock_config"]
    entity["external_model"]["amazon_bedrock_config"] = {k: v for k, v in cfg.items() if v is not None}
    with server.client() as c:
        resp = c.post(
            "/api/2.0/serving-endpoints",
            json={"name": ep_name(), "config": {"served_entities": [entity]}},
        )
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert problem in resp.json()["message"]


def test_mid_stream_exception_becomes_error_event(server: LiveServer, bedrock_endpoint: Callable[..., str]) -> None:
    name = bedrock_endpoint("stream-throttle")
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "a long answer"}], "stream": True})
    assert resp.status_code == 200
    events = sse_events(resp.text)
    assert events[-1]["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert events[-1]["external_model_message"] == {"message": "Too many tokens, please wait."}
    assert text_before_error(events) == "echo: a long answer"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}
                ]
            },
            "messages[0]: provider 'amazon-bedrock' takes images as base64 data URLs only",
        ),
    ],
)
def test_untranslatable_requests_are_clear_400s(
    server: LiveServer, bedrock_endpoint: Callable[..., str], body: Any, message: str
) -> None:
    name = bedrock_endpoint()
    resp = invoke(server, name, body)
    assert resp.status_code == 400
    assert resp.json() == {"error_code": "BAD_REQUEST", "message": message}


def test_image_data_url_becomes_image_block(
    oai: openai.OpenAI, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint()
    png = base64.b64encode(_png()).decode()
    marker = f"describe {name}"
    content: Any = [
        {"type": "text", "text": marker},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    oai.chat.completions.create(model=name, messages=[{"role": "user", "content": content}])
    [sent] = sent_with(bedrock_fake, marker)
    [block] = [b for b in sent.json["messages"][0]["content"] if "image" in b]
    assert block["image"]["format"] == "png"
    assert base64.b64decode(block["image"]["source"]["bytes"])[:8] == b"\x89PNG\r\n\x1a\n"


def _png() -> bytes:
    image = Image.new("RGB", (4, 3), (255, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("response_format", "spec", "content"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "city_answer", "schema": CITY_SCHEMA}},
            {
                "name": "city_answer",
                "inputSchema": {"json": CITY_SCHEMA},
                "description": "Answer with an object matching this schema.",
            },
            '{"city":"Paris"}',
        ),
        (
            {"type": "json_object"},
            {
                "name": "json_response",
                "inputSchema": {"json": {"type": "object"}},
                "description": "Answer with a JSON object.",
            },
            "{}",
        ),
    ],
)
def test_response_format_is_a_forced_tool_answered_as_content(
    oai: openai.OpenAI,
    bedrock_fake: FakeBedrockThread,
    bedrock_endpoint: Callable[..., str],
    stream: bool,
    response_format: Any,
    spec: Any,
    content: str,
) -> None:
    name = bedrock_endpoint()
    marker = f"structured {name}"
    messages: Any = [{"role": "user", "content": marker}]
    if stream:
        chunks = list(
            oai.chat.completions.create(model=name, messages=messages, response_format=response_format, stream=True)
        )
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        assert "".join(d.content or "" for d in deltas) == content
        assert all(not d.tool_calls for d in deltas)
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    else:
        answer = oai.chat.completions.create(model=name, messages=messages, response_format=response_format)
        assert answer.choices[0].message.content == content
        assert answer.choices[0].message.tool_calls is None
        assert answer.choices[0].finish_reason == "stop"
    [sent] = sent_with(bedrock_fake, marker)
    assert sent.json == {
        "messages": [{"role": "user", "content": [{"text": marker}]}],
        "toolConfig": {"tools": [{"toolSpec": spec}], "toolChoice": {"tool": {"name": spec["name"]}}},
    }


def test_response_format_name_clashing_with_a_tool_is_a_400(
    server: LiveServer, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint()
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [WEATHER_TOOL],
        "response_format": {"type": "json_schema", "json_schema": {"name": "get_weather", "schema": CITY_SCHEMA}},
    }
    resp = invoke(server, name, body)
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "BAD_REQUEST",
        "message": "Bad request: response_format name 'get_weather' clashes with a tool's name",
    }


def reasoning_of(text: str) -> dict[str, Any]:
    return {"type": "reasoning", "summary": [{"type": "summary_text", "text": text, "signature": signature(text)}]}


def test_reasoning_blocks_and_round_trip(
    server: LiveServer, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint()
    question = f"think then redact {name}"
    thought = f"thinking about: {question}"
    redacted = base64.b64encode(b"redacted:" + thought.encode()).decode()
    with server.client() as c:
        first = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={
                "messages": [{"role": "user", "content": question}],
                "thinking": {"type": "enabled", "budget_tokens": 2048},
            },
        )
        assert first.status_code == 200, first.text
        [sent] = sent_with(bedrock_fake, question)
        assert sent.json == {
            "messages": [{"role": "user", "content": [{"text": question}]}],
            "inferenceConfig": {"maxTokens": 2048 + 4096},
            "additionalModelRequestFields": {"reasoning_config": {"type": "enabled", "budget_tokens": 2048}},
        }
        message = first.json()["choices"][0]["message"]
        assert message["content"] == [
            reasoning_of(thought),
            {"type": "reasoning", "summary": [{"type": "summary_encrypted_text", "data": redacted}]},
            {"type": "text", "text": f"echo: {question}"},
        ]
        # Multi-turn: the assistant message goes back as it came; the fake rejects any changed signature.
        again = f"and again {name}"
        second = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={
                "messages": [{"role": "user", "content": question}, message, {"role": "user", "content": again}],
                "thinking": {"type": "enabled", "budget_tokens": 2048},
            },
        )
        assert second.status_code == 200, second.text
        assert sent_with(bedrock_fake, again)[0].json["messages"][1] == {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": thought, "signature": signature(thought)}}},
                {"reasoningContent": {"redactedContent": redacted}},
                {"text": f"echo: {question}"},
            ],
        }
        # A changed signature reaches Bedrock unmodified too, and Bedrock's refusal comes back.
        message["content"][0]["summary"][0]["signature"] = "sig-forged"
        forged = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={"messages": [{"role": "user", "content": "q"}, message, {"role": "user", "content": "again"}]},
        )
    assert forged.status_code == 400
    assert forged.json()["external_model_message"] == {
        "message": "messages.1: The signature of a reasoning block is invalid; "
        "reasoning blocks must be sent back unmodified."
    }


@pytest.mark.parametrize(("effort", "budget"), [("low", 2048), ("high", 16384)])
def test_reasoning_effort_maps_to_reasoning_config(
    oai: openai.OpenAI, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str], effort: Any, budget: int
) -> None:
    name = bedrock_endpoint()
    marker = f"effort {name}"
    answer = oai.chat.completions.create(
        model=name, messages=[{"role": "user", "content": marker}], reasoning_effort=effort, max_tokens=budget + 100
    )
    content: Any = answer.choices[0].message.content
    assert content == [reasoning_of(f"thinking about: {marker}"), {"type": "text", "text": f"echo: {marker}"}]
    [sent] = sent_with(bedrock_fake, marker)
    assert sent.json["inferenceConfig"] == {"maxTokens": budget + 100}
    assert sent.json["additionalModelRequestFields"] == {
        "reasoning_config": {"type": "enabled", "budget_tokens": budget}
    }


def test_streamed_reasoning_deltas(
    server: LiveServer, bedrock_fake: FakeBedrockThread, bedrock_endpoint: Callable[..., str]
) -> None:
    name = bedrock_endpoint()
    question = f"stream thinking redact {name}"
    thought = f"thinking about: {question}"
    streamed = stream_thinking(server, name, question, 1024)
    items = [b["summary"][0] for b in streamed.reasoning]
    texts = [i for i in items if i["type"] == "summary_text"]
    assert "".join(i["text"] for i in texts) == thought
    assert len(texts) == len(thought.split()) + 1  # a delta per word, then the signature
    assert [i["signature"] for i in texts if "signature" in i] == [signature(thought)]
    redacted = base64.b64encode(b"redacted:" + thought.encode()).decode()
    assert [i for i in items if i["type"] == "summary_encrypted_text"] == [
        {"type": "summary_encrypted_text", "data": redacted}
    ]
    assert streamed.text == f"echo: {question}"
    [sent] = sent_with(bedrock_fake, question)
    assert sent.path == f"/model/{BEDROCK_CLAUDE}/converse-stream"
    assert sent.json["additionalModelRequestFields"] == {"reasoning_config": {"type": "enabled", "budget_tokens": 1024}}


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_needs_an_anthropic_model(
    server: LiveServer, bedrock_endpoint: Callable[..., str], stream: bool
) -> None:
    name = bedrock_endpoint("amazon.nova-pro-v1:0", bedrock_provider="amazon")
    resp = invoke(
        server, name, {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low", "stream": stream}
    )
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "BAD_REQUEST",
        "message": "Provider 'amazon-bedrock' supports reasoning only for bedrock_provider 'anthropic', not 'amazon'.",
    }
