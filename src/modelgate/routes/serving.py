"""Data plane: /serving-endpoints/{name}/invocations, the served-model route and the OpenAI-compatible routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth.principal import Principal
from modelgate.errors import BadRequest, ModelgateError
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import validate_request
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.routes.common import JSONResponse, SSEResponse, principal, read_json_object, services
from modelgate.serving.dispatch import StreamResult
from modelgate.serving.streams import DONE, error_event, sse

Json = dict[str, Any]
WireRequest = ChatRequest | CompletionRequest | EmbeddingRequest

_CUSTOM_MODEL_FIELDS = ("dataframe_split", "dataframe_records", "instances", "inputs")


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


async def _answer(
    request: Request, who: Principal, name: str, wire: WireRequest, served_entity: str | None, body: Json
) -> Response:
    svc = services(request).invocations
    if not isinstance(wire, EmbeddingRequest) and wire.stream:
        result = await svc.stream(who, name, wire, served_entity, body=body)
        return SSEResponse(_sse_bytes(result), headers={"served-model-name": result.served_entity})
    done = await svc.call(who, name, wire, served_entity, body=body)
    return JSONResponse(done.body, headers={"served-model-name": done.served_entity})


async def _sse_bytes(result: StreamResult) -> AsyncIterator[bytes]:
    try:
        async for chunk in result.chunks:
            yield sse(chunk)
    except ModelgateError as exc:
        yield error_event(exc)
    yield DONE


async def invocations(request: Request) -> Response:
    who = await principal(request)  # before the body: anonymous callers learn nothing about it
    name = request.path_params["name"]
    body = await read_json_object(request)
    wire = validate_request(_model_for_body(body), body)
    return await _answer(request, who, name, wire, None, body)


async def served_model_invocations(request: Request) -> Response:
    who = await principal(request)
    name = request.path_params["name"]
    body = await read_json_object(request)
    wire = validate_request(_model_for_body(body), body)
    return await _answer(request, who, name, wire, request.path_params["served_model"], body)


def _openai_route(model: type[WireRequest], field: str) -> Any:
    async def handler(request: Request) -> Response:
        who = await principal(request)
        body = await read_json_object(request)
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise BadRequest("Bad request: 'model' must name the serving endpoint to query.")
        if field not in body:
            raise BadRequest(f"Bad request: missing required field '{field}'.")
        wire = validate_request(model, body)
        return await _answer(request, who, body["model"], wire, None, body)

    return handler


routes = [
    Route("/serving-endpoints/chat/completions", _openai_route(ChatRequest, "messages"), methods=["POST"]),
    Route("/serving-endpoints/completions", _openai_route(CompletionRequest, "prompt"), methods=["POST"]),
    Route("/serving-endpoints/embeddings", _openai_route(EmbeddingRequest, "input"), methods=["POST"]),
    Route("/serving-endpoints/{name}/invocations", invocations, methods=["POST"]),
    Route(
        "/serving-endpoints/{name}/served-models/{served_model}/invocations",
        served_model_invocations,
        methods=["POST"],
    ),
]
