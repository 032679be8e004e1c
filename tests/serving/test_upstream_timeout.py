"""MODELGATE_UPSTREAM_TIMEOUT_S bounds each wait for the upstream, not the whole call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.serving.support import external_entity, sse_events
from tests.support.live import LiveServer, create_endpoint

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def short_timeout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"MODELGATE_UPSTREAM_TIMEOUT_S": str(TIMEOUT_S), "MODELGATE_UPSTREAM_RETRY_BUDGET_S": "0"}
    with LiveServer(Path(tmp_path_factory.mktemp("mg-timeout")), env=env) as live:
        yield live


@pytest.fixture(scope="module")
def trickling_upstream() -> Iterator[FakeUpstreamThread]:
    """Sends an SSE event every 300 ms: each wait is short, the whole stream longer than the timeout."""
    with FakeUpstreamThread(api_key=UPSTREAM_KEY, stream_delay_ms=300) as fake:
        yield fake


def test_an_upstream_slower_than_the_timeout_is_a_504(
    short_timeout_server: LiveServer, upstream: FakeUpstreamThread
) -> None:
    with short_timeout_server.client() as c:
        create_endpoint(c, "too-slow", external_entity(upstream.base_url, "slow-2500"))
        resp = c.post("/serving-endpoints/too-slow/invocations", json={"messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 504
    body = resp.json()
    assert body["error_code"] == "DEADLINE_EXCEEDED"
    assert "did not answer in time" in body["message"]


def test_a_stream_that_keeps_sending_outlives_the_timeout(
    short_timeout_server: LiveServer, trickling_upstream: FakeUpstreamThread
) -> None:
    with short_timeout_server.client() as c:
        create_endpoint(c, "trickle", external_entity(trickling_upstream.base_url, "gpt-4o-mini"))
        body = {"messages": [{"role": "user", "content": "one two three four five six"}], "stream": True}
        resp = c.post("/serving-endpoints/trickle/invocations", json=body, timeout=30)
    assert resp.status_code == 200
    events = sse_events(resp.text)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    assert text == "echo: one two three four five six"
    assert resp.elapsed.total_seconds() > 2 * TIMEOUT_S  # it ran past the timeout without being cut
