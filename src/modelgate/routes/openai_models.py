"""OpenAI's models API under /serving-endpoints: `GET /serving-endpoints/models` and `.../models/{model}`.

OpenAI-compatible tools discover what they may call with `client.models.list()`; here a model is a serving
endpoint (the name the query routes take as `model`). The list holds the chat, completions and embeddings
endpoints the caller may query (CAN_QUERY); an endpoint it may only view is left out, as it could not use it.
Shapes: https://platform.openai.com/docs/api-reference/models/object
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth.permissions import Level
from modelgate.errors import ResourceDoesNotExist
from modelgate.routes.common import JSONResponse, principal, services
from modelgate.store.tables import Endpoint

_QUERYABLE_TASKS = ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings")


def model_object(row: Endpoint) -> dict[str, Any]:
    """One endpoint as OpenAI's model object, fields in the order OpenAI's reference lists them."""
    return {
        "id": row.name,
        "object": "model",
        "created": row.creation_ms // 1000,  # Unix seconds, as OpenAI's
        "owned_by": row.creator or "modelgate",  # ours: the endpoint's creator
    }


async def list_models(request: Request) -> Response:
    who = await principal(request)
    rows = await services(request).endpoints.list_queryable(who)
    data = [model_object(row) for row in rows if row.task in _QUERYABLE_TASKS]
    return JSONResponse({"object": "list", "data": data})


async def retrieve_model(request: Request) -> Response:
    who = await principal(request)
    name = request.path_params["model"]
    row = await services(request).endpoints.require_level(who, name, Level.CAN_QUERY)
    if row.task not in _QUERYABLE_TASKS:
        raise ResourceDoesNotExist(f"Endpoint '{name}' does not serve chat, completions or embeddings.")
    return JSONResponse(model_object(row))


routes = [
    Route("/serving-endpoints/models", list_models, methods=["GET"]),
    Route("/serving-endpoints/models/{model}", retrieve_model, methods=["GET"]),
]
