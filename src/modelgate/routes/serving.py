"""Data plane: /serving-endpoints/{name}/invocations, the served-model route and the OpenAI-compatible routes.

These are the hot path, so each is a plain ASGI app rather than a Starlette request handler: it reads the
headers and body straight from the ASGI messages, renders its own errors and writes its answer without
Starlette's Request/Response machinery. `match_query_route` lets the app answer them before routing
(see `ModelgateApp`); they are also registered as ordinary routes so other methods get a 405.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from modelgate.errors import BadRequest, InternalError, ModelgateError, PayloadTooLarge
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import validate_request
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.routes.common import SSEResponse, check_declared_size, parse_json_object
from modelgate.serving.dispatch import StreamResult
from modelgate.serving.streams import DONE, error_event, sse

if TYPE_CHECKING:
    from modelgate.app import Services

log = logging.getLogger(__name__)

Json = dict[str, Any]
WireRequest = ChatRequest | CompletionRequest | EmbeddingRequest

_CUSTOM_MODEL_FIELDS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_JSON_HEADERS = [(b"content-type", b"application/json")]
PREFIX = "/serving-endpoints/"


class _ClientGone(Exception):
    """The client hung up before sending its whole body: nothing to answer."""


def _model_for_body(body: Json) -> type[WireRequest]:
    """Which request a body is, from its fields (as Databricks' unified LLM input does)."""
    present = [f for f in ("messages", "prompt", "input") if f in body]
    if len(present) > 1:
        raise BadRequest(f"Bad request: send only one of 'messages', 'prompt' and 'input'; got {present}.")
    if present == ["messages"]:
        return ChatRequest
    if present == ["prompt"]:
        return CompletionRequest
    if present == ["input"]:
        return EmbeddingRequest
    custom = [f for f in _CUSTOM_MODEL_FIELDS if f in body]
    if custom:
        raise BadRequest(
            f"Bad request: '{custom[0]}' is a custom-model input; this server's endpoints take "
            "'messages' (chat), 'prompt' (completions) or 'input' (embeddings)."
        )
    raise BadRequest("Bad request: the body needs 'messages' (chat), 'prompt' (completions) or 'input' (embeddings).")


# -- ASGI plumbing -----------------------------------------------------------------------------------
def _auth_and_length(scope: Scope) -> tuple[str | None, str | None]:
    """The Authorization and Content-Length headers, in one pass over the headers."""
    authorization = length = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            authorization = value.decode("latin-1")
        elif key == b"content-length":
            length = value.decode("latin-1")
    return authorization, length


async def _read_body(receive: Receive, declared_length: str | None, limit: int) -> bytes:
    check_declared_size(declared_length, limit)
    chunks: list[bytes] = []
    total = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send: Send, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    await send_json_bytes(send, status, orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS), headers)


async def send_json_bytes(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    for key, value in (headers or {}).items():
        raw.append((key.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


Parser = Callable[[Scope, Json], tuple[str, str | None, WireRequest]]


class QueryApp:
    """The ASGI app of one query route: auth, body, `parse` (endpoint, served entity, request), answer.

    A class, not a function, so that Starlette's Route treats it as an ASGI app."""

    def __init__(self, parse: Parser) -> None:
        self.parse = parse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].services
        authorization, length = _auth_and_length(scope)
        try:
            # Authenticate before reading the body: anonymous callers learn nothing about it.
            who = await services.authenticator.authenticate(authorization)
            raw = await _read_body(receive, length, services.settings.max_request_bytes)
            name, served_entity, wire = self.parse(scope, parse_json_object(raw))
            invocations = services.invocations
            if not isinstance(wire, EmbeddingRequest) and wire.stream:
                result = await invocations.stream(who, name, wire, served_entity, raw_body=raw)
                response = SSEResponse(_sse_bytes(result), headers={"served-model-name": result.served_entity})
                await response(scope, receive, send)
                return
            done = await invocations.call(who, name, wire, served_entity, raw_body=raw)
        except _ClientGone:
            return
        except ModelgateError as exc:
            await send_json(send, exc.status, exc.body(), exc.headers())
            return
        except Exception as exc:
            log.error("unhandled error on POST %s: %s", scope["path"], type(exc).__name__, exc_info=exc)
            err = InternalError("Internal error; the server log has the details.")
            await send_json(send, err.status, err.body())
            return
        await send_json_bytes(send, 200, done.encoded(), {"served-model-name": done.served_entity})


async def _sse_bytes(result: StreamResult) -> AsyncIterator[bytes]:
    try:
        async for chunk in result.chunks:
            yield sse(chunk)
    except ModelgateError as exc:
        yield error_event(exc)
    yield DONE


# -- the routes --------------------------------------------------------------------------------------
def _parse_invocation(scope: Scope, body: Json) -> tuple[str, str | None, WireRequest]:
    params = scope["path_params"]
    return params["name"], params.get("served_model"), validate_request(_model_for_body(body), body)


def _openai_parser(model: type[WireRequest], field: str) -> Callable[[Scope, Json], tuple[str, None, WireRequest]]:
    def parse(scope: Scope, body: Json) -> tuple[str, None, WireRequest]:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise BadRequest("Bad request: 'model' must name the serving endpoint to query.")
        if field not in body:
            raise BadRequest(f"Bad request: missing required field '{field}'.")
        return body["model"], None, validate_request(model, body)

    return parse


invocations = QueryApp(_parse_invocation)
_OPENAI_ROUTES: dict[str, QueryApp] = {
    "/serving-endpoints/chat/completions": QueryApp(_openai_parser(ChatRequest, "messages")),
    "/serving-endpoints/completions": QueryApp(_openai_parser(CompletionRequest, "prompt")),
    "/serving-endpoints/embeddings": QueryApp(_openai_parser(EmbeddingRequest, "input")),
}


def match_query_route(path: str) -> tuple[QueryApp, dict[str, str]] | None:
    """The query app and path parameters for a POST to `path`, as the routes below would match it."""
    app = _OPENAI_ROUTES.get(path)
    if app is not None:
        return app, {}
    if not path.startswith(PREFIX) or not path.endswith("/invocations"):
        return None
    parts = path[len(PREFIX) : -len("/invocations")].split("/")
    if len(parts) == 1 and parts[0]:
        return invocations, {"name": parts[0]}
    if len(parts) == 3 and parts[0] and parts[1] == "served-models" and parts[2]:
        return invocations, {"name": parts[0], "served_model": parts[2]}
    return None


routes = [
    *(Route(path, app, methods=["POST"]) for path, app in _OPENAI_ROUTES.items()),
    Route("/serving-endpoints/{name}/invocations", invocations, methods=["POST"]),
    Route("/serving-endpoints/{name}/served-models/{served_model}/invocations", invocations, methods=["POST"]),
]
