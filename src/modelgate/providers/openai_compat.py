"""Shared behaviour of providers whose upstream speaks the OpenAI API (OpenAI, Azure, custom servers).

Requests go out nearly as they came in: our wire model minus the gateway-only fields, with the upstream
model name and `extra_params` merged in. Streams always ask the upstream for usage so it can be reported
even when the caller did not ask for it.

Assistant history may hold what another provider answered (through a fallback, a traffic split, or a client
that echoes messages): reasoning content blocks (Anthropic's, Bedrock's, Gemini's thoughts) and Google's
`extra_content` thought signatures. OpenAI's API takes only `text` and `refusal` parts in an assistant message
and no unknown keys, so each provider says what its upstream keeps (`keeps_reasoning_blocks`,
`keeps_extra_content`); what it does not keep is dropped, and an assistant content left with text only goes
as a string. Reasoning cannot be handed to OpenAI: its own reasoning is carried only by the Responses API.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import GATEWAY_ONLY_FIELDS
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.base import Json, Provider, ProviderConfig, ProviderDeps

_EXCLUDE = set(GATEWAY_ONLY_FIELDS)


class OpenAICompatibleProvider(Provider):
    # Request fields this upstream does not understand; dropped before sending.
    unsupported_fields: ClassVar[frozenset[str]] = frozenset()
    # Whether the upstream takes reasoning content blocks in assistant history (Databricks' own shape).
    keeps_reasoning_blocks: ClassVar[bool] = False
    # Whether it takes Google's `extra_content` on assistant messages and tool calls (Gemini's
    # OpenAI-compatible API needs it; OpenAI's API refuses unknown keys).
    keeps_extra_content: ClassVar[bool] = False

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        self.client = self.upstream_client()

    # Subclasses say where each task goes and how to authenticate.
    def url_for(self, route: str) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    async def request_headers(self) -> dict[str, str]:
        """The headers of one upstream call; async for providers that fetch a token first (Entra ID)."""
        return self.headers()

    def body_model_name(self) -> str | None:
        return self.model_name

    def build_body(self, request: ChatRequest | CompletionRequest | EmbeddingRequest) -> Json:
        body = request.model_dump(exclude_none=True, exclude=_EXCLUDE, by_alias=True)
        for name in self.unsupported_fields:
            body.pop(name, None)
        if "messages" in body and not (self.keeps_reasoning_blocks and self.keeps_extra_content):
            # Only assistant turns can hold what another provider wrote; the others pass without a call.
            history = self._history_message
            body["messages"] = [history(m) if m.get("role") == "assistant" else m for m in body["messages"]]
        model = self.body_model_name()
        if model is not None:
            body["model"] = model
        if request.extra_params:
            body.update(request.extra_params)
        return body

    def _history_message(self, msg: Json) -> Json:
        """An assistant message as this upstream takes it (see the module docstring)."""
        msg = dict(msg)
        if not self.keeps_extra_content:
            msg.pop("extra_content", None)
            if msg.get("tool_calls"):
                msg["tool_calls"] = [{k: v for k, v in c.items() if k != "extra_content"} for c in msg["tool_calls"]]
        content = msg.get("content")
        if not self.keeps_reasoning_blocks and isinstance(content, list):
            kept = [p for p in content if p.get("type") != "reasoning"]
            if len(kept) != len(content):
                if all(p.get("type") == "text" for p in kept):
                    text = "".join(p.get("text") or "" for p in kept)
                    msg["content"] = text if text or not msg.get("tool_calls") else None
                else:
                    msg["content"] = kept
        return msg

    async def chat(self, request: ChatRequest) -> Json:
        body = self.build_body(request)
        body.pop("stream", None)
        body.pop("stream_options", None)
        return await self.client.post_json(self.url_for("chat/completions"), body, await self.request_headers())

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        return self._stream("chat/completions", request)

    async def completions(self, request: CompletionRequest) -> Json:
        body = self.build_body(request)
        body.pop("stream", None)
        body.pop("stream_options", None)
        return await self.client.post_json(self.url_for("completions"), body, await self.request_headers())

    def completions_stream(self, request: CompletionRequest) -> AsyncIterator[Json]:
        return self._stream("completions", request)

    async def embeddings(self, request: EmbeddingRequest) -> Json:
        body = self.build_body(request)
        return await self.client.post_json(self.url_for("embeddings"), body, await self.request_headers())

    async def _stream(self, route: str, request: ChatRequest | CompletionRequest) -> AsyncIterator[Json]:
        body = self.build_body(request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        async for event in self.client.stream_sse(self.url_for(route), body, await self.request_headers()):
            whole = event.get("__whole_response__")
            if whole is not None:
                for chunk in response_as_chunks(whole):
                    yield chunk
                return
            yield event


def response_as_chunks(response: Json) -> list[Json]:
    """A whole chat or completions response re-expressed as stream chunks (for upstreams that won't stream)."""
    base = {
        "id": response.get("id"),
        "created": response.get("created", int(time.time())),
        "model": response.get("model"),
    }
    chunks: list[Json] = []
    is_chat = response.get("object", "").startswith("chat")
    for choice in response.get("choices", []):
        if is_chat:
            msg: dict[str, Any] = dict(choice.get("message") or {})
            if msg.get("tool_calls"):
                msg["tool_calls"] = [{"index": i, **tc} for i, tc in enumerate(msg["tool_calls"])]
            delta = {k: v for k, v in msg.items() if v is not None}
            chunks.append(
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {"index": choice.get("index", 0), "delta": delta, "finish_reason": choice.get("finish_reason")}
                    ],
                }
            )
        else:
            chunks.append({**base, "object": "text_completion", "choices": [choice]})
    if response.get("usage"):
        chunks.append(
            {**base, "object": chunks[0]["object"] if chunks else "", "choices": [], "usage": response["usage"]}
        )
    return chunks
