"""Usage tracking and inference tables, switched on through PUT .../ai-gateway, against live servers."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

Rows = Callable[[str], list[dict[str, Any]]]


def _rows_for(server: LiveServer, pg_url: str | None) -> Rows:
    def query(sql: str) -> list[dict[str, Any]]:
        if pg_url is None:
            con = sqlite3.connect(server.data_dir / "modelgate.db")
            con.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in con.execute(sql)]
            finally:
                con.close()
        with psycopg.connect(pg_url) as con, con.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    return query


def _wait_rows(rows: Rows, sql: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            found = rows(sql)
        except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
            found = []
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return found


def create_logged_endpoint(c: httpx.Client, name: str, upstream: FakeUpstreamThread, schema: str) -> None:
    """An external chat endpoint on the fake upstream with usage tracking and an inference table in `schema`."""
    create_endpoint(c, name, external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
    resp = c.put(
        f"/api/2.0/serving-endpoints/{name}/ai-gateway",
        json={
            "usage_tracking_config": {"enabled": True},
            "inference_table_config": {"catalog_name": "main", "schema_name": schema, "enabled": True},
        },
    )
    assert resp.status_code == 200, resp.text


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> tuple[LiveServer, Rows]:
    if request.param == "sqlite":
        server: LiveServer = request.getfixturevalue("server")
        return server, _rows_for(server, None)
    server = request.getfixturevalue("pg_server")
    return server, _rows_for(server, request.getfixturevalue("pg_url"))


def test_usage_rows_and_payloads(store: tuple[LiveServer, Rows], upstream: FakeUpstreamThread) -> None:
    server, rows = store
    name = "gw-usage-" + ("pg" if "mg-pg" in str(server.data_dir) else "lite")
    with server.client() as c:
        create_logged_endpoint(c, name, upstream, "logs")
        body = {
            "messages": [{"role": "user", "content": "one two three"}],
            "client_request_id": "req-1",
            "usage_context": {"team": "search"},
        }
        assert c.post(f"/serving-endpoints/{name}/invocations", json=body).status_code == 200
        with c.stream(
            "POST",
            f"/serving-endpoints/{name}/invocations",
            json={**body, "client_request_id": "req-2", "stream": True},
        ) as r:
            assert r.status_code == 200
            r.read()
        assert c.post(f"/serving-endpoints/{name}/invocations", json={"prompt": "x"}).status_code == 400

    usage = _wait_rows(rows, f"SELECT * FROM endpoint_usage WHERE endpoint_name = '{name}'", 2)
    by_id = {u["client_request_id"]: u for u in usage}
    assert set(by_id) == {"req-1", "req-2"}, usage
    for rid, streaming in (("req-1", False), ("req-2", True)):
        u = by_id[rid]
        assert u["status_code"] == 200
        assert u["requester"] == "admin"
        assert u["input_token_count"] == 3  # the fake counts words
        assert u["output_token_count"] == 4  # "echo: one two three"
        assert u["input_character_count"] == len("one two three")
        assert u["output_character_count"] == len("echo: one two three")
        assert bool(u["request_streaming"]) is streaming
        ctx = u["usage_context"]
        assert (json.loads(ctx) if isinstance(ctx, str) else ctx) == {"team": "search"}

    table = f"main.logs.{name}_payload"
    payloads = _wait_rows(rows, f'SELECT * FROM "{table}"', 2)
    by_id = {p["client_request_id"]: p for p in payloads}
    assert json.loads(by_id["req-1"]["request"])["messages"][0]["content"] == "one two three"
    assert json.loads(by_id["req-1"]["response"])["choices"][0]["message"]["content"] == "echo: one two three"
    streamed = json.loads(by_id["req-2"]["response"])
    assert streamed["choices"][0]["message"]["content"] == "echo: one two three"
    assert streamed["usage"]["completion_tokens"] == 4
    assert by_id["req-1"]["execution_duration_ms"] >= 0
    assert by_id["req-1"]["sampling_fraction"] == 1.0


def test_oversize_payload_is_not_stored(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    rows = _rows_for(server, None)
    name = "gw-oversize"
    with server.client() as c:
        create_endpoint(c, name, external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        c.put(
            f"/api/2.0/serving-endpoints/{name}/ai-gateway",
            json={"inference_table_config": {"catalog_name": "main", "schema_name": "big", "enabled": True}},
        )
        big = "word " * 250_000  # 1.25 MB of text
        resp = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={"messages": [{"role": "user", "content": big}], "client_request_id": "big-1", "max_tokens": 2},
        )
        assert resp.status_code == 200, resp.text
    (row,) = _wait_rows(rows, f'SELECT * FROM "main.big.{name}_payload"', 1)
    assert row["request"] is None
    assert json.loads(row["logging_error_codes"]) == ["MAX_REQUEST_SIZE_EXCEEDED"]
    assert json.loads(row["response"])["choices"][0]["finish_reason"] == "length"


def test_disconnected_stream_still_records_usage(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    rows = _rows_for(server, None)
    name = "gw-disconnect"
    with FakeUpstreamThread(api_key=UPSTREAM_KEY, stream_delay_ms=50) as slow, server.client() as c:
        create_endpoint(c, name, external_chat_config(slow.base_url, api_key=UPSTREAM_KEY))
        c.put(f"/api/2.0/serving-endpoints/{name}/ai-gateway", json={"usage_tracking_config": {"enabled": True}})
        words = " ".join(f"w{i}" for i in range(200))
        with c.stream(
            "POST",
            f"/serving-endpoints/{name}/invocations",
            json={"messages": [{"role": "user", "content": words}], "stream": True, "client_request_id": "cut-1"},
        ) as r:
            lines = r.iter_lines()
            for _ in range(6):
                next(lines)
        (row,) = _wait_rows(rows, f"SELECT * FROM endpoint_usage WHERE endpoint_name = '{name}'", 1)
    assert row["status_code"] == 499
    assert row["input_token_count"] > 0
    assert 0 < row["output_token_count"] < 201


def test_shutdown_flushes_every_row(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstreamThread) -> None:
    data = tmp_path_factory.mktemp("mg-flush")
    server = LiveServer(data).start()
    try:
        with server.client() as c:
            create_endpoint(c, "flush", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
            c.put("/api/2.0/serving-endpoints/flush/ai-gateway", json={"usage_tracking_config": {"enabled": True}})
        body = {"messages": [{"role": "user", "content": "hi"}]}
        import asyncio

        async def burst() -> None:
            async with httpx.AsyncClient(
                base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}
            ) as ac:
                sem = asyncio.Semaphore(32)

                async def one() -> None:
                    async with sem:
                        r = await ac.post("/serving-endpoints/flush/invocations", json=body)
                        assert r.status_code == 200

                await asyncio.gather(*(one() for _ in range(400)))

        asyncio.run(burst())
    finally:
        server.stop()  # SIGTERM: a graceful shutdown must write what is queued
    rows = _rows_for(server, None)("SELECT count(*) AS n FROM endpoint_usage WHERE endpoint_name = 'flush'")
    assert rows[0]["n"] == 400


def test_usage_report_and_recent_payloads(any_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    """The REST views of the tables that the UI's usage page reads."""
    name = "gw-report-" + ("pg" if "mg-pg" in str(any_server.data_dir) else "lite")
    reader = any_server.create_token(f"{name}-reader@example.com")
    with any_server.client() as c:
        create_logged_endpoint(c, name, upstream, "rep")
        for text in ("a b", "c d e"):
            assert (
                c.post(
                    f"/serving-endpoints/{name}/invocations", json={"messages": [{"role": "user", "content": text}]}
                ).status_code
                == 200
            )
        deadline = time.monotonic() + 15
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            report = c.get(f"/api/2.0/serving-endpoints/{name}/usage", params={"hours": 1, "bucket_minutes": 60}).json()
            if sum(b["requests"] for b in report.get("buckets", [])) == 2:
                break
            time.sleep(0.2)
        assert sum(b["requests"] for b in report["buckets"]) == 2
        assert sum(b["input_tokens"] for b in report["buckets"]) == 5
        assert report["top_requesters"] == [{"requester": "admin", "requests": 2, "tokens": 5 + 7}]
        resp = c.get(f"/api/2.0/serving-endpoints/{name}/inference-table", params={"max_results": 1})
        assert resp.status_code == 200, resp.text
        recent = resp.json()
        assert recent["table_name"] == f"main.rep.{name}_payload"
        assert len(recent["rows"]) == 1
        assert json.loads(recent["rows"][0]["request"])["messages"][0]["content"] in ("a b", "c d e")
        assert c.get(f"/api/2.0/serving-endpoints/{name}/usage", params={"hours": "x"}).status_code == 400
    with any_server.client(reader) as r:
        assert r.get(f"/api/2.0/serving-endpoints/{name}/usage").status_code in (403, 404)
