"""Token API (/api/2.0/token/create|list|delete): callers manage their own personal access tokens."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth.tokens import create_token, ensure_principal, list_tokens, revoke_token
from modelgate.errors import ResourceDoesNotExist
from modelgate.protocol.common import WireModel, validate_request
from modelgate.routes.common import JSONResponse, principal, read_json_object, services

MAX_LIFETIME_SECONDS = 10 * 365 * 24 * 3600


class CreateTokenRequest(WireModel):
    lifetime_seconds: int | None = Field(default=None, ge=-1, le=MAX_LIFETIME_SECONDS)
    comment: str | None = Field(default=None, max_length=1024)


class DeleteTokenRequest(WireModel):
    token_id: str = Field(min_length=1)


async def create(request: Request) -> Response:
    who = await principal(request)
    req = validate_request(CreateTokenRequest, await read_json_object(request, allow_empty=True), control_plane=True)
    svc = services(request)

    def work(s: Any) -> tuple[str, dict[str, object]]:
        row = ensure_principal(s, who.kind, who.name)
        value, info = create_token(s, row, comment=req.comment, lifetime_seconds=req.lifetime_seconds)
        return value, info.as_json()

    value, info = await svc.db.run(work)
    return JSONResponse({"token_value": value, "token_info": info})


async def list_(request: Request) -> Response:
    who = await principal(request)
    svc = services(request)

    def work(s: Any) -> list[dict[str, object]]:
        row = ensure_principal(s, who.kind, who.name)
        return [t.as_json() for t in list_tokens(s, row.id)]

    return JSONResponse({"token_infos": await svc.db.run(work)})


async def delete(request: Request) -> Response:
    who = await principal(request)
    req = validate_request(DeleteTokenRequest, await read_json_object(request), control_plane=True)
    svc = services(request)

    def work(s: Any) -> str | None:
        row = ensure_principal(s, who.kind, who.name)
        return revoke_token(s, req.token_id, None if who.is_admin else row.id)

    token_hash = await svc.db.run(work)
    if token_hash is None:
        raise ResourceDoesNotExist(f"Token with id '{req.token_id}' does not exist.")
    svc.authenticator.forget(token_hash)
    return JSONResponse({})


routes = [
    Route("/api/2.0/token/create", create, methods=["POST"]),
    Route("/api/2.0/token/list", list_, methods=["GET"]),
    Route("/api/2.0/token/delete", delete, methods=["POST"]),
]
