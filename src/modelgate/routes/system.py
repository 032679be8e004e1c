"""Unauthenticated service routes: health, Prometheus metrics, host metadata the Databricks SDK probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.routes.common import JSONResponse, services


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    return Response(services(request).metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def databricks_config(request: Request) -> Response:
    """Host metadata: databricks-sdk >= 0.99 reads it on every client construction (clients.md §2.1)."""
    base = f"{request.url.scheme}://{request.url.netloc}"
    return JSONResponse(
        {
            "oidc_endpoint": f"{base}/oidc",
            "workspace_id": services(request).workspace_id,
            "cloud": "aws",
        }
    )


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/.well-known/databricks-config", databricks_config, methods=["GET"]),
]
