"""modelgate extensions for reading the AI Gateway's tables over REST (the UI's usage charts use them).

- `GET /api/2.0/serving-endpoints/{name}/usage?hours=24&bucket_minutes=60`: requests, errors and tokens per
  time bucket and the top requesters, from `endpoint_usage` (CAN_MANAGE).
- `GET /api/2.0/serving-endpoints/{name}/inference-table?max_results=20`: the newest payload rows (CAN_MANAGE,
  since payloads hold users' data).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth.permissions import Level
from modelgate.errors import InvalidParameterValue
from modelgate.gateway.reports import recent_payloads, usage_report
from modelgate.gateway.tables import payload_table_name
from modelgate.routes.common import JSONResponse, principal, services

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


routes = [
    Route(BASE + "/usage", usage, methods=["GET"]),
    Route(BASE + "/inference-table", inference_table, methods=["GET"]),
]
