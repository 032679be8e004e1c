"""Transient upstream failures are retried inside the endpoint's `retry_budget_s`, for every provider.

Each test uses its own fake upstream so the request counts are exact; the shared test server's default
budget is 0 (tests/conftest.py), so every endpoint here sets its own.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import openai
import pytest

from modelgate.providers.upstream import backoff_s, is_transient, retry_after_seconds
from tests.conftest import UPSTREAM_KEY
from tests.fakes.anthropic_upstream import FakeAnthropicThread
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.providers.conftest import anthropic_entity
from tests.support.live import LiveServer, create_endpoint, free_port


@pytest.fixture
def fake() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(api_key=UPSTREAM_KEY) as upstream:
        yield upstream


def openai_entity(base_url: str, model: str = "gpt-4o-mini", **config: Any) -> dict[str, Any]:
    cfg = {"openai_api_base": base_url, "openai_api_key_plaintext": UPSTREAM_KEY, **config}
    return {"external_model": {"name": model, "provider": "openai", "task": "llm/v1/chat", "openai_config": cfg}}


def make_endpoint(server: LiveServer, name: str, entity: dict[str, Any]) -> str:
    with server.client() as c:
        create_endpoint(c, name, entity)
    return name


def chat_paths(fake: FakeUpstreamThread) -> list[str]:
    return [r.path for r in fake.requests if r.path.endswith("/chat/completions")]


def test_503_twice_then_success_is_one_200_after_three_calls(
    server: LiveServer, oai: openai.OpenAI, fake: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = make_endpoint(server, ep_name(), openai_entity(fake.base_url, retry_budget_s=10))
    fake.fail_next(503, count=2, retry_after=1)
    started = time.monotonic()
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "third time"}])
    elapsed = time.monotonic() - started
    assert answer.choices[0].message.content == "echo: third time"
    assert chat_paths(fake) == ["/v1/chat/completions"] * 3
    assert [r.status for r in fake.requests] == [503, 503, 200]
    assert elapsed >= 2.0  # Retry-After: 1 honoured before each retry


def test_retry_after_longer_than_budget_fails_at_once(
    server: LiveServer, oai: openai.OpenAI, fake: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = make_endpoint(server, ep_name(), openai_entity(fake.base_url, retry_budget_s=2))
    fake.fail_next(503, count=1, retry_after=30)
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "later"}])
    assert time.monotonic() - started < 1.5
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"] == "30"
    assert isinstance(info.value.body, dict) and info.value.body["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert len(chat_paths(fake)) == 1


def test_429_with_backoff_until_budget_runs_out(
    server: LiveServer, oai: openai.OpenAI, fake: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    """Always 429 with a 1 s Retry-After and a 2.5 s budget: the first call and two retries, then the 429."""
    name = make_endpoint(server, ep_name(), openai_entity(fake.base_url, "fail-429", retry_budget_s=2.5))
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "busy"}])
    assert info.value.status_code == 429
    assert isinstance(info.value.body, dict) and info.value.body["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert [r.status for r in fake.requests] == [429, 429, 429]


@pytest.mark.parametrize("status", [400, 404])
def test_client_errors_are_not_retried(
    server: LiveServer, oai: openai.OpenAI, fake: FakeUpstreamThread, ep_name: Callable[..., str], status: int
) -> None:
    name = make_endpoint(server, ep_name(), openai_entity(fake.base_url, retry_budget_s=10))
    fake.fail_next(status, count=1)
    with pytest.raises(openai.APIStatusError) as info:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "bad"}])
    assert info.value.status_code == status
    assert [r.status for r in fake.requests] == [status]


def test_stream_is_retried_before_its_first_chunk(
    server: LiveServer, oai: openai.OpenAI, fake: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = make_endpoint(server, ep_name(), openai_entity(fake.base_url, retry_budget_s=10))
    fake.fail_next(429, count=1, retry_after=0)
    stream = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "streamed"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: streamed"
    assert [r.status for r in fake.requests] == [429, 200]
    assert [r.json["stream"] for r in fake.requests] == [True, True]


@pytest.fixture
def hangs_up() -> Iterator[tuple[str, list[int]]]:
    """A base URL whose server accepts each connection and closes it at once (a transport error that is not a
    refusal), and the list that counts its connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", accepted
    listener.close()
    thread.join(timeout=5)


def test_connection_errors_are_retried_until_the_budget(
    server: LiveServer, oai: openai.OpenAI, ep_name: Callable[..., str], hangs_up: tuple[str, list[int]]
) -> None:
    """The upstream hangs up on every request: backoff retries fill (but never pass) the budget, then the 503."""
    url, accepted = hangs_up
    name = make_endpoint(server, ep_name(), openai_entity(url, retry_budget_s=1))
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "anyone"}])
    elapsed = time.monotonic() - started
    assert info.value.status_code == 503
    assert "could not be reached" in str(info.value.body)
    assert len(accepted) >= 2  # retried
    assert elapsed < 2.0


def test_refused_connection_is_not_retried(server: LiveServer, ep_name: Callable[..., str]) -> None:
    """Nothing listens: the 503 comes at once, budget or not, naming the upstream; even the OpenAI client's
    own retries (twice, after Retry-After: 1) end within a few seconds."""
    port = free_port()
    name = make_endpoint(server, ep_name(), openai_entity(f"http://127.0.0.1:{port}/v1", retry_budget_s=30))
    client = openai.OpenAI(base_url=server.url + "/serving-endpoints", api_key=server.admin_token)  # default retries
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "anyone"}])
    elapsed = time.monotonic() - started
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict) and info.value.body["error_code"] == "TEMPORARILY_UNAVAILABLE"
    message = info.value.body["message"]
    assert f"upstream at http://127.0.0.1:{port} could not be reached: it refused the connection" in message
    assert elapsed < 5.0


def test_other_providers_retry_too(
    server: LiveServer, oai: openai.OpenAI, anthropic_fake: FakeAnthropicThread, ep_name: Callable[..., str]
) -> None:
    """Retries live in the shared upstream client: Anthropic's 529 overloaded is retried the same way."""
    name = make_endpoint(server, ep_name(), anthropic_entity(anthropic_fake.url, retry_budget_s=10))
    marker = f"overloaded {name}"
    anthropic_fake.fail_next(529, count=1, retry_after=0)
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}])
    assert answer.choices[0].message.content
    assert len([r for r in anthropic_fake.requests if marker in str(r.json)]) == 2


@pytest.mark.parametrize("value", [-1, 601, "soon", True])
def test_bad_retry_budget_is_rejected(server: LiveServer, ep_name: Callable[..., str], value: Any) -> None:
    with server.client() as c:
        resp = c.post(
            "/api/2.0/serving-endpoints",
            json={
                "name": ep_name(),
                "config": {"served_entities": [openai_entity("http://x/v1", retry_budget_s=value)]},
            },
        )
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "openai_config.retry_budget_s must be a number of seconds from 0 to 600",
    }


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_header_forms(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_http_date_in_the_future() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    seconds = retry_after_seconds(when)
    assert seconds is not None and 115 <= seconds <= 120


def test_backoff_grows_and_is_capped() -> None:
    for attempt, cap in [(0, 0.25), (1, 0.5), (3, 2.0), (10, 8.0)]:
        waits = [backoff_s(attempt) for _ in range(200)]
        assert all(0 <= w <= cap for w in waits)
        assert max(waits) > cap / 2  # jittered across the range, not stuck at 0
    assert [is_transient(s) for s in (400, 401, 404, 422, 429, 500, 503, 529)] == [False] * 4 + [True] * 4
