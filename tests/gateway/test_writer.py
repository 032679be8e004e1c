"""The gateway writer against a real SQLite file and a real PostgreSQL database: rows land whole, in both
shapes (optional columns bound or left out), including each batch's tail that does not fill a 32-row
statement."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from modelgate.gateway.recorder import FinishedQuery
from modelgate.gateway.tables import recording_plan
from modelgate.gateway.writer import GatewayWriter
from modelgate.settings import Settings
from modelgate.store.db import Database

# 70 queries; every other one has a client_request_id, every third a usage_context. Usage rows: 47 full
# (32 + 15), 23 bare; payload rows: 35 of each shape (32 + 3).
COUNT = 70
START = 1_763_800_000.0


def _query(plan_endpoint: str, i: int) -> FinishedQuery:
    plan = recording_plan(plan_endpoint, {"usage_tracking_config": {"enabled": True}, "inference_table_config": {
        "enabled": True, "catalog_name": "main", "schema_name": "writer"}})  # fmt: skip
    assert plan is not None
    body = {"messages": [{"role": "user", "content": f"question {i}"}]}
    return FinishedQuery(
        plan=plan,
        endpoint=plan_endpoint,
        endpoint_id="e1",
        requester=f"user{i}@example.com",
        client_request_id=None if i % 2 else f"client-{i}",
        served_entity="openai",
        status_code=200,
        request_time=START + i,
        duration_s=0.012,
        prompt_tokens=i,
        completion_tokens=2 * i,
        input_chars=10,
        output_chars=20,
        usage_context={"team": "a"} if i % 3 == 0 else None,
        streaming=bool(i % 5 == 0),
        keeps_payload=True,
        request=orjson.dumps(body),
        response={"choices": [{"message": {"role": "assistant", "content": f"answer {i}"}}]},
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'writer.db'}")
    else:
        db = Database(request.getfixturevalue("pg_url"))
    yield db
    db.dispose()


def test_rows_land_whole_in_both_shapes(database: Database) -> None:
    endpoint = f"writer-{uuid.uuid4().hex[:8]}"
    writer = GatewayWriter(database)
    for i in range(COUNT):
        writer.submit(_query(endpoint, i))
    writer.start()
    writer.flush()
    writer.close()
    assert (writer.written, writer.failed, writer.dropped) == (2 * COUNT, 0, 0)
    payload = f"main.writer.{endpoint}_payload"
    with database.engine.connect() as conn:
        usage = conn.execute(
            text(
                "SELECT requester, client_request_id, input_token_count, output_token_count, usage_context,"
                " request_streaming FROM endpoint_usage WHERE endpoint_name = :e ORDER BY request_time"
            ),
            {"e": endpoint},
        ).all()
        payloads = conn.execute(
            text(f'SELECT request, response, client_request_id FROM "{payload}" ORDER BY request_time')
        ).all()
    assert [row[0] for row in usage] == [f"user{i}@example.com" for i in range(COUNT)]
    for i, (_, client_id, tokens_in, tokens_out, context, streaming) in enumerate(usage):
        assert client_id == (None if i % 2 else f"client-{i}")
        assert (tokens_in, tokens_out) == (i, 2 * i)
        context = orjson.loads(context) if isinstance(context, str) else context
        assert context == ({"team": "a"} if i % 3 == 0 else None)
        assert bool(streaming) is (i % 5 == 0)
    assert len(payloads) == COUNT
    for i, (request, response, client_id) in enumerate(payloads):
        assert orjson.loads(request) == {"messages": [{"role": "user", "content": f"question {i}"}]}
        assert orjson.loads(response)["choices"][0]["message"]["content"] == f"answer {i}"
        assert client_id == (None if i % 2 else f"client-{i}")


def test_rows_wait_for_the_flush_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_GATEWAY_FLUSH_INTERVAL_S", "3600")
    interval = Settings.from_env(data_dir=tmp_path).gateway_flush_interval_s
    assert interval == 3600.0
    db = Database(f"sqlite:///{tmp_path / 'interval.db'}")
    writer = GatewayWriter(db, flush_interval_s=interval)
    writer.start()
    try:
        time.sleep(0.3)  # the thread is now asleep for the interval
        writer.submit(_query("interval", 0))
        time.sleep(0.5)
        assert writer.written == 0  # nothing written before the interval ends or a flush is asked for
        writer.flush()
        assert writer.written == 2
    finally:
        writer.close()
        db.dispose()
