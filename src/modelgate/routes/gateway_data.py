"""modelgate extensions for reading the AI Gateway's tables over REST (the UI's usage charts use them).

- `GET /api/2.0/serving-endpoints/{name}/usage?hours=24&bucket_minutes=60`: requests, errors and tokens per
  time bucket and the top requesters, from `endpoint_usage` (CAN_MANAGE).
- `GET /api/2.0/serving-endpoints/{name}/inference-table?max_results=20`: the newest payload rows (CAN_MANAGE,
  since payloads hold users' data).
- `GET .../{name}/inference-table/export` and `GET .../{name}/usage/export`, with optional `format=parquet`,
  `start_time` and `end_time` (epoch ms, ISO 8601, or `24h`/`7d` back from now): the table's rows as a Parquet
  file (CAN_MANAGE). Delta Lake tables are directories, so they are written by `modelgate export` instead.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import IO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelgate.auth.permissions import Level
from modelgate.errors import InvalidParameterValue
from modelgate.gateway.export import (
    ExportSource,
    check_inference_table,
    export_to_spool,
    inference_table_source,
    parse_format,
    time_range,
    usage_source,
)
from modelgate.gateway.reports import recent_payloads, usage_report
from modelgate.gateway.tables import payload_table_name
from modelgate.routes.common import JSONResponse, principal, services
from modelgate.store.tables import Endpoint

BASE = "/api/2.0/serving-endpoints/{name}"


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidParameterValue(f"'{name}' must be an integer from {low} to {high}")
    return int(raw)


async def usage(request: Request) -> Response:
    who = await principal(request)
    name = request.path_params["name"]
    await services(request).endpoints.require_level(who, name, Level.CAN_MANAGE)
    hours = _int_param(request, "hours", 24, 1, 24 * 90)
    bucket = _int_param(request, "bucket_minutes", 60, 1, 24 * 60)
    report = await services(request).db.run(lambda s: usage_report(s, name, hours=hours, bucket_minutes=bucket))
    return JSONResponse(report)


async def inference_table(request: Request) -> Response:
    who = await principal(request)
    name = request.path_params["name"]
    row = await services(request).endpoints.require_level(who, name, Level.CAN_MANAGE)
    limit = _int_param(request, "max_results", 20, 1, 1000)
    config = (row.ai_gateway or {}).get("inference_table_config") or {}
    table = payload_table_name(config, name)
    rows = await services(request).db.run(lambda s: recent_payloads(s, table, limit))
    return JSONResponse({"table_name": table, "enabled": bool(config.get("enabled")), "rows": rows})


_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _chunks(spool: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    try:
        while chunk := spool.read(size):
            yield chunk
    finally:
        spool.close()


async def _export(
    request: Request, source_for: Callable[[str, Endpoint], ExportSource], *, is_payload: bool = False
) -> Response:
    who = await principal(request)
    name = request.path_params["name"]
    svc = services(request)
    row = await svc.endpoints.require_level(who, name, Level.CAN_MANAGE)
    if parse_format(request.query_params.get("format")) != "parquet":
        raise InvalidParameterValue(
            "Over REST, tables export as 'parquet' only: a Delta Lake table is a directory. "
            "Write one with: modelgate export inference-table|usage ENDPOINT --format delta --out DIR"
        )
    rng = time_range(request.query_params.get("start_time"), request.query_params.get("end_time"))
    if is_payload:
        await asyncio.to_thread(check_inference_table, svc.db.engine, name, row.ai_gateway)
    source = source_for(name, row)
    await asyncio.to_thread(svc.writer.flush, 2.0)  # rows this process has accepted so far are included
    spool, rows = await asyncio.to_thread(export_to_spool, svc.db.engine, source, rng)
    size = spool.seek(0, 2)
    spool.seek(0)
    headers = {
        "Content-Disposition": f'attachment; filename="{_FILENAME_UNSAFE.sub("_", source.table_name)}.parquet"',
        "Content-Length": str(size),
        "X-Modelgate-Row-Count": str(rows),
    }
    return StreamingResponse(_chunks(spool), media_type="application/vnd.apache.parquet", headers=headers)


async def inference_table_export(request: Request) -> Response:
    return await _export(request, lambda name, row: inference_table_source(name, row.ai_gateway), is_payload=True)


async def usage_export(request: Request) -> Response:
    return await _export(request, lambda name, _row: usage_source(name))


routes = [
    Route(BASE + "/usage", usage, methods=["GET"]),
    Route(BASE + "/inference-table", inference_table, methods=["GET"]),
    Route(BASE + "/inference-table/export", inference_table_export, methods=["GET"]),
    Route(BASE + "/usage/export", usage_export, methods=["GET"]),
]
