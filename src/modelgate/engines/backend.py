"""The Provider that serves a catalog model: OpenAI-shaped answers from the model's engine.

While the model loads, calls get a 503 with Retry-After; a failed load answers 503 with the reason.
Chat requests become a prompt (tools through the chat template, local_tools.py), a constraint (structured
output or a forced tool call, structured.py) and a reasoning setting (thinking.py); each output row comes
back as text, tool calls parsed from it, and a reasoning block in the shape the external providers use.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelgate.engines import local_tools
from modelgate.engines.engine import Delta, Engine, GenerationParams, GenerationUsage
from modelgate.engines.local_tools import ToolCallStream
from modelgate.engines.structured import request_constraint
from modelgate.engines.thinking import thinking_of
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
        plan = await self._chat_input(request)
        usage = GenerationUsage()
        rows = await _collect(self._engine().generate([plan.prompt], plan.params, usage), plan.params.n)
        return {
            "id": _new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [plan.choice(i, *row) for i, row in enumerate(rows)],
            "usage": _usage(usage),
        }

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:  # type: ignore[override]
        plan = await self._chat_input(request)
        usage = GenerationUsage()
        meta = {"id": _new_id("chatcmpl"), "object": "chat.completion.chunk", "created": int(time.time())}
        meta["model"] = self.model_name
        started: set[int] = set()
        parsers: dict[int, ToolCallStream] = {}
        async for delta in self._engine().generate([plan.prompt], plan.params, usage):
            parser = parsers.setdefault(delta.index, plan.tool_stream()) if plan.tool_names is not None else None
            pieces = plan.stream_pieces(delta, parser)
            finish = delta.finish_reason
            if finish == "stop" and parser is not None and parser.calls:
                finish = "tool_calls"
            if finish is not None and not pieces:
                pieces = [{"content": ""}]
            for i, piece in enumerate(pieces):
                if delta.index not in started:
                    started.add(delta.index)
                    piece = {"role": "assistant", **piece}
                last = finish if i == len(pieces) - 1 else None
                yield {**meta, "choices": [{"index": delta.index, "delta": piece, "finish_reason": last}]}
        yield {**meta, "choices": [], "usage": _usage(usage)}

    async def _chat_input(self, request: ChatRequest) -> _ChatPlan:
        if self.task != "llm/v1/chat":
            raise self._unsupported("chat")
        engine = self._engine()
        think, budget = thinking_of(request, engine.reasoning_delimiters, self.model_name)
        tools = local_tools.tools_of(request)
        constraint = request_constraint(request, offered_tools=tools is not None)
        if constraint is not None:
            await asyncio.to_thread(engine.check_constraint, constraint)  # 400 for a schema it cannot follow
        params = _params(
            request.max_completion_tokens or request.max_tokens,
            request.temperature,
            request.top_p,
            request.top_k,
            request.stop,
            request.n,
            request.seed,
        )
        params.constraint, params.thinking, params.thinking_budget = constraint, think, budget
        prompt = engine.encode_chat(local_tools.template_messages(request), tools=tools, thinking=think)
        names = {t["function"]["name"] for t in tools} if tools else None
        return _ChatPlan(prompt, params, names, engine.tool_call_tags)

    # -- completions -------------------------------------------------------------------------------
    async def completions(self, request: CompletionRequest) -> Json:
        prompts, params = self._completion_input(request)
        usage = GenerationUsage()
        rows = len(prompts) * params.n
        answers = await _collect(self._engine().generate(prompts, params, usage), rows)
        return {
            "id": _new_id("cmpl"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {"index": i, "text": text, "finish_reason": reason, "logprobs": None}
                for i, (text, _, reason) in enumerate(answers)
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


async def _collect(deltas: AsyncIterator[Delta], rows: int) -> list[tuple[str, str, str | None]]:
    """(answer, reasoning, finish_reason) of each row."""
    texts: list[list[str]] = [[] for _ in range(rows)]
    thoughts: list[list[str]] = [[] for _ in range(rows)]
    reasons: list[str | None] = [None] * rows
    async for delta in deltas:
        texts[delta.index].append(delta.text)
        thoughts[delta.index].append(delta.reasoning)
        if delta.finish_reason is not None:
            reasons[delta.index] = delta.finish_reason
    return [("".join(texts[i]), "".join(thoughts[i]), reasons[i]) for i in range(rows)]


def _usage(usage: GenerationUsage) -> Json:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@dataclass
class _ChatPlan:
    """A chat request made ready for the engine, and how its rows' output becomes OpenAI message parts."""

    prompt: list[int]
    params: GenerationParams
    tool_names: set[str] | None  # tools the answer may call (None: no tool calls are looked for)
    tool_tags: tuple[str, str]

    def tool_stream(self) -> ToolCallStream:
        # A call the grammar allows is sure to be well formed, so its arguments can stream as generated.
        kind = self.params.constraint.kind if self.params.constraint is not None else None
        sure = kind in ("tool_call", "answer_or_tool_call")
        return ToolCallStream(self.tool_tags, self.tool_names or set(), stream_arguments=sure)

    def choice(self, index: int, text: str, reasoning: str, reason: str | None) -> Json:
        calls: list[Json] = []
        if self.tool_names is not None:
            text, calls = local_tools.split_calls(text, self.tool_tags, self.tool_names)
        content: Any = text
        if self.params.thinking:
            content = [_reasoning_block(reasoning), {"type": "text", "text": text}]
        elif calls and not text:
            content = None
        message: Json = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls and reason == "stop" else reason
        return {"index": index, "message": message, "finish_reason": finish}

    def stream_pieces(self, delta: Delta, parser: ToolCallStream | None) -> list[Json]:
        """The chunk deltas of one engine delta: reasoning first, then content or tool-call pieces."""
        pieces: list[Json] = [{"content": [_reasoning_block(delta.reasoning)]}] if delta.reasoning else []
        if parser is None:
            if delta.text or not pieces:
                pieces.append({"content": delta.text})
            return pieces
        pieces.extend(parser.feed(delta.text))
        if delta.finish_reason is not None:
            pieces.extend(parser.finish())
        return pieces


def _reasoning_block(text: str) -> Json:
    """The reasoning content block the external providers return (see providers/anthropic_translate.py)."""
    return {"type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}
