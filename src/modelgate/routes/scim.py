"""SCIM users and groups (`/api/2.0/preview/scim/v2/Users`, `/Groups`, `/Me`), the minimal surface that lets
rate limits and permissions name a user or a group. Reading needs any valid token; changes need an admin.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth import groups as store
from modelgate.auth.principal import Principal
from modelgate.errors import InvalidParameterValue, PermissionDenied, ResourceAlreadyExists, ResourceDoesNotExist
from modelgate.protocol.common import OpenModel, WireModel, validate_request
from modelgate.routes.common import JSONResponse, principal, read_json_object, services
from modelgate.store.tables import Principal as PrincipalRow

BASE = "/api/2.0/preview/scim/v2"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_FILTER = re.compile(r'^\s*(userName|displayName|id)\s+(eq|co|sw)\s+"([^"]*)"\s*$', re.IGNORECASE)
_MEMBER_PATH = re.compile(r'^members\[value eq "?([^"\]]+)"?\]$')


class Ref(OpenModel):
    value: str
    display: str | None = None


class UserBody(WireModel):
    schemas: list[str] | None = None
    userName: str = Field(min_length=1, max_length=255)
    displayName: str | None = Field(default=None, max_length=255)
    active: bool = True
    # SCIM: accepted so SDK bodies validate; modelgate keeps no emails or entitlements.
    emails: list[dict[str, Any]] | None = None
    entitlements: list[dict[str, Any]] | None = None
    groups: list[Ref] | None = None
    externalId: str | None = None


class GroupBody(WireModel):
    schemas: list[str] | None = None
    displayName: str = Field(min_length=1, max_length=255)
    members: list[Ref] | None = None
    entitlements: list[dict[str, Any]] | None = None
    externalId: str | None = None


class PatchOperation(OpenModel):
    op: str
    path: str | None = None
    value: Any = None


class PatchBody(WireModel):
    schemas: list[str] | None = None
    Operations: list[PatchOperation] = Field(min_length=1)


def _list(resources: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    try:
        start = max(1, int(request.query_params.get("startIndex", "1")))
        count = int(request.query_params.get("count", str(len(resources) or 1)))
    except ValueError:
        raise InvalidParameterValue("startIndex and count must be integers") from None
    page = resources[start - 1 : start - 1 + max(0, count)]
    return {"schemas": [LIST_SCHEMA], "totalResults": len(resources), "startIndex": start,
            "itemsPerPage": len(page), "Resources": page}  # fmt: skip


def _matches(row: PrincipalRow, attr: str, op: str, value: str) -> bool:
    field = {"username": row.name, "displayname": row.display_name or row.name, "id": str(row.id)}[attr.lower()]
    op = op.lower()
    return field == value if op == "eq" else value in field if op == "co" else field.startswith(value)


def _filtered(rows: list[PrincipalRow], request: Request) -> list[PrincipalRow]:
    raw = request.query_params.get("filter")
    if not raw:
        return rows
    m = _FILTER.match(raw)
    if m is None:
        raise InvalidParameterValue('Unsupported filter; use e.g. userName eq "alice@example.com"')
    return [r for r in rows if _matches(r, m.group(1), m.group(2), m.group(3))]


def user_json(s: Session, row: PrincipalRow) -> dict[str, Any]:
    groups = [{"value": str(g.id), "display": g.name} for g in store.group_rows_of(s, row.id)]
    return {"schemas": [USER_SCHEMA], "id": str(row.id), "userName": row.name,
            "displayName": row.display_name or row.name, "active": row.active, "groups": groups,
            "emails": [{"value": row.name, "primary": True}] if "@" in row.name else []}  # fmt: skip


def group_json(s: Session, row: PrincipalRow) -> dict[str, Any]:
    members = [{"value": str(m.id), "display": m.name} for m in store.members_of(s, row.id)]
    return {"schemas": [GROUP_SCHEMA], "id": str(row.id), "displayName": row.name, "members": members}


async def _admin(request: Request) -> Principal:
    who = await principal(request)
    if not who.is_admin:
        raise PermissionDenied("Only workspace admins can manage users and groups.")
    return who


def _row(s: Session, kind: str, scim_id: str) -> PrincipalRow:
    row = s.get(PrincipalRow, int(scim_id)) if scim_id.isdigit() else None
    if row is None or row.kind != kind:
        raise ResourceDoesNotExist(f"{'User' if kind == 'user' else 'Group'} {scim_id} does not exist.")
    return row


def _member_ids(s: Session, refs: list[Any]) -> list[int]:
    ids = []
    for ref in refs:
        value = ref.value if isinstance(ref, Ref) else (ref.get("value") if isinstance(ref, dict) else None)
        if not isinstance(value, str) or not value.isdigit() or s.get(PrincipalRow, int(value)) is None:
            raise InvalidParameterValue(f"member {value!r} is not the id of a user, group or service principal")
        ids.append(int(value))
    return ids


def _kind_routes(kind: str) -> tuple[Any, Any, Any, Any, Any]:
    render = user_json if kind == "user" else group_json

    async def list_all(request: Request) -> Response:
        await principal(request)

        def work(s: Session) -> dict[str, Any]:
            rows = list(s.scalars(select(PrincipalRow).where(PrincipalRow.kind == kind).order_by(PrincipalRow.id)))
            return _list([render(s, r) for r in _filtered(rows, request)], request)

        return JSONResponse(await services(request).db.run(work))

    async def create(request: Request) -> Response:
        await _admin(request)
        data = await read_json_object(request)

        def work(s: Session) -> dict[str, Any]:
            if kind == "user":
                body = validate_request(UserBody, data, control_plane=True)
                row = store.create_principal(s, "user", body.userName, body.displayName)
                for g in body.groups or []:
                    store.add_members(s, _row(s, "group", g.value).id, [row.id])
            else:
                gbody = validate_request(GroupBody, data, control_plane=True)
                row = store.create_principal(s, "group", gbody.displayName)
                store.add_members(s, row.id, _member_ids(s, gbody.members or []))
            return render(s, row)

        try:
            out = await services(request).db.run(work)
        except IntegrityError:
            raise ResourceAlreadyExists(f"A {kind} with that name already exists.") from None
        services(request).authenticator.forget_all()
        return JSONResponse(out, status_code=201)

    async def get(request: Request) -> Response:
        await principal(request)
        return JSONResponse(
            await services(request).db.run(lambda s: render(s, _row(s, kind, request.path_params["id"])))
        )

    async def delete(request: Request) -> Response:
        await _admin(request)

        def work(s: Session) -> None:
            s.delete(_row(s, kind, request.path_params["id"]))

        await services(request).db.run(work)
        services(request).authenticator.forget_all()
        return Response(status_code=204)

    async def patch(request: Request) -> Response:
        await _admin(request)
        body = validate_request(PatchBody, await read_json_object(request), control_plane=True)

        def work(s: Session) -> dict[str, Any]:
            row = _row(s, kind, request.path_params["id"])
            for op in body.Operations:
                _apply(s, kind, row, op)
            return render(s, row)

        out = await services(request).db.run(work)
        services(request).authenticator.forget_all()
        return JSONResponse(out)

    return list_all, create, get, delete, patch


def _apply(s: Session, kind: str, row: PrincipalRow, op: PatchOperation) -> None:
    verb = op.op.lower()
    if kind == "group" and (op.path or "").startswith("members"):
        m = _MEMBER_PATH.match(op.path or "")
        if verb == "remove" and m:
            store.remove_members(s, row.id, [int(m.group(1))] if m.group(1).isdigit() else [])
            return
        refs = op.value if isinstance(op.value, list) else []
        ids = _member_ids(s, refs)
        if verb == "add":
            store.add_members(s, row.id, ids)
        elif verb == "remove":
            store.remove_members(s, row.id, ids)
        elif verb == "replace":
            store.set_members(s, row.id, ids)
        else:
            raise InvalidParameterValue(f"unsupported PATCH op {op.op!r}")
        return
    if verb in ("replace", "add") and op.path in ("displayName", "active") and kind == "user":
        if op.path == "active":
            row.active = bool(op.value)
        else:
            row.display_name = str(op.value)
        return
    if verb in ("replace",) and op.path == "displayName" and kind == "group":
        row.name = str(op.value)
        return
    raise InvalidParameterValue(f"unsupported PATCH operation {op.op!r} on {op.path!r}")


async def me(request: Request) -> Response:
    who = await principal(request)

    def work(s: Session) -> dict[str, Any]:
        row = s.scalar(select(PrincipalRow).where(PrincipalRow.kind == who.kind, PrincipalRow.name == who.name))
        if row is None or who.kind != "user":
            return {"schemas": [USER_SCHEMA], "userName": who.name, "displayName": who.name, "active": True,
                    "groups": [{"display": g} for g in sorted(who.groups)]}  # fmt: skip
        return user_json(s, row)

    body = await services(request).db.run(work)
    return JSONResponse(body, headers={"x-databricks-org-id": services(request).workspace_id})


def _routes_for(kind: str, path: str) -> list[Route]:
    list_all, create, get, delete, patch = _kind_routes(kind)
    return [
        Route(f"{BASE}/{path}", list_all, methods=["GET"]),
        Route(f"{BASE}/{path}", create, methods=["POST"]),
        Route(f"{BASE}/{path}/{{id}}", get, methods=["GET"]),
        Route(f"{BASE}/{path}/{{id}}", delete, methods=["DELETE"]),
        Route(f"{BASE}/{path}/{{id}}", patch, methods=["PATCH"]),
    ]


routes = [Route(f"{BASE}/Me", me, methods=["GET"]), *_routes_for("user", "Users"), *_routes_for("group", "Groups")]
