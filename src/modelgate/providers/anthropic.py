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

from pydantic import Field

from modelgate.errors import ExternalModelError
from modelgate.protocol.chat import ChatRequest
from modelgate.providers.anthropic_translate import (
    ANTHROPIC_VERSION,
    StreamTranslator,
    chat_response,
    messages_body,
)
from modelgate.providers.base import Json, Provider, ProviderConfig, ProviderDeps
from modelgate.providers.fanout import fanout_stream, merge_choices
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
        return fanout_stream(lambda i: self._one_stream(body, format_tool, i), n)

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


def _stream_error(exc: ExternalModelError) -> ExternalModelError:
    """An `error` event inside a stream (e.g. overloaded_error) gets the status its type stands for."""
    message = exc.extra.get("external_model_message")
    if exc.status != 502 or not isinstance(message, dict) or message.get("type") not in _STREAM_ERRORS:
        return exc
    status, code = _STREAM_ERRORS[message["type"]]
    retry = 1 if status in (429, 503) else None
    return ExternalModelError("anthropic", status, code, message, retry_after=retry)
