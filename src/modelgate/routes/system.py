"""Service routes: health and the host metadata the Databricks SDK probes (open), Prometheus metrics.

`/metrics` names every endpoint and served entity with its traffic and errors, which endpoint permissions
hide from those who may not view them, so it takes an admin's token unless MODELGATE_METRICS_PUBLIC=1
(a Prometheus scrape sends one with `authorization: {credentials_file: ...}`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.errors import PermissionDenied
from modelgate.routes.common import JSONResponse, principal, services


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    svc = services(request)
    if not svc.settings.metrics_public:
        who = await principal(request)
        if not who.is_admin:
            raise PermissionDenied(
                f"{who.name} may not read /metrics: it covers every endpoint, so it needs a workspace admin's "
                "token. Per endpoint: GET /api/2.0/serving-endpoints/{name}/metrics."
            )
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
