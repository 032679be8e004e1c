"""Reading back what the AI Gateway wrote: usage over time, top requesters, recent inference-table rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, MetaData, Table, case, cast, func, inspect, select
from sqlalchemy.orm import Session

from modelgate.gateway.tables import payload_table, usage_table

Json = dict[str, Any]


def _bucket_expr(dialect: str, column: Any, seconds: int) -> Any:
    """Start of the time bucket a row falls in, in epoch seconds (SQLite has no floor() by default).

    On SQLite this is integer division, spelled `//`: under SQLAlchemy 2 `/` is true division, rendered
    `/ (300 + 0.0)`, which floors nothing."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer) // seconds * seconds
    return func.floor(func.extract("epoch", column) / seconds) * seconds


def usage_report(s: Session, endpoint: str, *, hours: int, bucket_minutes: int, top: int = 10) -> Json:
    table = usage_table(MetaData())
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    dialect = s.get_bind().dialect.name
    seconds = bucket_minutes * 60
    bucket = _bucket_expr(dialect, table.c.request_time, seconds).label("bucket")
    where = (table.c.endpoint_name == endpoint) & (table.c.request_time >= since)
    rows = s.execute(
        select(
            bucket,
            func.count().label("requests"),
            func.sum(case((table.c.status_code >= 400, 1), else_=0)).label("errors"),
            func.sum(table.c.input_token_count).label("input_tokens"),
            func.sum(table.c.output_token_count).label("output_tokens"),
        )
        .where(where)
        .group_by(bucket)
        .order_by(bucket)
    ).all()
    requesters = s.execute(
        select(
            table.c.requester,
            func.count().label("requests"),
            func.sum(table.c.input_token_count + table.c.output_token_count).label("tokens"),
        )
        .where(where)
        .group_by(table.c.requester)
        .order_by(func.count().desc())
        .limit(top)
    ).all()
    return {
        "endpoint": endpoint,
        "bucket_minutes": bucket_minutes,
        "buckets": [
            {
                "start_time": int(float(r.bucket)) * 1000,
                "requests": int(r.requests),
                "errors": int(r.errors or 0),
                "input_tokens": int(r.input_tokens or 0),
                "output_tokens": int(r.output_tokens or 0),
            }
            for r in rows
            if r.bucket is not None
        ],
        "top_requesters": [
            {"requester": r.requester, "requests": int(r.requests), "tokens": int(r.tokens or 0)} for r in requesters
        ],
    }


def recent_payloads(s: Session, table_name: str, limit: int) -> list[Json]:
    if not inspect(s.get_bind()).has_table(table_name):
        return []
    table: Table = payload_table(MetaData(), table_name)
    rows = s.execute(select(table).order_by(table.c.request_time.desc()).limit(limit)).mappings().all()
    out = []
    for r in rows:
        item = {str(k): v for k, v in r.items()}  # column names are str subclasses orjson refuses as keys
        item["request_time"] = int(item["request_time"].timestamp() * 1000) if item["request_time"] else None
        item["request_date"] = item["request_date"].isoformat() if item["request_date"] else None
        out.append(item)
    return out
