"""Server-sent events exactly as every client accepts them (clients.md §0.7).

Only `data: {json}\\n\\n` events, no comments or `event:` lines, usage stripped from content chunks and sent
once in a final chunk with `"choices": []`, then `data: [DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import orjson

from modelgate.errors import ModelgateError

DONE = b"data: [DONE]\n\n"
Json = dict[str, Any]


def sse(event: Json) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


def error_event(exc: ModelgateError) -> bytes:
    """An error after the stream began: the Databricks body plus `error`, which the OpenAI client raises on."""
    body = exc.body()
    body["error"] = {"message": exc.message, "code": exc.error_code, "type": "server_error"}
    return sse(body)


async def normalized_events(
    first: Json,
    rest: AsyncIterator[Json],
    *,
    on_usage: Callable[[Json], None],
    on_chunk: Callable[[Json], None] | None = None,
) -> AsyncGenerator[Json, None]:
    """The provider's chunks with `usage` taken out of them (`on_usage` sees the last one reported) and
    chunks without choices dropped; the caller sends usage once, in its own final chunk."""

    async def chain() -> AsyncIterator[Json]:
        yield first
        async for item in rest:
            yield item

    async for chunk in chain():
        usage = chunk.pop("usage", None)
        if usage:
            on_usage(usage)
        if chunk.get("choices"):
            if on_chunk is not None:
                on_chunk(chunk)
            yield chunk
