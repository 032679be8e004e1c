"""Secrets API (/api/2.0/secrets/...): admins manage scopes and secrets; values are never returned.

There is deliberately no `secrets/get`: a stored value is only ever used by a provider call, through a
`{{secrets/<scope>/<key>}}` reference in an endpoint config.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth.principal import Principal
from modelgate.errors import InvalidParameterValue, PermissionDenied
from modelgate.protocol.common import WireModel, validate_request
from modelgate.routes.common import JSONResponse, principal, read_json_object, services
from modelgate.secrets_store import SecretStore


class CreateScopeRequest(WireModel):
    scope: str = Field(min_length=1)
    # Databricks: the principal given MANAGE on the scope; accepted for compatibility (admins manage scopes).
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


def _store(request: Request) -> SecretStore:
    svc = services(request)
    return SecretStore(svc.db, svc.secrets.cipher)


async def _admin(request: Request, action: str) -> Principal:
    who = await principal(request)
    if not who.is_admin:
        raise PermissionDenied(f"{who.name} may not {action}: only workspace admins manage secrets.")
    return who


async def create_scope(request: Request) -> Response:
    who = await _admin(request, "create secret scopes")
    req = validate_request(CreateScopeRequest, await read_json_object(request), control_plane=True)
    await _store(request).create_scope(req.scope, who.name)
    return JSONResponse({})


async def list_scopes(request: Request) -> Response:
    await principal(request)
    scopes = await _store(request).list_scopes()
    return JSONResponse({"scopes": [{"name": s.name, "backend_type": s.backend_type} for s in scopes]})


async def delete_scope(request: Request) -> Response:
    await _admin(request, "delete secret scopes")
    req = validate_request(ScopeRequest, await read_json_object(request), control_plane=True)
    await _store(request).delete_scope(req.scope)
    return JSONResponse({})


async def put(request: Request) -> Response:
    await _admin(request, "write secrets")
    req = validate_request(PutSecretRequest, await read_json_object(request), control_plane=True)
    if (req.string_value is None) == (req.bytes_value is None):
        raise InvalidParameterValue("Give exactly one of 'string_value' and 'bytes_value'.")
    if req.string_value is not None:
        value = req.string_value
    else:
        try:
            value = base64.b64decode(req.bytes_value or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidParameterValue("'bytes_value' must be base64 of UTF-8 text.") from None
    await _store(request).put(req.scope, req.key, value)
    return JSONResponse({})


async def list_secrets(request: Request) -> Response:
    await _admin(request, "list secrets")
    scope = request.query_params.get("scope")
    if not scope:
        raise InvalidParameterValue("Missing required parameter 'scope'.")
    secrets = await _store(request).list_secrets(scope)
    return JSONResponse(
        {"secrets": [{"key": s.key, "last_updated_timestamp": s.last_updated_timestamp} for s in secrets]}
    )


async def delete(request: Request) -> Response:
    await _admin(request, "delete secrets")
    req = validate_request(SecretKeyRequest, await read_json_object(request), control_plane=True)
    await _store(request).delete(req.scope, req.key)
    return JSONResponse({})


routes = [
    Route("/api/2.0/secrets/scopes/create", create_scope, methods=["POST"]),
    Route("/api/2.0/secrets/scopes/list", list_scopes, methods=["GET"]),
    Route("/api/2.0/secrets/scopes/delete", delete_scope, methods=["POST"]),
    Route("/api/2.0/secrets/put", put, methods=["POST"]),
    Route("/api/2.0/secrets/list", list_secrets, methods=["GET"]),
    Route("/api/2.0/secrets/delete", delete, methods=["POST"]),
]
