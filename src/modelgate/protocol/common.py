"""Shared pieces of the wire models and the translation of validation failures into readable messages."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelgate.errors import BadRequest, InvalidParameterValue


class WireModel(BaseModel):
    """Base of request models: unknown fields are rejected, as Databricks does (`json: unknown field`).

    Strict types too: `"stream": "yes"` or `"max_tokens": "16"` is an error, not a guess.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class OpenModel(BaseModel):
    """Base of nested objects that providers may extend: unknown fields pass through untouched."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class StreamOptions(OpenModel):
    include_usage: bool | None = None


class Usage(OpenModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class GatewayFields(WireModel):
    """Fields every query accepts that are about the gateway, not the model."""

    # Databricks: provider-specific parameters, merged into the upstream request body.
    extra_params: dict[str, Any] | None = None
    # Databricks: recorded in the inference and usage tables; not sent upstream.
    client_request_id: str | None = Field(default=None, max_length=256)
    # Databricks: recorded in the usage table; not sent upstream.
    usage_context: dict[str, str] | None = None
    # OpenAI-compatible routes carry the endpoint name here; /invocations ignores it.
    model: str | None = None


GATEWAY_ONLY_FIELDS = frozenset({"extra_params", "client_request_id", "usage_context", "model"})

Task = Literal["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]
TASKS: tuple[Task, ...] = ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings")


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """One line per problem, naming the field path the way a user wrote it (`messages[0].role`)."""
    parts: list[str] = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = _format_loc(err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            parts.append(f"unknown field {loc!r}")
        elif kind == "missing":
            parts.append(f"missing required field {loc!r}")
        else:
            msg = str(err.get("msg", "invalid value"))
            parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts)


def _format_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif isinstance(item, str) and item.startswith(("function-", "tagged-union[")):
            continue  # pydantic's internal union branch names mean nothing to a user
        else:
            out += f".{item}" if out else str(item)
    return out


M = TypeVar("M", bound=BaseModel)


def validate_request(model: type[M], data: Any, *, control_plane: bool = False) -> M:
    """Validate `data` against `model`, turning failures into a 400 whose message says what to fix.

    The data plane answers BAD_REQUEST ("Bad request: ..."), as Databricks serving does; the control plane
    answers INVALID_PARAMETER_VALUE, as the REST API does.
    """
    if not isinstance(data, dict):
        raise BadRequest("Bad request: the request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        detail = describe_validation_error(exc)
        if control_plane:
            raise InvalidParameterValue(detail) from None
        raise BadRequest(f"Bad request: {detail}") from None
