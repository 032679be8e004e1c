"""The usage report's time buckets, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, create_engine
from sqlalchemy.orm import Session

from modelgate.gateway.reports import usage_report
from modelgate.gateway.tables import usage_table
from tests.support.services import fresh_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'usage.db'}")
        yield eng
        eng.dispose()
        return
    with fresh_postgres_database() as url:
        eng = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        yield eng
        eng.dispose()


def test_usage_buckets_are_floored_to_the_bucket_size(engine: Engine) -> None:
    table = usage_table(MetaData())
    table.metadata.create_all(engine)
    start = (int(time.time()) // 300 - 3) * 300  # a 5-minute boundary, a quarter of an hour ago
    offsets = [1.5, 61, 299.9, 300, 301, 650]
    rows = []
    for i, offset in enumerate(offsets):
        at = dt.datetime.fromtimestamp(start + offset, tz=dt.UTC)
        rows.append(
            {
                "databricks_request_id": f"r{i}",
                "endpoint_name": "ep",
                "requester": "u",
                "status_code": 500 if i == 0 else 200,
                "usage_date": at.date(),
                "request_time": at,
                "input_token_count": 1,
                "output_token_count": 2,
            }
        )
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    with Session(engine) as s:
        report = usage_report(s, "ep", hours=24, bucket_minutes=5)
    got = [(b["start_time"], b["requests"], b["errors"], b["output_tokens"]) for b in report["buckets"]]
    ms = 1000
    assert got == [(start * ms, 3, 1, 6), ((start + 300) * ms, 2, 0, 4), ((start + 600) * ms, 1, 0, 2)]
