"""The Provider that serves a catalog model: OpenAI-shaped answers from the model's engine.

While the model loads, calls get a 503 with Retry-After; a failed load answers 503 with the reason.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from modelgate.engines.engine import Delta, Engine, GenerationParams, GenerationUsage
from modelgate.errors import BadRequest, InvalidParameterValue, TemporarilyUnavailable
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.base import Json, Provider, ProviderConfig

if TYPE_CHECKING:
    from modelgate.engines.catalog import Deployment

LOADING_RETRY_AFTER_S = 5


class LocalBackend(Provider):
    name = "local"
    config_key = "local_config"
    config_model = ProviderConfig

    def __init__(self, deployment: Deployment) -> None:  # no HTTP session or secrets needed
        self.deployment = deployment
        self.model_name = deployment.entry.full_name
        self.task = deployment.entry.task
        self.config = ProviderConfig()

    def _engine(self) -> Engine:
        d = self.deployment
        if d.engine is not None:
            return d.engine
        if d.state == "DEPLOYMENT_FAILED":
            raise TemporarilyUnavailable(f"Model '{self.model_name}' failed to load: {d.message}")
        raise TemporarilyUnavailable(
            f"Model '{self.model_name}' is still loading; retry shortly.", retry_after=LOADING_RETRY_AFTER_S
        )

    # -- embeddings --------------------------------------------------------------------------------
    async def embeddings(self, request: EmbeddingRequest) -> Json:
        if self.task != "llm/v1/embeddings":
            raise self._unsupported("embeddings")
        engine = self._engine()
        texts = request.inputs()
        if request.instruction:
            texts = [request.instruction + t for t in texts]
        result = await engine.embed(texts)
        dimension = len(result.vectors[0])
        if request.dimensions is not None and request.dimensions != dimension:
            raise InvalidParameterValue(
                f"'dimensions' must be {dimension} for model '{self.model_name}', got {request.dimensions}"
            )
        data = []
        for i, vector in enumerate(result.vectors):
            embedding: Any = vector
            if request.encoding_format == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        return {
            "object": "list",
            "model": self.model_name,
            "data": data,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }

    # -- chat --------------------------------------------------------------------------------------
    async def chat(self, request: ChatRequest) -> Json:
        prompt, params = self._chat_input(request)
        usage = GenerationUsage()
        texts, reasons = await _collect(self._engine().generate([prompt], params, usage), params.n)
        return {
            "id": _new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": texts[i]}, "finish_reason": reasons[i]}
                for i in range(params.n)
            ],
            "usage": _usage(usage),
        }

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:  # type: ignore[override]
        prompt, params = self._chat_input(request)
        usage = GenerationUsage()
        meta = {"id": _new_id("chatcmpl"), "object": "chat.completion.chunk", "created": int(time.time())}
        meta["model"] = self.model_name
        started: set[int] = set()
        async for delta in self._engine().generate([prompt], params, usage):
            out: Json = {"content": delta.text}
            if delta.index not in started:
                started.add(delta.index)
                out["role"] = "assistant"
            choice = {"index": delta.index, "delta": out, "finish_reason": delta.finish_reason}
            yield {**meta, "choices": [choice]}
        yield {**meta, "choices": [], "usage": _usage(usage)}

    def _chat_input(self, request: ChatRequest) -> tuple[list[int], GenerationParams]:
        if self.task != "llm/v1/chat":
            raise self._unsupported("chat")
        if request.tools:
            raise BadRequest(f"Model '{self.model_name}' does not support tools yet.")
        if request.response_format is not None and request.response_format.type != "text":
            raise BadRequest(
                f"Model '{self.model_name}' does not support response_format '{request.response_format.type}' yet."
            )
        messages = [{"role": m.role, "content": _text_of(m.content)} for m in request.messages]
        engine = self._engine()
        params = _params(
            request.max_completion_tokens or request.max_tokens,
            request.temperature,
            request.top_p,
            request.top_k,
            request.stop,
            request.n,
            request.seed,
        )
        return engine.encode_chat(messages), params

    # -- completions -------------------------------------------------------------------------------
    async def completions(self, request: CompletionRequest) -> Json:
        prompts, params = self._completion_input(request)
        usage = GenerationUsage()
        rows = len(prompts) * params.n
        texts, reasons = await _collect(self._engine().generate(prompts, params, usage), rows)
        return {
            "id": _new_id("cmpl"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {"index": i, "text": texts[i], "finish_reason": reasons[i], "logprobs": None} for i in range(rows)
            ],
            "usage": _usage(usage),
        }

    async def completions_stream(self, request: CompletionRequest) -> AsyncIterator[Json]:  # type: ignore[override]
        prompts, params = self._completion_input(request)
        usage = GenerationUsage()
        meta = {"id": _new_id("cmpl"), "object": "text_completion", "created": int(time.time())}
        meta["model"] = self.model_name
        async for delta in self._engine().generate(prompts, params, usage):
            choice = {"index": delta.index, "text": delta.text, "finish_reason": delta.finish_reason, "logprobs": None}
            yield {**meta, "choices": [choice]}
        yield {**meta, "choices": [], "usage": _usage(usage)}

    def _completion_input(self, request: CompletionRequest) -> tuple[list[list[int]], GenerationParams]:
        if self.task != "llm/v1/completions":
            raise self._unsupported("completions")
        if request.echo or request.suffix or request.logprobs:
            raise BadRequest(f"Model '{self.model_name}' does not support echo, suffix or logprobs.")
        engine = self._engine()
        params = _params(
            request.max_tokens, request.temperature, request.top_p, request.top_k, request.stop, request.n, request.seed
        )
        return [engine.encode_text(p) for p in request.prompts()], params


def _params(
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    stop: str | list[str] | None,
    n: int | None,
    seed: int | None,
) -> GenerationParams:
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else temperature,
        top_p=top_p,
        top_k=top_k,
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        n=n or 1,
        seed=seed,
    )


def _text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if getattr(part, "type", None) != "text":
            raise BadRequest("Local models take text content only.")
        parts.append(part.text)
    return "".join(parts)


async def _collect(deltas: AsyncIterator[Delta], rows: int) -> tuple[list[str], list[str | None]]:
    texts: list[list[str]] = [[] for _ in range(rows)]
    reasons: list[str | None] = [None] * rows
    async for delta in deltas:
        texts[delta.index].append(delta.text)
        if delta.finish_reason is not None:
            reasons[delta.index] = delta.finish_reason
    return ["".join(t) for t in texts], reasons


def _usage(usage: GenerationUsage) -> Json:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
