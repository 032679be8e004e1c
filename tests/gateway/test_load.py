"""Bounded load on loopback: 20,000 queries with usage tracking and inference tables on lose no row."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import aiohttp
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

TOTAL = 20_000
IN_FLIGHT = 64


async def _drive(url: str, token: str, total: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    body = {"messages": [{"role": "user", "content": "load test"}], "max_tokens": 8}
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        next_id = iter(range(total))

        async def worker() -> None:
            for i in next_id:
                payload = {**body, "client_request_id": f"load-{i}"}
                async with session.post(f"{url}/serving-endpoints/load/invocations", json=payload) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return statuses


@pytest.mark.slow
def test_twenty_thousand_queries_twenty_thousand_rows(tmp_path_factory: pytest.TempPathFactory) -> None:
    with FakeUpstreamThread(api_key=UPSTREAM_KEY, record=False) as upstream:
        server = LiveServer(tmp_path_factory.mktemp("mg-load")).start()
        try:
            with server.client() as c:
                create_endpoint(c, "load", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
                resp = c.put(
                    "/api/2.0/serving-endpoints/load/ai-gateway",
                    json={
                        "usage_tracking_config": {"enabled": True},
                        "inference_table_config": {"catalog_name": "main", "schema_name": "load", "enabled": True},
                    },
                )
                assert resp.status_code == 200
            started = time.monotonic()
            statuses = asyncio.run(_drive(server.url, server.admin_token, TOTAL))
            elapsed = time.monotonic() - started
            print(f"{TOTAL} queries in {elapsed:.1f} s ({TOTAL / elapsed:.0f}/s)")
            assert statuses == {200: TOTAL}
            with server.client() as c:
                metrics = c.get("/metrics").text
            assert "modelgate_gateway_rows_dropped_total 0.0" in metrics
        finally:
            server.stop()
    con = sqlite3.connect(server.data_dir / "modelgate.db")
    try:
        usage = con.execute("SELECT count(*), count(DISTINCT client_request_id) FROM endpoint_usage").fetchone()
        payloads = con.execute(
            'SELECT count(*), count(DISTINCT client_request_id) FROM "main.load.load_payload"'
        ).fetchone()
    finally:
        con.close()
    assert usage == (TOTAL, TOTAL)
    assert payloads == (TOTAL, TOTAL)
