"""Service principals over REST, in the shapes the Databricks SDK uses (admins only).

* SCIM: `/api/2.0/preview/scim/v2/ServicePrincipals` (create, list with `filter`/`startIndex`/`count`, get,
  delete), as `WorkspaceClient().service_principals` calls it.
* OAuth secrets: `/api/2.0/accounts/servicePrincipals/{id}/credentials/secrets` (create, list, delete), as
  `WorkspaceClient().service_principal_secrets_proxy` calls it; `{id}` is the SCIM id.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth import service_principals as store
from modelgate.auth.principal import Principal
from modelgate.errors import InvalidParameterValue, PermissionDenied, ResourceAlreadyExists, ResourceDoesNotExist
from modelgate.protocol.common import OpenModel, WireModel, validate_request
from modelgate.routes.common import JSONResponse, principal, read_json_object, services
from modelgate.store.tables import Principal as PrincipalRow

SCIM = "/api/2.0/preview/scim/v2/ServicePrincipals"
SECRETS = "/api/2.0/accounts/servicePrincipals/{id}/credentials/secrets"
SP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_FILTER_RE = re.compile(r'^\s*(displayName|applicationId|id)\s+(eq|co|sw)\s+"([^"]*)"\s*$', re.IGNORECASE)


class ComplexValue(OpenModel):
    value: str | None = None


class CreateServicePrincipal(WireModel):
    """SCIM field names (camelCase) as the SDK sends them."""

    # SCIM: accepted so SDK bodies validate; modelgate keeps no entitlements, groups or roles for them.
    schemas: list[str] | None = None
    id: str | None = None
    applicationId: str | None = Field(default=None, pattern=UUID_RE)
    displayName: str = Field(min_length=1, max_length=255)
    active: bool = True
    externalId: str | None = None
    entitlements: list[ComplexValue] | None = None
    groups: list[ComplexValue] | None = None
    roles: list[ComplexValue] | None = None


class CreateSecret(WireModel):
    # Seconds, as a string ("3600s" or "3600"), like the SDK sends.
    lifetime: str | None = Field(default=None, pattern=r"^\d{1,10}s?$")
    scopes: list[str] | None = None


def scim_json(row: PrincipalRow) -> dict[str, Any]:
    return {
        "schemas": [SP_SCHEMA],
        "id": str(row.id),
        "applicationId": row.name,
        "displayName": row.display_name or row.name,
        "active": row.active,
        "entitlements": [],
        "groups": [],
        "roles": [],
    }


async def _admin(request: Request) -> Principal:
    who = await principal(request)
    if not who.is_admin:
        raise PermissionDenied("Only workspace admins can manage service principals.")
    return who


def _sp_or_404(s: Any, scim_id: str) -> PrincipalRow:
    row = store.get_service_principal(s, scim_id)
    if row is None:
        raise ResourceDoesNotExist(f"Service principal with id '{scim_id}' does not exist.")
    return row


async def create(request: Request) -> Response:
    await _admin(request)
    req = validate_request(CreateServicePrincipal, await read_json_object(request), control_plane=True)

    def work(s: Any) -> dict[str, Any]:
        if req.applicationId and store.application_id_taken(s, req.applicationId.lower()):
            raise ResourceAlreadyExists(f"A service principal with applicationId '{req.applicationId}' already exists.")
        app_id = req.applicationId.lower() if req.applicationId else None
        return scim_json(store.create_service_principal(s, req.displayName, application_id=app_id, active=req.active))

    return JSONResponse(await services(request).db.run(work), status_code=201)


def _matches(row: PrincipalRow, flt: str | None) -> bool:
    if not flt:
        return True
    m = _FILTER_RE.match(flt)
    if m is None:
        raise InvalidParameterValue(f'Unsupported filter {flt!r}; use: displayName|applicationId|id eq|co|sw "value".')
    attr, op, value = m.group(1).lower(), m.group(2).lower(), m.group(3)
    actual = {"displayname": row.display_name or row.name, "applicationid": row.name, "id": str(row.id)}[attr]
    if op == "eq":
        return actual == value
    if op == "co":
        return value in actual
    return actual.startswith(value)


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise InvalidParameterValue(f"'{name}' must be an integer >= {minimum}.")
    return int(raw)


async def list_(request: Request) -> Response:
    await _admin(request)
    flt = request.query_params.get("filter")
    start = _int_param(request, "startIndex", 1, 1)
    count = _int_param(request, "count", 10_000, 0)

    def work(s: Any) -> list[dict[str, Any]]:
        return [scim_json(r) for r in store.list_service_principals(s) if _matches(r, flt)]

    rows = await services(request).db.run(work)
    page = rows[start - 1 : start - 1 + count]
    return JSONResponse(
        {
            "schemas": [LIST_SCHEMA],
            "totalResults": len(rows),
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": page,
        }
    )


async def get(request: Request) -> Response:
    await _admin(request)
    scim_id = request.path_params["id"]
    return JSONResponse(await services(request).db.run(lambda s: scim_json(_sp_or_404(s, scim_id))))


async def delete(request: Request) -> Response:
    await _admin(request)
    scim_id = request.path_params["id"]

    def work(s: Any) -> None:
        store.delete_service_principal(s, _sp_or_404(s, scim_id))

    await services(request).db.run(work)
    services(request).authenticator.forget_all()  # its access tokens stop working at once
    return JSONResponse({})


def _lifetime_seconds(raw: str | None) -> int | None:
    if raw is None:
        return None
    seconds = int(raw.rstrip("s"))
    if not 1 <= seconds <= store.MAX_SECRET_LIFETIME_S:
        raise InvalidParameterValue(f"'lifetime' must be between 1s and {store.MAX_SECRET_LIFETIME_S}s.")
    return seconds


async def create_secret(request: Request) -> Response:
    await _admin(request)
    scim_id = request.path_params["id"]
    req = validate_request(CreateSecret, await read_json_object(request, allow_empty=True), control_plane=True)
    if req.scopes and any(sc != "all-apis" for sc in req.scopes):
        raise InvalidParameterValue("Only the 'all-apis' scope is supported.")
    lifetime = _lifetime_seconds(req.lifetime)

    def work(s: Any) -> dict[str, Any]:
        value, info = store.create_secret(s, _sp_or_404(s, scim_id), lifetime)
        return {**info.as_json(), "secret": value}

    return JSONResponse(await services(request).db.run(work))


async def list_secrets(request: Request) -> Response:
    await _admin(request)
    scim_id = request.path_params["id"]

    def work(s: Any) -> list[dict[str, object]]:
        return [i.as_json() for i in store.list_secrets(s, _sp_or_404(s, scim_id))]

    return JSONResponse({"secrets": await services(request).db.run(work)})


async def delete_secret(request: Request) -> Response:
    await _admin(request)
    scim_id, secret_id = request.path_params["id"], request.path_params["secret_id"]

    def work(s: Any) -> bool:
        return store.delete_secret(s, _sp_or_404(s, scim_id), secret_id)

    if not await services(request).db.run(work):
        raise ResourceDoesNotExist(f"Secret '{secret_id}' of service principal '{scim_id}' does not exist.")
    return JSONResponse({})


routes = [
    Route(SCIM, create, methods=["POST"]),
    Route(SCIM, list_, methods=["GET"]),
    Route(SCIM + "/{id}", get, methods=["GET"]),
    Route(SCIM + "/{id}", delete, methods=["DELETE"]),
    Route(SECRETS, create_secret, methods=["POST"]),
    Route(SECRETS, list_secrets, methods=["GET"]),
    Route(SECRETS + "/{secret_id}", delete_secret, methods=["DELETE"]),
]
