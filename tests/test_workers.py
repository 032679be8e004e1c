"""`modelgate serve --workers N`: several processes on one port share the store and see each other's changes."""

from __future__ import annotations

import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config


def test_two_workers_serve_one_store(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstreamThread) -> None:
    data = tmp_path_factory.mktemp("mg-workers")
    with LiveServer(data, extra_args=["--workers", "2"], start_timeout=90) as server, server.client() as c:
        create_endpoint(c, "workers-chat", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        # New connections land on either worker; every one must know the endpoint (within the poll interval).
        codes = []
        for _ in range(20):
            with server.client() as fresh:
                body = {"messages": [{"role": "user", "content": "hi"}]}
                codes.append(fresh.post("/serving-endpoints/workers-chat/invocations", json=body).status_code)
        assert codes.count(200) >= 18, codes  # a worker may still be within its 1 s poll right after create
        assert set(codes) <= {200, 404}
    # One admin token, not one per worker.
    assert not (data / "admin-token").exists()
