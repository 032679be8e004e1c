"""Upstream failures become Databricks errors: the right status, error_code, Retry-After and
`external_model_message`, and never the endpoint's API key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes import openai_payloads as p
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.serving.support import external_entity, requests_with
from tests.support.live import LiveServer, create_endpoint, free_port


def chat_endpoint(server: LiveServer, name: str, base_url: str, model: str, api_key: str = UPSTREAM_KEY) -> None:
    with server.client() as c:
        create_endpoint(c, name, external_entity(base_url, model, api_key=api_key))


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.parametrize(
    ("status", "error_code", "retry_after", "exc_type"),
    [
        (429, "REQUEST_LIMIT_EXCEEDED", "1", openai.RateLimitError),
        (500, "INTERNAL_ERROR", None, openai.InternalServerError),
        (503, "TEMPORARILY_UNAVAILABLE", "1", openai.InternalServerError),
    ],
)
def test_upstream_status_through_openai_client(
    server: LiveServer,
    oai: openai.OpenAI,
    upstream: FakeUpstreamThread,
    ep_name: Callable[..., str],
    status: int,
    error_code: str,
    retry_after: str | None,
    exc_type: type[openai.APIStatusError],
) -> None:
    name = ep_name()
    chat_endpoint(server, name, upstream.base_url, f"fail-{status}")
    marker = f"fail marker {name}"
    with pytest.raises(exc_type) as info:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}])
    err = info.value
    assert err.status_code == status
    assert err.response.headers.get("retry-after") == retry_after
    assert err.body == {
        "error_code": error_code,
        "message": "Received error from openai",
        "external_model_message": p.error_body(status, f"Injected {status} error")["error"],
    }
    # One call upstream: the client was told not to retry, the endpoint has no fallback, and the test server's
    # retry budget is 0 (tests/conftest.py; retries are covered in tests/providers/test_retries.py).
    assert [r.json["model"] for r in requests_with(upstream, marker)] == [f"fail-{status}"]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_429_on_invocations(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str], stream: bool
) -> None:
    """Also for streams: an error before the first chunk is an HTTP error, not an event in a 200 stream."""
    name = ep_name()
    chat_endpoint(server, name, upstream.base_url, "fail-429")
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("rate limited", stream=stream))
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert body["external_model_message"]["message"] == "Injected 429 error"
    assert body["external_model_message"]["code"] == "rate_limit_exceeded"


def test_upstream_502_maps_to_temporarily_unavailable(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    chat_endpoint(server, name, upstream.base_url, "fail-502")
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("bad gateway"))
    assert resp.status_code == 502
    assert resp.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert resp.json()["external_model_message"]["message"] == "Injected 502 error"


def test_upstream_400_is_passed_on(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    chat_endpoint(server, name, upstream.base_url, "fail-400")
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("bad request upstream"))
    assert resp.status_code == 400
    body = resp.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert body["external_model_message"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_401_is_a_400_without_the_key(
    server: LiveServer,
    oai: openai.OpenAI,
    upstream: FakeUpstreamThread,
    ep_name: Callable[..., str],
    stream: bool,
) -> None:
    name = ep_name()
    wrong_key = "sk-wrong-" + name
    chat_endpoint(server, name, upstream.base_url, "gpt-4o-mini", api_key=wrong_key)
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "bad key"}], stream=stream)
    err = info.value
    assert err.status_code == 400
    assert err.body == {
        "error_code": "BAD_REQUEST",
        "message": "Received error from openai",
        "external_model_message": p.error_body(401, "Incorrect API key provided")["error"],
    }
    assert wrong_key not in err.response.text
    assert wrong_key not in str(err.response.headers)
    assert wrong_key not in server.log()


@pytest.mark.parametrize("stream", [False, True])
def test_unreachable_upstream_is_503(server: LiveServer, ep_name: Callable[..., str], stream: bool) -> None:
    name = ep_name()
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    chat_endpoint(server, name, closed, "gpt-4o-mini")
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("anyone there", stream=stream))
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "1"
    body = resp.json()
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "could not be reached" in body["message"]


def test_unreachable_upstream_through_openai_client(
    server: LiveServer, oai: openai.OpenAI, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    chat_endpoint(server, name, f"http://127.0.0.1:{free_port()}/v1", "gpt-4o-mini")
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "hello?"}])
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"] == "1"
    assert isinstance(info.value.body, dict) and info.value.body["error_code"] == "TEMPORARILY_UNAVAILABLE"


def test_injected_failure_then_recovery(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    """A transient upstream 503 fails one request; the next one succeeds (no state is left behind)."""
    name = ep_name()
    chat_endpoint(server, name, upstream.base_url, "gpt-4o-mini")
    with server.client() as c:
        upstream.fail_next(503, count=1, retry_after=7)
        first = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("transient"))
        second = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("transient"))
    assert first.status_code == 503
    assert first.headers["retry-after"] == "7"
    assert first.json()["external_model_message"]["message"] == "Injected 503 error"
    assert second.status_code == 200
    assert second.json()["choices"][0]["message"]["content"] == "echo: transient"
