"""Provider `cohere`: Cohere's v2 API — POST {base}/v2/chat (streaming too) and {base}/v2/embed.

Config (reference §5.4): cohere_api_key (a secret reference) or cohere_api_key_plaintext, cohere_api_base
(default https://api.cohere.com). Translation lives in `cohere_translate.py`.
Example upstream call (docs.cohere.com/reference/chat):
    POST https://api.cohere.com/v2/chat  Authorization: Bearer <key>
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydantic import Field

from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers import cohere_translate as t
from modelgate.providers.base import Json, Provider, ProviderConfig, ProviderDeps
from modelgate.providers.fanout import fanout_stream, merge_choices
from modelgate.providers.openai_compat import response_as_chunks

COHERE_DEFAULT_BASE = "https://api.cohere.com"
SecretField = str | dict[str, str] | None


class CohereConfig(ProviderConfig):
    cohere_api_key: SecretField = None
    cohere_api_key_plaintext: SecretField = None
    cohere_api_base: str | None = Field(default=None, pattern=r"^https?://")


class CohereProvider(Provider):
    name = "cohere"
    config_key = "cohere_config"
    config_model = CohereConfig
    secret_fields = (("cohere_api_key", True),)

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        assert isinstance(config, CohereConfig)
        self.api_key = self.secret(config.model_dump(), "cohere_api_key")
        self.base = (config.cohere_api_base or COHERE_DEFAULT_BASE).rstrip("/").removesuffix("/v2")
        self.client = self.upstream_client()

    def headers(self) -> dict[str, str]:
        key = self.api_key.get() if self.api_key else ""
        return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    async def chat(self, request: ChatRequest) -> Json:
        body = t.chat_body(request, self.model_name)
        n = request.n or 1
        if n == 1:
            return await self._one(body)
        # Cohere has no `n`: n calls in parallel, merged into n choices.
        return merge_choices(list(await asyncio.gather(*(self._one(body) for _ in range(n)))))

    async def _one(self, body: Json) -> Json:
        resp = await self.client.post_json(f"{self.base}/v2/chat", body, self.headers())
        return t.chat_response(resp, self.model_name)

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        body = t.chat_body(request, self.model_name)
        body["stream"] = True
        n = request.n or 1
        if n == 1:
            return self._stream(body)
        return fanout_stream(lambda _: self._stream(body), n)

    async def _stream(self, body: Json) -> AsyncIterator[Json]:
        translator = t.StreamTranslator(self.model_name)
        async for event in self.client.stream_sse(f"{self.base}/v2/chat", body, self.headers()):
            whole = event.get("__whole_response__")
            if whole is not None:  # an upstream that ignored stream=true
                for chunk in response_as_chunks(t.chat_response(whole, self.model_name)):
                    yield chunk
                return
            for chunk in translator.feed(event):
                yield chunk

    async def embeddings(self, request: EmbeddingRequest) -> Json:
        body = t.embed_body(request, self.model_name)
        resp = await self.client.post_json(f"{self.base}/v2/embed", body, self.headers())
        return t.embed_response(resp, self.model_name)
