"""Helpers every route uses: the app's services, JSON in and out, the caller's identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from modelgate.auth.principal import Principal
from modelgate.errors import BadRequest, PayloadTooLarge

if TYPE_CHECKING:
    from modelgate.app import Services

# orjson refuses to encode past 254 levels; a request nested deeper would be accepted and then fail to be
# sent upstream, stored or rendered (a 500, or an endpoint nobody can list), so it is refused up front.
MAX_JSON_DEPTH = 128


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        # OPT_NON_STR_KEYS: keys that are str subclasses (SQLAlchemy column names) would otherwise fail.
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def principal(request: Request) -> Principal:
    return await services(request).authenticator.authenticate(request.headers.get("authorization"))


async def read_json(request: Request) -> Any:
    """The body as JSON, refusing bodies past the configured size before reading them whole."""
    limit = services(request).settings.max_request_bytes
    check_declared_size(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


def check_declared_size(content_length: str | None, limit: int) -> None:
    """Refuse a body whose Content-Length is past the limit before reading any of it."""
    if content_length is None:
        return
    try:
        size = int(content_length)
    except ValueError:
        raise BadRequest("Content-Length is not a number.") from None
    if size > limit:
        raise PayloadTooLarge(f"Request body is {size} bytes; the limit is {limit} bytes.")


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("Request body is empty; send a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}.") from None
    # Only a body with that many brackets can nest that deep, so the usual request skips the walk.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH and _nesting_exceeds(data, MAX_JSON_DEPTH):
        raise BadRequest(f"Request body nests JSON deeper than {MAX_JSON_DEPTH} levels.")
    return data


def parse_json_object(body: bytes) -> dict[str, Any]:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.")
    return data


def _nesting_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


async def read_json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    if allow_empty:
        raw = await request.body()
        if not raw.strip():
            return {}
    data = await read_json(request)
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.")
    return data


class SSEResponse(StreamingResponse):
    """A stream that always closes its iterator, so a client that leaves cancels the upstream at once."""

    def __init__(self, events: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
        )
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
