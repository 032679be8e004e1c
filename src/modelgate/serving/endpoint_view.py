"""How endpoints look on the wire (reference §5.1): the detailed object, the list item, the OpenAPI doc."""

from __future__ import annotations

from typing import Any

from modelgate.auth.permissions import Level
from modelgate.secrets import redact
from modelgate.serving.entities import READY, EntityFactory
from modelgate.store.tables import Endpoint

Json = dict[str, Any]

_ENDPOINT_TYPE = {True: "EXTERNAL_MODEL", False: "FOUNDATION_MODEL_API"}


def entity_view(stored: Json, factory: EntityFactory, row: Endpoint, *, summary: bool = False) -> Json:
    out = redact(stored)
    deployment, message = factory.state(stored)
    if summary:
        keep = ("name", "entity_name", "entity_version", "external_model", "foundation_model")
        out = {k: v for k, v in out.items() if k in keep}
    else:
        out["state"] = {"deployment": deployment}
        if message:
            out["state"]["deployment_state_message"] = message
        out.setdefault("creator", row.creator)
        out.setdefault("creation_timestamp", row.creation_ms)
    return dict(out)


def endpoint_view(row: Endpoint, factory: EntityFactory, level: Level | None, *, summary: bool = False) -> Json:
    entities = row.config.get("served_entities", [])
    states = [factory.state(e)[0] for e in entities]
    ready = "READY" if entities and all(s == READY for s in states) else "NOT_READY"
    failed = any(s == "DEPLOYMENT_FAILED" for s in states)
    updating = any(s == "DEPLOYMENT_CREATING" for s in states)
    config_update = "UPDATE_FAILED" if failed else "IN_PROGRESS" if updating else "NOT_UPDATING"
    is_external = bool(entities) and all("external_model" in e for e in entities)
    out: Json = {
        "name": row.name,
        "id": row.id,
        "creator": row.creator,
        "creation_timestamp": row.creation_ms,
        "last_updated_timestamp": row.updated_ms,
        "state": {"ready": ready, "config_update": config_update},
        "config": {
            "served_entities": [entity_view(e, factory, row, summary=summary) for e in entities],
        },
        "tags": row.tags,
        "task": row.task,
        "endpoint_type": _ENDPOINT_TYPE[is_external],
    }
    if row.description:
        out["description"] = row.description
    if row.ai_gateway:
        out["ai_gateway"] = row.ai_gateway
    if not summary:
        out["config"]["served_models"] = []
        out["config"]["traffic_config"] = row.config.get("traffic_config", {"routes": []})
        out["config"]["config_version"] = row.config_version
        if row.config.get("auto_capture_config"):
            out["config"]["auto_capture_config"] = row.config["auto_capture_config"]
        out["route_optimized"] = row.route_optimized
        if level is not None and level > Level.NONE:
            out["permission_level"] = level.name
        out.update(row.extras)
    else:
        out.update({k: v for k, v in row.extras.items() if k in ("budget_policy_id", "usage_policy_id")})
    return out


def openapi_document(row: Endpoint, server_url: str) -> Json:
    """An OpenAPI 3.1 document describing how to query this endpoint (GET .../{name}/openapi)."""
    task = row.task or "llm/v1/chat"
    field = {"llm/v1/chat": "messages", "llm/v1/completions": "prompt", "llm/v1/embeddings": "input"}[task]
    request_schemas: dict[str, Json] = {
        "messages": {
            "type": "object",
            "required": ["messages"],
            "properties": {
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["role"],
                        "properties": {
                            "role": {"type": "string", "enum": ["system", "user", "assistant", "tool"]},
                            "content": {"type": ["string", "array", "null"]},
                        },
                    },
                },
                "max_tokens": {"type": "integer", "minimum": 1},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "top_k": {"type": "integer", "minimum": 1},
                "n": {"type": "integer", "minimum": 1, "maximum": 5},
                "stop": {"type": ["string", "array"]},
                "stream": {"type": "boolean"},
                "tools": {"type": "array", "maxItems": 32},
                "tool_choice": {},
                "response_format": {"type": "object"},
                "thinking": {"type": "object"},
                "reasoning_effort": {"type": "string"},
            },
        },
        "prompt": {
            "type": "object",
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": ["string", "array"]},
                "max_tokens": {"type": "integer", "minimum": 1},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "stream": {"type": "boolean"},
            },
        },
        "input": {
            "type": "object",
            "required": ["input"],
            "properties": {
                "input": {"type": ["string", "array"]},
                "instruction": {"type": "string"},
                "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": row.name, "version": str(row.config_version)},
        "servers": [{"url": f"{server_url}/serving-endpoints/{row.name}"}],
        "paths": {
            "/invocations": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": request_schemas[field]}},
                    },
                    "responses": {"200": {"description": f"A {task} response"}},
                }
            }
        },
    }
