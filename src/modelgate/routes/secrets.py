"""Secrets API (/api/2.0/secrets/...): scopes, secrets and scope ACLs; values are never returned.

Any user may create a scope and then holds MANAGE on it; everything else needs READ, WRITE or MANAGE on the
scope (auth/secret_acls.py), and admins hold MANAGE everywhere.

There is deliberately no `secrets/get`: a stored value is only ever used by a provider call, through a
`{{secrets/<scope>/<key>}}` reference in an endpoint config.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal, TypeVar

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.errors import InvalidParameterValue
from modelgate.protocol.common import WireModel, validate_request
from modelgate.routes.common import JSONResponse, principal, read_json_object, services
from modelgate.secrets_store import SecretStore

M = TypeVar("M", bound=WireModel)


class CreateScopeRequest(WireModel):
    scope: str = Field(min_length=1)
    # The principal given MANAGE on the new scope instead of its creator (`users`: everyone).
    initial_manage_principal: str | None = None
    scope_backend_type: Literal["DATABRICKS"] | None = None


class ScopeRequest(WireModel):
    scope: str = Field(min_length=1)


class PutSecretRequest(WireModel):
    scope: str = Field(min_length=1)
    key: str = Field(min_length=1)
    string_value: str | None = None
    bytes_value: str | None = None


class SecretKeyRequest(WireModel):
    scope: str = Field(min_length=1)
    key: str = Field(min_length=1)


class PutAclRequest(WireModel):
    scope: str = Field(min_length=1)
    principal: str = Field(min_length=1)
    permission: str = Field(min_length=1)


class DeleteAclRequest(WireModel):
    scope: str = Field(min_length=1)
    principal: str = Field(min_length=1)


def _store(request: Request) -> SecretStore:
    svc = services(request)
    return SecretStore(svc.db, svc.secrets.cipher)


def _query(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise InvalidParameterValue(f"Missing required parameter '{name}'.")
    return value


async def _body(request: Request, model: type[M]) -> M:
    return validate_request(model, await read_json_object(request), control_plane=True)


async def create_scope(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, CreateScopeRequest)
    await _store(request).create_scope(req.scope, who, req.initial_manage_principal)
    return JSONResponse({})


async def list_scopes(request: Request) -> Response:
    await principal(request)
    scopes = await _store(request).list_scopes()
    return JSONResponse({"scopes": [{"name": s.name, "backend_type": s.backend_type} for s in scopes]})


async def delete_scope(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, ScopeRequest)
    await _store(request).delete_scope(req.scope, who)
    return JSONResponse({})


async def put(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, PutSecretRequest)
    if (req.string_value is None) == (req.bytes_value is None):
        raise InvalidParameterValue("Give exactly one of 'string_value' and 'bytes_value'.")
    if req.string_value is not None:
        value = req.string_value
    else:
        try:
            value = base64.b64decode(req.bytes_value or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidParameterValue("'bytes_value' must be base64 of UTF-8 text.") from None
    await _store(request).put(req.scope, req.key, value, who)
    return JSONResponse({})


async def list_secrets(request: Request) -> Response:
    who = await principal(request)
    secrets = await _store(request).list_secrets(_query(request, "scope"), who)
    return JSONResponse(
        {"secrets": [{"key": s.key, "last_updated_timestamp": s.last_updated_timestamp} for s in secrets]}
    )


async def delete(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, SecretKeyRequest)
    await _store(request).delete(req.scope, req.key, who)
    return JSONResponse({})


async def put_acl(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, PutAclRequest)
    await _store(request).put_acl(req.scope, req.principal, req.permission, who)
    return JSONResponse({})


async def delete_acl(request: Request) -> Response:
    who = await principal(request)
    req = await _body(request, DeleteAclRequest)
    await _store(request).delete_acl(req.scope, req.principal, who)
    return JSONResponse({})


async def get_acl(request: Request) -> Response:
    who = await principal(request)
    acl = await _store(request).get_acl(_query(request, "scope"), _query(request, "principal"), who)
    return JSONResponse({"principal": acl.principal, "permission": acl.permission})


async def list_acls(request: Request) -> Response:
    who = await principal(request)
    acls = await _store(request).list_acls(_query(request, "scope"), who)
    return JSONResponse({"items": [{"principal": a.principal, "permission": a.permission} for a in acls]})


routes = [
    Route("/api/2.0/secrets/scopes/create", create_scope, methods=["POST"]),
    Route("/api/2.0/secrets/scopes/list", list_scopes, methods=["GET"]),
    Route("/api/2.0/secrets/scopes/delete", delete_scope, methods=["POST"]),
    Route("/api/2.0/secrets/put", put, methods=["POST"]),
    Route("/api/2.0/secrets/list", list_secrets, methods=["GET"]),
    Route("/api/2.0/secrets/delete", delete, methods=["POST"]),
    Route("/api/2.0/secrets/acls/put", put_acl, methods=["POST"]),
    Route("/api/2.0/secrets/acls/delete", delete_acl, methods=["POST"]),
    Route("/api/2.0/secrets/acls/get", get_acl, methods=["GET"]),
    Route("/api/2.0/secrets/acls/list", list_acls, methods=["GET"]),
]
