"""A query re-sent with the same client_request_id while the first is running joins it (no duplicate work)."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config


def test_same_client_request_id_joins_the_running_query(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with server.client() as c:
        create_endpoint(c, "join-slow", external_chat_config(upstream.base_url, "slow-700", api_key=UPSTREAM_KEY))

    async def send(client_request_id: str) -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {server.admin_token}"}
        ) as ac:
            body = {"messages": [{"role": "user", "content": "join me"}], "client_request_id": client_request_id}
            return await ac.post("/serving-endpoints/join-slow/invocations", json=body)

    def slow_calls() -> int:
        return sum(1 for r in upstream.requests if r.json and r.json.get("model") == "slow-700")

    async def scenario() -> list[httpx.Response]:
        first = asyncio.create_task(send("retry-1"))
        # Once the model has the first query, the query is registered as running (a fixed sleep was not
        # always long enough on a loaded machine); the slow model answers 0.7 s later.
        for _ in range(1000):  # at most 10 s
            if slow_calls() > before:
                break
            await asyncio.sleep(0.01)
        return await asyncio.gather(first, send("retry-1"), send("other-2"))

    before = slow_calls()
    a, b, other = asyncio.run(scenario())
    after = slow_calls()
    assert a.status_code == b.status_code == other.status_code == 200
    assert a.json() == b.json()  # the very same answer
    assert other.json()["id"] != a.json()["id"]
    assert after - before == 2  # retry-1 once, other-2 once
