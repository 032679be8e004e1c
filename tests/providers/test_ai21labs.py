"""Provider `ai21labs` through the OpenAI client pointed at modelgate, against the fake AI21 Jamba API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.fakes.ai21_upstream import FakeAI21Thread
from tests.providers.client_calls import invoke, stream_chat
from tests.providers.conftest import AI21_KEY
from tests.providers.sent import sent_with
from tests.support.live import LiveServer


def test_chat_drops_undocumented_fields(
    oai: openai.OpenAI, ai21_fake: FakeAI21Thread, ai21_endpoint: Callable[..., str]
) -> None:
    name = ai21_endpoint()
    marker = f"hello jamba {name}"
    answer = oai.chat.completions.create(
        model=name,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": marker}],
        max_tokens=30,
        temperature=0.2,
        top_p=0.8,
        stop=["END"],
        seed=3,
        presence_penalty=0.5,
        extra_body={"top_k": 5},
    )
    assert answer.choices[0].message.content == f"echo: {marker}"
    assert answer.usage is not None and answer.usage.prompt_tokens == 2 + len(marker.split())
    [sent] = sent_with(ai21_fake, marker)
    assert sent.path == "/studio/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {AI21_KEY}"
    assert sent.json == {
        "model": "jamba-large",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": marker}],
        "max_tokens": 30,
        "temperature": 0.2,
        "top_p": 0.8,
        "stop": ["END"],
    }


def test_chat_stream(oai: openai.OpenAI, ai21_fake: FakeAI21Thread, ai21_endpoint: Callable[..., str]) -> None:
    name = ai21_endpoint()
    marker = f"stream jamba {name}"
    got = stream_chat(oai, name, marker)
    assert got.text == f"echo: {marker}"
    assert got.usage is not None and got.usage.completion_tokens == 1 + len(marker.split())
    [sent] = sent_with(ai21_fake, marker)
    assert sent.json["stream"] is True


def test_upstream_503_is_retried(
    oai: openai.OpenAI, ai21_fake: FakeAI21Thread, ai21_endpoint: Callable[..., str]
) -> None:
    name = ai21_endpoint(retry_budget_s=5)
    marker = f"retry jamba {name}"
    ai21_fake.fail_next(503, count=1, retry_after=0)
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}])
    assert answer.choices[0].message.content == f"echo: {marker}"
    assert len(sent_with(ai21_fake, marker)) == 2


def test_wrong_key_is_a_400_without_the_key(server: LiveServer, ai21_endpoint: Callable[..., str]) -> None:
    wrong = "ai21-wrong-key-55555"
    name = ai21_endpoint(key=wrong)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "BAD_REQUEST"
    assert resp.json()["external_model_message"] == {"detail": "Forbidden: Bad or missing API token."}
    assert wrong not in resp.text
    assert wrong not in server.log()


@pytest.mark.parametrize(
    ("task", "payload", "message"),
    [
        (
            "llm/v1/completions",
            {"prompt": "Once upon a time"},
            "Provider 'ai21labs' does not support completions: AI21's Jamba API has only chat. Serve the model "
            "with task llm/v1/chat and send the prompt as a user message.",
        ),
        (
            "llm/v1/completions",
            {"prompt": "Once upon a time", "stream": True},
            "Provider 'ai21labs' does not support completions: AI21's Jamba API has only chat. Serve the model "
            "with task llm/v1/chat and send the prompt as a user message.",
        ),
        (
            "llm/v1/embeddings",
            {"input": ["hello"]},
            "Provider 'ai21labs' does not support embeddings: AI21's API has no embeddings endpoint. Serve "
            "embeddings with another provider (openai, cohere, amazon-bedrock or google-cloud-vertex-ai).",
        ),
    ],
    ids=["completions", "completions-stream", "embeddings"],
)
def test_tasks_ai21_lacks_are_clear_400s(
    server: LiveServer,
    ai21_fake: FakeAI21Thread,
    ai21_endpoint: Callable[..., str],
    task: str,
    payload: Any,
    message: str,
) -> None:
    name = ai21_endpoint(task=task)
    before = len(ai21_fake.requests)
    resp = invoke(server, name, payload)
    assert resp.status_code == 400
    assert resp.json() == {"error_code": "BAD_REQUEST", "message": message}
    assert len(ai21_fake.requests) == before  # nothing went upstream
