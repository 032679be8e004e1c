"""Provider `custom`: any OpenAI-compatible server, with bearer-token or API-key-header auth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.serving.support import requests_with, sse_events
from tests.support.live import LiveServer, create_endpoint

BEARER_TOKEN = "custom-bearer-token-4f1c"
HEADER_NAME, HEADER_VALUE = "x-api-key", "custom-header-value-9d2e"


@pytest.fixture(scope="module")
def bearer_upstream() -> Iterator[FakeUpstreamThread]:
    """Answers only `Authorization: Bearer <BEARER_TOKEN>`."""
    with FakeUpstreamThread(api_key=BEARER_TOKEN) as fake:
        yield fake


@pytest.fixture(scope="module")
def header_upstream() -> Iterator[FakeUpstreamThread]:
    """Answers only `x-api-key: <HEADER_VALUE>`."""
    with FakeUpstreamThread(api_key_header=(HEADER_NAME, HEADER_VALUE)) as fake:
        yield fake


def custom_entity(url: str, auth: dict[str, Any], model: str = "my-served-model", task: str = "llm/v1/chat") -> Any:
    return {
        "external_model": {
            "name": model,
            "provider": "custom",
            "task": task,
            "custom_provider_config": {"custom_provider_url": url, **auth},
        }
    }


BEARER_AUTH = {"bearer_token_auth": {"token_plaintext": BEARER_TOKEN}}
HEADER_AUTH = {"api_key_auth": {"key": HEADER_NAME, "value_plaintext": HEADER_VALUE}}


def test_bearer_token_auth(
    server: LiveServer, bearer_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, custom_entity(bearer_upstream.base_url, BEARER_AUTH))
        body = {"messages": [{"role": "user", "content": "bearer marker"}]}
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "echo: bearer marker"
    assert resp.headers["served-model-name"] == "my-served-model"
    [sent] = requests_with(bearer_upstream, "bearer marker")
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {BEARER_TOKEN}"
    assert sent.json == {"model": "my-served-model", **body}


def test_api_key_header_auth(
    server: LiveServer, header_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, custom_entity(header_upstream.base_url, HEADER_AUTH))
        body = {"messages": [{"role": "user", "content": "api key header marker"}]}
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "echo: api key header marker"
    [sent] = requests_with(header_upstream, "api key header marker")
    assert sent.headers[HEADER_NAME] == HEADER_VALUE
    assert "authorization" not in sent.headers


def test_custom_provider_streams(
    server: LiveServer, header_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, custom_entity(header_upstream.base_url, HEADER_AUTH))
        body = {"messages": [{"role": "user", "content": "custom stream marker"}], "stream": True}
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=body)
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == (
        "echo: custom stream marker"
    )
    assert events[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    [sent] = requests_with(header_upstream, "custom stream marker")
    assert sent.headers[HEADER_NAME] == HEADER_VALUE


def test_custom_provider_embeddings(
    server: LiveServer, bearer_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    entity = custom_entity(bearer_upstream.base_url, BEARER_AUTH, model="my-embedder", task="llm/v1/embeddings")
    with server.client() as c:
        create_endpoint(c, name, entity)
        resp = c.post("/serving-endpoints/embeddings", json={"model": name, "input": "custom embeddings marker"})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["data"][0]["embedding"]) == 8
    [sent] = requests_with(bearer_upstream, "custom embeddings marker")
    assert sent.path == "/v1/embeddings"
    assert sent.headers["authorization"] == f"Bearer {BEARER_TOKEN}"


def test_url_with_route_suffix_is_used_as_is(
    server: LiveServer, bearer_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, custom_entity(bearer_upstream.base_url + "/chat/completions", BEARER_AUTH))
        body = {"messages": [{"role": "user", "content": "full url marker"}]}
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=body)
    assert resp.status_code == 200, resp.text
    [sent] = requests_with(bearer_upstream, "full url marker")
    assert sent.path == "/v1/chat/completions"


def test_wrong_custom_credentials_are_a_400(
    server: LiveServer, header_upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    wrong = {"api_key_auth": {"key": HEADER_NAME, "value_plaintext": "not-the-right-value-" + name}}
    with server.client() as c:
        create_endpoint(c, name, custom_entity(header_upstream.base_url, wrong))
        resp = c.post(f"/serving-endpoints/{name}/invocations", json={"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "BAD_REQUEST"
    assert resp.json()["external_model_message"]["code"] == "invalid_api_key"
    assert "not-the-right-value-" not in resp.text


def test_both_auth_kinds_rejected_at_create(server: LiveServer, ep_name: Callable[..., str]) -> None:
    entity = custom_entity("http://127.0.0.1:9/v1", {**BEARER_AUTH, **HEADER_AUTH})
    with server.client() as c:
        resp = c.post("/api/2.0/serving-endpoints", json={"name": ep_name(), "config": {"served_entities": [entity]}})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert BEARER_TOKEN not in resp.text and HEADER_VALUE not in resp.text
