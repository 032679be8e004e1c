"""Control plane: /api/2.0/serving-endpoints (with and without the trailing slash) and permissions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth.permissions import Level
from modelgate.errors import ResourceDoesNotExist
from modelgate.protocol.common import M, validate_request
from modelgate.protocol.endpoints import (
    AiGatewayConfig,
    CreateEndpointRequest,
    EndpointCoreConfigInput,
    PatchTagsRequest,
    PermissionsRequest,
    PutRateLimitsRequest,
)
from modelgate.routes.common import JSONResponse, principal, read_json_object, services

BASE = "/api/2.0/serving-endpoints"
PERMS = "/api/2.0/permissions/serving-endpoints"


async def _body(request: Request, model: type[M]) -> M:
    return validate_request(model, await read_json_object(request), control_plane=True)


def _server_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def create_endpoint(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, CreateEndpointRequest)
    return JSONResponse(await services(request).endpoints.create(who, req))


async def list_endpoints(request: Request) -> Response:
    who = await principal(request)
    return JSONResponse({"endpoints": await services(request).endpoints.list_visible(who)})


async def get_endpoint(request: Request) -> Response:
    who = await principal(request)
    return JSONResponse(await services(request).endpoints.get(who, request.path_params["name"]))


async def delete_endpoint(request: Request) -> Response:
    who = await principal(request)
    await services(request).endpoints.delete(who, request.path_params["name"])
    return JSONResponse({})


async def update_config(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, EndpointCoreConfigInput)
    return JSONResponse(await services(request).endpoints.update_config(who, request.path_params["name"], req))


async def put_ai_gateway(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, AiGatewayConfig)
    return JSONResponse(await services(request).endpoints.put_ai_gateway(who, request.path_params["name"], req))


async def put_rate_limits(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, PutRateLimitsRequest)
    limits = [r.model_dump(exclude_none=True) for r in req.rate_limits]
    return JSONResponse(await services(request).endpoints.put_rate_limits(who, request.path_params["name"], limits))


async def patch_tags(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, PatchTagsRequest)
    return JSONResponse(await services(request).endpoints.patch_tags(who, request.path_params["name"], req))


async def get_openapi(request: Request) -> Response:
    who = await principal(request)
    doc = await services(request).endpoints.openapi(who, request.path_params["name"], _server_url(request))
    return JSONResponse(doc)


async def get_metrics(request: Request) -> Response:
    who = await principal(request)
    name = request.path_params["name"]
    await services(request).endpoints.require_level(who, name, Level.CAN_VIEW)
    text = services(request).metrics.exposition(endpoint=name)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def served_model_logs(request: Request) -> Response:
    who = await principal(request)
    name, served = request.path_params["name"], request.path_params["served_model"]
    row = await services(request).endpoints.require_level(who, name, Level.CAN_VIEW)
    names = [e["name"] for e in row.config.get("served_entities", [])]
    if served not in names:
        raise ResourceDoesNotExist(f"Served model '{served}' does not exist in endpoint '{name}'.")
    return JSONResponse({"logs": ""})


async def get_permissions(request: Request) -> Response:
    who = await principal(request)
    return JSONResponse(await services(request).endpoints.get_permissions(who, request.path_params["id"]))


def _set_permissions(replace: bool) -> Any:
    async def handler(request: Request) -> Response:
        who = await principal(request)
        req = await _body(request, PermissionsRequest)
        out = await services(request).endpoints.set_permissions(who, request.path_params["id"], req, replace=replace)
        return JSONResponse(out)

    return handler


async def permission_levels(request: Request) -> Response:
    who = await principal(request)
    return JSONResponse(await services(request).endpoints.permission_levels(who, request.path_params["id"]))


def _both(path: str, endpoint: Any, methods: list[str]) -> list[Route]:
    """Register a path with and without its trailing slash (mlflow uses the slash, the SDK does not)."""
    return [Route(path, endpoint, methods=methods), Route(path + "/", endpoint, methods=methods)]


routes: list[Route] = [
    Route(BASE, create_endpoint, methods=["POST"]),
    Route(BASE + "/", create_endpoint, methods=["POST"]),
    Route(BASE, list_endpoints, methods=["GET"]),
    Route(BASE + "/", list_endpoints, methods=["GET"]),
    *_both(BASE + "/{name}", get_endpoint, ["GET"]),
    *_both(BASE + "/{name}", delete_endpoint, ["DELETE"]),
    *_both(BASE + "/{name}/config", update_config, ["PUT"]),
    *_both(BASE + "/{name}/ai-gateway", put_ai_gateway, ["PUT"]),
    *_both(BASE + "/{name}/rate-limits", put_rate_limits, ["PUT"]),
    *_both(BASE + "/{name}/tags", patch_tags, ["PATCH"]),
    *_both(BASE + "/{name}/openapi", get_openapi, ["GET"]),
    *_both(BASE + "/{name}/metrics", get_metrics, ["GET"]),
    *_both(BASE + "/{name}/served-models/{served_model}/logs", served_model_logs, ["GET"]),
    *_both(BASE + "/{name}/served-models/{served_model}/build-logs", served_model_logs, ["GET"]),
    *_both(PERMS + "/{id}", get_permissions, ["GET"]),
    *_both(PERMS + "/{id}", _set_permissions(replace=True), ["PUT"]),
    *_both(PERMS + "/{id}", _set_permissions(replace=False), ["PATCH"]),
    *_both(PERMS + "/{id}/permissionLevels", permission_levels, ["GET"]),
]
