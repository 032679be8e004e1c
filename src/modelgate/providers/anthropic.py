"""Provider `anthropic`: Anthropic's Messages API (POST {base}/v1/messages), chat only.

Config (reference §5.4): anthropic_api_key (a secret reference) or anthropic_api_key_plaintext, plus the
modelgate extension anthropic_api_base (default https://api.anthropic.com; for self-hosted proxies and tests,
since Databricks has no base-URL field for Anthropic). Translation lives in `anthropic_translate.py`.
Example upstream call (docs.anthropic.com/en/api/messages):
    POST https://api.anthropic.com/v1/messages  x-api-key: sk-ant-...  anthropic-version: 2023-06-01
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from modelgate.errors import ExternalModelError
from modelgate.protocol.chat import ChatRequest
from modelgate.providers.anthropic_translate import (
    ANTHROPIC_VERSION,
    StreamTranslator,
    chat_response,
    merge_choices,
    messages_body,
)
from modelgate.providers.base import Json, Provider, ProviderConfig, ProviderDeps
from modelgate.providers.openai_compat import response_as_chunks

ANTHROPIC_DEFAULT_BASE = "https://api.anthropic.com"
SecretField = str | dict[str, str] | None
# Anthropic stream `error` event types → (status, Databricks error_code).
_STREAM_ERRORS = {
    "overloaded_error": (503, "TEMPORARILY_UNAVAILABLE"),
    "rate_limit_error": (429, "REQUEST_LIMIT_EXCEEDED"),
    "api_error": (500, "INTERNAL_ERROR"),
    "invalid_request_error": (400, "BAD_REQUEST"),
}


class AnthropicConfig(ProviderConfig):
    anthropic_api_key: SecretField = None
    anthropic_api_key_plaintext: SecretField = None
    # modelgate extension: the API root (without /v1), for proxies and tests.
    anthropic_api_base: str | None = Field(default=None, pattern=r"^https?://")


class AnthropicProvider(Provider):
    name = "anthropic"
    config_key = "anthropic_config"
    config_model = AnthropicConfig
    secret_fields = (("anthropic_api_key", True),)

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        assert isinstance(config, AnthropicConfig)
        self.api_key = self.secret(config.model_dump(), "anthropic_api_key")
        base = (config.anthropic_api_base or ANTHROPIC_DEFAULT_BASE).rstrip("/").removesuffix("/v1")
        self.url = f"{base}/v1/messages"
        self.client = self.upstream_client()

    def headers(self) -> dict[str, str]:
        key = self.api_key.get() if self.api_key else ""
        return {"Content-Type": "application/json", "x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}

    # -- non-streaming -------------------------------------------------------------------------------
    async def chat(self, request: ChatRequest) -> Json:
        body, format_tool = messages_body(request, self.model_name)
        n = request.n or 1
        if n == 1:
            return await self._one(body, format_tool)
        # Anthropic has no `n`: n calls in parallel, merged into n choices.
        results = await asyncio.gather(*(self._one(body, format_tool) for _ in range(n)))
        return merge_choices(list(results))

    async def _one(self, body: Json, format_tool: str | None) -> Json:
        message = await self.client.post_json(self.url, body, self.headers())
        return chat_response(message, format_tool)

    # -- streaming -----------------------------------------------------------------------------------
    def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        body, format_tool = messages_body(request, self.model_name)
        body["stream"] = True
        n = request.n or 1
        if n == 1:
            return self._one_stream(body, format_tool, 0)
        return self._fanout_stream(body, format_tool, n)

    async def _one_stream(self, body: Json, format_tool: str | None, index: int) -> AsyncIterator[Json]:
        translator = StreamTranslator(format_tool, index)
        try:
            async for event in self.client.stream_sse(self.url, body, self.headers()):
                whole = event.get("__whole_response__")
                if whole is not None:  # an upstream that ignored stream=true
                    for chunk in response_as_chunks(chat_response(whole, format_tool)):
                        for choice in chunk["choices"]:
                            choice["index"] = index
                        yield chunk
                    return
                for chunk in translator.feed(event):
                    yield chunk
        except ExternalModelError as exc:
            raise _stream_error(exc) from None

    async def _fanout_stream(self, body: Json, format_tool: str | None, n: int) -> AsyncIterator[Json]:
        """n upstream streams interleaved as choices 0..n-1; their usage summed into one final chunk."""
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        async def pump(i: int) -> None:
            try:
                async for chunk in self._one_stream(body, format_tool, i):
                    await queue.put(("chunk", chunk))
                await queue.put(("done", None))
            except Exception as exc:
                await queue.put(("error", exc))

        tasks = [asyncio.create_task(pump(i)) for i in range(n)]
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        first_id: Any = None
        meta: Json = {}
        try:
            remaining = n
            while remaining:
                kind, item = await queue.get()
                if kind == "error":
                    raise item
                if kind == "done":
                    remaining -= 1
                    continue
                u = item.pop("usage", None)
                if u:
                    for key in totals:
                        totals[key] += int(u.get(key) or 0)
                if first_id is None:
                    first_id = item.get("id")
                    meta = {"created": item.get("created"), "model": item.get("model")}
                item["id"] = first_id
                yield item
            yield {"id": first_id, "object": "chat.completion.chunk", **meta, "choices": [], "usage": totals}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _stream_error(exc: ExternalModelError) -> ExternalModelError:
    """An `error` event inside a stream (e.g. overloaded_error) gets the status its type stands for."""
    message = exc.extra.get("external_model_message")
    if exc.status != 502 or not isinstance(message, dict) or message.get("type") not in _STREAM_ERRORS:
        return exc
    status, code = _STREAM_ERRORS[message["type"]]
    retry = 1 if status in (429, 503) else None
    return ExternalModelError("anthropic", status, code, message, retry_after=retry)
