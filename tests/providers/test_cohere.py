"""Provider `cohere` through the OpenAI client pointed at modelgate, against the fake Cohere v2 server:
what the fake received (exact bodies and auth) and what the client got back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.fakes.cohere_upstream import FakeCohereThread
from tests.providers.client_calls import invoke, multi_turn, stream_chat, stream_fanned_out
from tests.providers.conftest import COHERE_KEY
from tests.providers.sent import sent_with
from tests.providers.tool_round_trip import WEATHER_TOOL, weather_round_trip
from tests.support.live import LiveServer


def test_chat_translates_both_ways(
    oai: openai.OpenAI, cohere_fake: FakeCohereThread, cohere_endpoint: Callable[..., str]
) -> None:
    name = cohere_endpoint()
    marker = f"hello cohere {name}"
    answer = oai.chat.completions.create(
        model=name,
        messages=multi_turn(marker),
        max_tokens=50,
        temperature=0.3,
        top_p=0.9,
        stop=["END"],
        seed=7,
        extra_body={"top_k": 40},
    )
    assert answer.choices[0].message.content == f"echo: {marker}"
    assert answer.choices[0].finish_reason == "stop"
    words_in = 2 + 1 + 2 + len(marker.split())
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (words_in + 10, 1 + len(marker.split()))
    [sent] = sent_with(cohere_fake, marker)
    assert sent.path == "/v2/chat"
    assert sent.headers["authorization"] == f"Bearer {COHERE_KEY}"
    assert sent.json == {
        "model": "command-a-03-2025",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "echo: first"},
            {"role": "user", "content": marker},
        ],
        "max_tokens": 50,
        "temperature": 0.3,
        "p": 0.9,
        "k": 40,
        "seed": 7,
        "stop_sequences": ["END"],
    }


def test_chat_stream(oai: openai.OpenAI, cohere_fake: FakeCohereThread, cohere_endpoint: Callable[..., str]) -> None:
    name = cohere_endpoint()
    marker = f"stream cohere {name}"
    got = stream_chat(oai, name, marker)
    assert got.text == f"echo: {marker}"
    assert got.finish_reasons == ["stop"]
    assert got.usage is not None
    assert got.usage.completion_tokens == 1 + len(marker.split())
    [sent] = sent_with(cohere_fake, marker)
    assert sent.json == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": marker}],
        "stream": True,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_and_result_round_trip(
    oai: openai.OpenAI, cohere_fake: FakeCohereThread, cohere_endpoint: Callable[..., str], stream: bool
) -> None:
    name = cohere_endpoint()
    marker, (call_id, call_name, call_args), _ = weather_round_trip(oai, name, stream=stream, call_id="get_weather_1")
    first, second = sent_with(cohere_fake, marker)
    assert first.json["tools"] == [WEATHER_TOOL]
    assert second.json["messages"] == [
        {"role": "user", "content": marker},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": call_name, "arguments": call_args}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
    ]
    assert "tool_choice" not in second.json


def test_tool_choice_and_structured_output(
    oai: openai.OpenAI, cohere_fake: FakeCohereThread, cohere_endpoint: Callable[..., str]
) -> None:
    name = cohere_endpoint()
    other: Any = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
    marker = f"forced {name}"
    oai.chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": marker}],
        tools=[other, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    marker2 = f"json {name}"
    oai.chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": marker2}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    [forced] = sent_with(cohere_fake, marker)
    assert (forced.json["tools"], forced.json["tool_choice"]) == ([WEATHER_TOOL], "REQUIRED")
    [structured] = sent_with(cohere_fake, marker2)
    assert structured.json["response_format"] == {"type": "json_object", "json_schema": schema}


def test_embeddings(oai: openai.OpenAI, cohere_fake: FakeCohereThread, cohere_endpoint: Callable[..., str]) -> None:
    name = cohere_endpoint("embed-v4.0", "llm/v1/embeddings")
    marker = f"embed {name}"
    result = oai.embeddings.create(model=name, input=[marker, "two words"])
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[1].embedding == pytest.approx([0.09, 0.5, -0.25, 1.0], rel=1e-6)  # float32 on the wire
    assert result.usage.prompt_tokens == len(marker.split()) + 2
    [sent] = sent_with(cohere_fake, marker)
    assert sent.path == "/v2/embed"
    assert sent.json == {
        "model": "embed-v4.0",
        "texts": [marker, "two words"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }


def test_errors_keep_cohere_message(
    server: LiveServer, cohere_fake: FakeCohereThread, cohere_endpoint: Callable[..., str]
) -> None:
    name = cohere_endpoint("fail-429")
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "3"
    assert resp.json() == {
        "error_code": "REQUEST_LIMIT_EXCEEDED",
        "message": "Received error from cohere",
        "external_model_message": {"message": "Injected 429 error"},
    }


def test_wrong_key_is_a_400_without_the_key(
    server: LiveServer, cohere_fake: FakeCohereThread, cohere_endpoint: Callable[..., str]
) -> None:
    wrong = "co-wrong-key-987654321"
    name = cohere_endpoint(cohere_api_key_plaintext=wrong)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    assert resp.json()["external_model_message"] == {"message": "invalid api token"}
    assert wrong not in resp.text
    assert wrong not in server.log()


def test_n_fans_out_into_n_choices(
    oai: openai.OpenAI, cohere_fake: FakeCohereThread, cohere_endpoint: Callable[..., str]
) -> None:
    name = cohere_endpoint()
    marker = f"fan out {name}"
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}], n=3)
    assert [(c.index, c.message.content, c.finish_reason) for c in answer.choices] == [
        (i, f"echo: {marker}", "stop") for i in range(3)
    ]
    sent = sent_with(cohere_fake, marker)
    assert len(sent) == 3
    assert all(
        r.json == {"model": "command-a-03-2025", "messages": [{"role": "user", "content": marker}]} for r in sent
    )
    assert answer.usage is not None
    # The fake counts words; its `tokens.input_tokens` adds 10 for Cohere's own preamble. Usage is summed.
    words_in, words_out = len(marker.split()) + 10, 1 + len(marker.split())
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3 * words_in, 3 * words_out)


def test_n_above_one_streaming_fans_out(server: LiveServer, cohere_endpoint: Callable[..., str]) -> None:
    name = cohere_endpoint()
    marker = f"two streams {name}"
    events = stream_fanned_out(server, name, marker, 2)
    assert events[-1]["choices"] == []
    usage = events[-1]["usage"]
    words_in, words_out = len(marker.split()) + 10, 1 + len(marker.split())
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (2 * words_in, 2 * words_out)
