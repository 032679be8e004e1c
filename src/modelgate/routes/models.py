"""Local model catalog API (/api/2.0/modelgate/models): admins register and remove models, anyone signed in
lists them with their source (default, config or registered) and load state in the answering process.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth.principal import Principal
from modelgate.engines import model_store
from modelgate.engines.catalog import NOT_LOADED, PREFIX, LocalCatalog, parse_entry
from modelgate.engines.exposure import endpoint_request
from modelgate.errors import ModelgateError, PermissionDenied, ResourceDoesNotExist
from modelgate.routes.common import JSONResponse, principal, read_json_object, services

BASE = "/api/2.0/modelgate/models"


def _catalog(request: Request) -> LocalCatalog:
    catalog = services(request).catalog
    assert catalog is not None
    return catalog


async def _admin(request: Request, action: str) -> Principal:
    who = await principal(request)
    if not who.is_admin:
        raise PermissionDenied(f"{who.name} may not {action}: only workspace admins manage the model catalog.")
    return who


def _reserved(catalog: LocalCatalog) -> set[str]:
    return {e.name for e in catalog.base.values()}


def model_view(catalog: LocalCatalog, full_name: str, *, admin: bool) -> dict[str, Any]:
    deployment = catalog.deployments[full_name]
    entry = deployment.entry
    out: dict[str, Any] = {
        **entry.public(with_command=admin),
        "entity_name": entry.full_name,
        "entity_version": "1",
        "source": entry.source,
    }
    state, message = deployment.view() if deployment.started else (NOT_LOADED, None)
    out["state"] = {"deployment": state, **({"deployment_state_message": message} if message else {})}
    info = catalog.registered_info.get(full_name)
    if info is not None:
        out["creator"], out["creation_timestamp"] = info
    return out


async def create(request: Request) -> Response:
    who = await _admin(request, "register models")
    body = await read_json_object(request)
    entry = parse_entry(body, source="registered")
    svc, catalog = services(request), _catalog(request)
    model_store.check_location(entry)
    reserved = _reserved(catalog)
    await svc.db.run(lambda s: model_store.add(s, entry, who.name, reserved=reserved, endpoint_pending=False))
    await catalog.refresh()
    if entry.endpoint:
        try:
            await svc.endpoints.create(who, endpoint_request(entry.endpoint, entry.name))
        except ModelgateError:
            await svc.db.run(lambda s: model_store.remove(s, entry.name, reserved=set()))
            await catalog.refresh()
            raise
    return JSONResponse(model_view(catalog, entry.full_name, admin=True))


async def list_(request: Request) -> Response:
    who = await principal(request)
    catalog = _catalog(request)
    names = sorted(catalog.deployments)
    return JSONResponse({"models": [model_view(catalog, n, admin=who.is_admin) for n in names]})


def _full_name(request: Request, catalog: LocalCatalog) -> str:
    name = str(request.path_params["name"]).removeprefix(PREFIX)
    full = PREFIX + name
    if full not in catalog.deployments:
        raise ResourceDoesNotExist(f"Model '{name}' is not in the catalog (GET {BASE} lists the models).")
    return full


async def get(request: Request) -> Response:
    who = await principal(request)
    catalog = _catalog(request)
    if PREFIX + str(request.path_params["name"]).removeprefix(PREFIX) not in catalog.deployments:
        await catalog.refresh()  # registered through another process a moment ago?
    return JSONResponse(model_view(catalog, _full_name(request, catalog), admin=who.is_admin))


async def delete(request: Request) -> Response:
    await _admin(request, "remove models")
    svc, catalog = services(request), _catalog(request)
    name = str(request.path_params["name"]).removeprefix(PREFIX)
    reserved = _reserved(catalog)
    await svc.db.run(lambda s: model_store.remove(s, name, reserved=reserved))
    await catalog.refresh()
    return JSONResponse({})


routes = [
    Route(BASE, create, methods=["POST"]),
    Route(BASE, list_, methods=["GET"]),
    Route(BASE + "/{name}", get, methods=["GET"]),
    Route(BASE + "/{name}", delete, methods=["DELETE"]),
]
