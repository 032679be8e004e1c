"""Provider `databricks-model-serving`: the shared test server forwards to a second live modelgate ("remote"),
which serves endpoints over the fake OpenAI upstream. Asserts what the remote's upstream finally received."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.providers.client_calls import invoke, stream_chat
from tests.serving.support import external_entity, requests_with
from tests.support.live import LiveServer, create_endpoint

REMOTE_CHAT = "remote-chat"
REMOTE_COMPLETIONS = "remote-completions"
REMOTE_EMBED = "remote-embed"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstreamThread) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("mg-remote")
    with LiveServer(data_dir) as live, live.client() as c:
        create_endpoint(c, REMOTE_CHAT, external_entity(upstream.base_url, "gpt-4o-mini"))
        create_endpoint(
            c,
            REMOTE_COMPLETIONS,
            external_entity(upstream.base_url, "gpt-3.5-turbo-instruct", task="llm/v1/completions"),
        )
        create_endpoint(
            c, REMOTE_EMBED, external_entity(upstream.base_url, "text-embedding-3-small", task="llm/v1/embeddings")
        )
        yield live


def dms_entity(
    remote: LiveServer, endpoint: str, task: str = "llm/v1/chat", token: str | None = None
) -> dict[str, Any]:
    config = {"databricks_workspace_url": remote.url, "databricks_api_token_plaintext": token or remote.admin_token}
    return {
        "external_model": {
            "name": endpoint,
            "provider": "databricks-model-serving",
            "task": task,
            "databricks_model_serving_config": config,
        }
    }


@pytest.fixture
def forward(server: LiveServer, remote: LiveServer, ep_name: Callable[..., str]) -> Callable[..., str]:
    """`forward(remote_endpoint, task)` creates a local endpoint forwarding to the remote one; returns its name."""

    def make(endpoint: str = REMOTE_CHAT, task: str = "llm/v1/chat", token: str | None = None) -> str:
        name = ep_name(endpoint)
        with server.client() as c:
            create_endpoint(c, name, dms_entity(remote, endpoint, task, token))
        return name

    return make


def test_chat(oai: openai.OpenAI, upstream: FakeUpstreamThread, forward: Callable[..., str]) -> None:
    name = forward()
    marker = f"hello remote {name}"
    answer = oai.chat.completions.create(
        model=name,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": marker}],
        max_tokens=20,
        temperature=0.5,
    )
    assert answer.choices[0].message.content == f"echo: {marker}"
    assert answer.usage is not None and answer.usage.total_tokens > 0
    [sent] = requests_with(upstream, marker)
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": marker}]
    assert sent.json["max_tokens"] == 20
    assert sent.json["temperature"] == 0.5


def test_chat_stream(oai: openai.OpenAI, upstream: FakeUpstreamThread, forward: Callable[..., str]) -> None:
    name = forward()
    marker = f"stream remote {name}"
    got = stream_chat(oai, name, marker)
    assert got.text == f"echo: {marker}"
    assert got.usage is not None and got.usage.completion_tokens > 0
    [sent] = requests_with(upstream, marker)
    assert sent.json["stream"] is True


def test_tools(oai: openai.OpenAI, upstream: FakeUpstreamThread, forward: Callable[..., str]) -> None:
    name = forward()
    marker = f"weather remote {name}"
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}], tools=tools)
    calls = answer.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    [sent] = requests_with(upstream, marker)
    assert sent.json["tools"] == tools


def test_completions_and_embeddings(
    oai: openai.OpenAI, upstream: FakeUpstreamThread, forward: Callable[..., str]
) -> None:
    completions = forward(REMOTE_COMPLETIONS, "llm/v1/completions")
    marker = f"complete remote {completions}"
    answer = oai.completions.create(model=completions, prompt=marker, max_tokens=5)
    assert answer.choices[0].text
    [sent] = requests_with(upstream, marker)
    assert (sent.path, sent.json["model"], sent.json["prompt"]) == ("/v1/completions", "gpt-3.5-turbo-instruct", marker)

    embed = forward(REMOTE_EMBED, "llm/v1/embeddings")
    marker = f"embed remote {embed}"
    vectors = oai.embeddings.create(model=embed, input=[marker, "second"])
    assert [d.index for d in vectors.data] == [0, 1]
    assert len(vectors.data[0].embedding) > 0
    [sent] = requests_with(upstream, marker)
    assert (sent.path, sent.json["input"]) == ("/v1/embeddings", [marker, "second"])


def test_remote_errors_are_wrapped(server: LiveServer, forward: Callable[..., str]) -> None:
    """A missing remote endpoint: the remote's own Databricks error comes back as external_model_message."""
    name = forward("no-such-remote-endpoint")
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 404
    body = resp.json()
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert body["message"] == "Received error from databricks-model-serving"
    assert body["external_model_message"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "no-such-remote-endpoint" in body["external_model_message"]["message"]


def test_wrong_token_is_a_400_without_the_token(server: LiveServer, forward: Callable[..., str]) -> None:
    wrong = "dapi" + "0" * 32
    name = forward(token=wrong)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "BAD_REQUEST"
    assert resp.json()["message"] == "Received error from databricks-model-serving"
    assert wrong not in resp.text
    assert wrong not in server.log()


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"databricks_api_token_plaintext": "dapi1"}, "databricks_workspace_url"),
        ({"databricks_workspace_url": "https://w.example"}, "databricks_api_token"),
        ({"databricks_workspace_url": "ftp://w", "databricks_api_token_plaintext": "x"}, "databricks_workspace_url"),
    ],
)
def test_bad_config_is_rejected(
    server: LiveServer, ep_name: Callable[..., str], config: dict[str, Any], fragment: str
) -> None:
    entity = {
        "external_model": {
            "name": "x",
            "provider": "databricks-model-serving",
            "task": "llm/v1/chat",
            "databricks_model_serving_config": config,
        }
    }
    with server.client() as c:
        resp = c.post("/api/2.0/serving-endpoints", json={"name": ep_name(), "config": {"served_entities": [entity]}})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert fragment in resp.json()["message"]
