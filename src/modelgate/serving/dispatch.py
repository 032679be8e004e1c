"""Query dispatch: permission check, task check, traffic split, fallbacks, usage, observers.

Knows nothing of HTTP: routes hand it a principal and a validated request and render what it returns.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelgate.auth.permissions import Level, require
from modelgate.auth.principal import Principal
from modelgate.errors import (
    BadRequest,
    ModelgateError,
    RequestLimitExceeded,
    ResourceDoesNotExist,
    TemporarilyUnavailable,
)
from modelgate.gateway.guardrails import GuardrailBlocked, Guardrails
from modelgate.gateway.ratelimit import RateLimiter
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.base import Provider
from modelgate.providers.upstream import NO_CAP, RETRY_BUDGET_CAP
from modelgate.redaction import SecretMask
from modelgate.serving.records import CallRecord, Observer, output_chars, request_chars
from modelgate.serving.registry import EndpointRegistry, EndpointRuntime, EntityRuntime
from modelgate.serving.streams import normalized_events
from modelgate.vision import has_images, image_tokens, prepare_images

log = logging.getLogger(__name__)

Json = dict[str, Any]
Request = ChatRequest | CompletionRequest | EmbeddingRequest

CHAT, COMPLETIONS, EMBEDDINGS = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"
_FIELD_FOR_TASK = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}
_ROUTE_FOR_TASK = {CHAT: "chat/completions", COMPLETIONS: "completions", EMBEDDINGS: "embeddings"}
_CHUNK_OBJECT = {CHAT: "chat.completion.chunk", COMPLETIONS: "text_completion"}


def task_of(request: Request) -> str:
    if isinstance(request, ChatRequest):
        return CHAT
    if isinstance(request, CompletionRequest):
        return COMPLETIONS
    return EMBEDDINGS


def estimate_tokens(chars: int) -> int:
    """Databricks' estimate when a model reports no usage: (characters + 1) / 4."""
    return (chars + 1) // 4


def estimate_prompt_tokens(request: Request) -> int:
    """Prompt tokens when the model reports none: text by (characters + 1) / 4, images by w * h / 750."""
    return estimate_tokens(request_chars(request)) + image_tokens(request)


def _retriable(exc: ModelgateError) -> bool:
    return exc.status == 429 or exc.status >= 500


@dataclass
class CallResult:
    served_entity: str
    body: Json
    _encoded: bytes | None = field(default=None, repr=False, compare=False)

    def encoded(self) -> bytes:
        """The body as JSON, made once: the inference table keeps the very bytes the client gets."""
        if self._encoded is None:
            self._encoded = orjson.dumps(self.body, option=orjson.OPT_NON_STR_KEYS)
        return self._encoded


@dataclass
class StreamResult:
    served_entity: str
    chunks: AsyncIterator[Json]


class InvocationService:
    def __init__(
        self,
        registry: EndpointRegistry,
        observers: list[Observer] | None = None,
        limiter: RateLimiter | None = None,
        guardrails: Guardrails | None = None,
        mask: SecretMask | None = None,
    ) -> None:
        self.registry = registry
        # Every error that leaves a provider call is scrubbed with it: an upstream that echoes the key it got
        # must not hand it to the caller (redaction.py). Only the error paths pay for it.
        self.mask = mask if mask is not None else SecretMask()
        self.observers: list[Observer] = list(observers or [])
        self.limiter = limiter
        self.guardrails = guardrails
        # Requests in flight by (endpoint, caller, client_request_id): a client that re-sends the same
        # request (the Databricks SDK does after 60 s without an answer) joins the first one.
        self._inflight: dict[tuple[str, str, str], asyncio.Future[CallResult]] = {}

    # -- resolution --------------------------------------------------------------------------------
    @staticmethod
    def _resolve(
        principal: Principal, rt: EndpointRuntime, task: str, served_entity: str | None
    ) -> list[EntityRuntime]:
        """The served entities to try, in order: the one named, or the traffic split's pick (then the
        fallbacks when the AI Gateway enables them)."""
        name = rt.name
        require(principal, rt.acl, rt.creator, Level.CAN_QUERY, name)
        if rt.task and rt.task != task:
            raise BadRequest(
                f"Endpoint '{name}' serves {rt.task}, so it takes '{_FIELD_FOR_TASK[rt.task]}' "
                f"(OpenAI route /serving-endpoints/{_ROUTE_FOR_TASK[rt.task]}); this request is for {task}."
            )
        if served_entity is not None:
            ent = rt.entities.get(served_entity)
            if ent is None:
                raise ResourceDoesNotExist(
                    f"Served entity '{served_entity}' does not exist in endpoint '{name}' "
                    f"(served entities: {', '.join(rt.entities)})."
                )
            return [ent]
        if not rt.fallback:
            first = rt.splitter.pick()
            return [rt.entities[first]] if first is not None and first in rt.entities else []
        return [rt.entities[n] for n in rt.splitter.order() if n in rt.entities]

    @staticmethod
    def _backend(ent: EntityRuntime) -> Provider:
        if ent.backend is None:
            raise TemporarilyUnavailable(
                f"Served entity '{ent.name}' is not available: {ent.build_error or 'not ready'}",
                retry_after=5,
            )
        return ent.backend

    def _record(self, principal: Principal, rt: EndpointRuntime, request: Request, stream: bool) -> CallRecord:
        return CallRecord(
            endpoint=rt.name,
            endpoint_id=rt.id,
            task=task_of(request),
            principal=principal,
            streaming=stream,
            request=request,
            client_request_id=request.client_request_id,
            usage_context=request.usage_context,
            recording=rt.recording,
        )

    async def _guard_input(self, rt: EndpointRuntime, request: Any, record: CallRecord) -> Any:
        """The request as the model should see it (PII masked), or GuardrailBlocked."""
        if self.guardrails is None or not rt.input_guardrails:
            return request
        try:
            checked = await self.guardrails.check_input(rt.ai_gateway, request)
        except GuardrailBlocked as blocked:
            record.guardrail_blocked = "input"
            if blocked.kept_request is not None:  # the table keeps the refused request without its PII
                record.request, record.request_body = blocked.kept_request, None
            raise
        if checked is not request:
            record.request, record.request_body = checked, None  # store what the model was sent
        return checked

    def _settle_limits_now(self, rt: EndpointRuntime, principal: Principal, record: CallRecord) -> bool:
        """Check the endpoint's rate limits at once when their counters live in this process, so the common
        case makes no coroutine. False when they are shared (Redis): then `_prepare` awaits them."""
        limiter = self.limiter
        if limiter is None:
            return True  # nothing counts calls: nothing to check
        if not limiter.in_process:
            return False
        try:
            record.admission = limiter.admit_now(rt.id, rt.name, rt.ai_gateway, principal)
        except RequestLimitExceeded:
            record.rate_limited = True
            raise
        return True

    async def _prepare(
        self, rt: EndpointRuntime, principal: Principal, request: Any, record: CallRecord, images: bool, limits: bool
    ) -> Any:
        """Images, shared rate limits (`limits`), input guardrails: the request as the model gets it. Most
        endpoints use none of them, so the non-streaming path tests for them before making this coroutine."""
        if images:
            request = await prepare_images(request)  # vision layer: check/scale images before any provider
        if limits and self.limiter is not None:
            try:
                record.admission = await self.limiter.admit(rt.id, rt.name, rt.ai_gateway, principal)
            except RequestLimitExceeded:
                record.rate_limited = True
                raise
            except Exception as exc:  # the shared counter store is down: refuse rather than ignore the limits
                log.warning("rate limit counters unavailable: %s", type(exc).__name__)
                raise TemporarilyUnavailable(
                    "Rate limits cannot be checked right now (the counter store is unreachable); retry shortly.",
                    retry_after=1,
                ) from None
        if rt.input_guardrails:
            request = await self._guard_input(rt, request, record)
        return request

    def _finish(self, record: CallRecord) -> None:
        record.duration_s = time.perf_counter() - record.started
        if record.admission is not None and self.limiter is not None:
            self.limiter.charge(record.admission, record.prompt_tokens + record.completion_tokens)
        for observer in self.observers:
            try:
                observer(record)
            except Exception:  # an observer's bug must never fail a request
                log.exception("observer %r failed", observer)

    # -- non-streaming -------------------------------------------------------------------------------
    def call(
        self,
        principal: Principal,
        name: str,
        request: Request,
        served_entity: str | None = None,
        *,
        raw_body: bytes | None = None,
    ) -> Awaitable[CallResult]:
        """Answer one query. `raw_body` is the client's JSON as sent, which the inference table keeps.

        Not a coroutine itself: without a client_request_id it hands back `_call`'s, one frame fewer."""
        if request.client_request_id is None:
            return self._call(principal, name, request, served_entity, raw_body)
        return self._call_once(principal, name, request, served_entity, raw_body)

    async def _call_once(
        self, principal: Principal, name: str, request: Request, served_entity: str | None, raw_body: bytes | None
    ) -> CallResult:
        """A request re-sent with the same client_request_id while the first is running joins the first."""
        assert request.client_request_id is not None
        key = (name, f"{principal.kind}:{principal.name}", request.client_request_id)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._call(principal, name, request, served_entity, raw_body)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: joiners re-raise it, nobody else needs to
            raise
        finally:
            del self._inflight[key]

    async def _call(
        self, principal: Principal, name: str, request: Request, served_entity: str | None, raw_body: bytes | None
    ) -> CallResult:
        task = task_of(request)
        rt = self.registry.cached(name) or await self.registry.get(name)
        targets = self._resolve(principal, rt, task, served_entity)
        record = self._record(principal, rt, request, stream=False)
        record.request_body = raw_body
        try:
            images = has_images(request)
            limits = bool(rt.rate_limits) and not self._settle_limits_now(rt, principal, record)
            if limits or rt.input_guardrails or images:
                request = await self._prepare(rt, principal, request, record, images, limits)
            if len(targets) == 1 and RETRY_BUDGET_CAP.get() == NO_CAP:  # the common case, without the loop
                ent = targets[0]
                body = await _method(self._backend(ent), request)
            else:
                checked = request
                body, ent = await self._first_success(targets, lambda backend: _method(backend, checked))
            record.served_entity = ent.name
            if isinstance(request, EmbeddingRequest) and request.encoding_format == "base64":
                encode_embeddings_base64(body)
            usage = body.get("usage")
            if not usage:
                usage = self._estimated_usage(request, body)
                body["usage"] = usage
            record.set_usage(usage)
            record.response = body
            if rt.output_guardrails and self.guardrails is not None and not isinstance(request, EmbeddingRequest):
                try:
                    body = await self.guardrails.check_output(rt.ai_gateway, body)
                except GuardrailBlocked:
                    # The client gets a 400; the answer it was refused must not land in the inference table.
                    record.guardrail_blocked, record.response = "output", None
                    raise
            result = CallResult(ent.name, body)
            if record.recording is not None and record.recording.payload_table is not None:
                record.response_body = result.encoded()  # the inference table keeps the client's bytes
            return result
        except ModelgateError as exc:
            record.status_code, record.error_code = exc.status, exc.error_code
            self.mask.scrub_error(exc)  # in place: the error the caller gets holds no secret
            raise
        except BaseException:
            record.status_code, record.error_code = 499, "CANCELLED"
            raise
        finally:
            self._finish(record)

    async def _first_success(
        self, targets: list[EntityRuntime], call: Callable[[Provider], Awaitable[Any]]
    ) -> tuple[Any, EntityRuntime]:
        last: ModelgateError | None = None
        for i, ent in enumerate(targets):
            # Only the last candidate spends the retry budget; the others fail over at once.
            cap = RETRY_BUDGET_CAP.set(NO_CAP if i == len(targets) - 1 else 0.0)
            try:
                return await call(self._backend(ent)), ent
            except ModelgateError as exc:
                last = exc
                if not _retriable(exc) or i == len(targets) - 1:
                    raise
                log.info("served entity %s failed with %s; falling back", ent.name, exc.status)
            finally:
                RETRY_BUDGET_CAP.reset(cap)
        raise last or TemporarilyUnavailable("The endpoint has no served entity that takes traffic.")

    def _estimated_usage(self, request: Request, body: Json) -> Json:
        prompt = estimate_prompt_tokens(request)
        out_chars = output_chars(body)
        completion = estimate_tokens(out_chars) if out_chars else 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    # -- streaming -----------------------------------------------------------------------------------
    async def stream(
        self,
        principal: Principal,
        name: str,
        request: ChatRequest | CompletionRequest,
        served_entity: str | None = None,
        *,
        raw_body: bytes | None = None,
    ) -> StreamResult:
        """Open the stream (errors before the first chunk raise here), then hand back the chunks."""
        task = task_of(request)
        rt = self.registry.cached(name) or await self.registry.get(name)
        targets = self._resolve(principal, rt, task, served_entity)
        record = self._record(principal, rt, request, stream=True)
        record.request_body = raw_body

        async def open_stream(backend: Provider) -> tuple[Json, AsyncIterator[Json]]:
            it = _stream_method(backend, request)
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                first = {"choices": []}
            return first, it

        try:
            limits = bool(rt.rate_limits) and not self._settle_limits_now(rt, principal, record)
            request = await self._prepare(rt, principal, request, record, has_images(request), limits)
            (first, rest), ent = await self._first_success(targets, open_stream)
        except ModelgateError as exc:
            record.status_code, record.error_code = exc.status, exc.error_code
            self._finish(record)
            self.mask.scrub_error(exc)  # in place: the error the caller gets holds no secret
            raise
        except BaseException:
            record.status_code, record.error_code = 499, "CANCELLED"
            self._finish(record)
            raise
        record.served_entity = ent.name
        return StreamResult(ent.name, self._tracked(record, request, first, rest))

    async def _tracked(
        self,
        record: CallRecord,
        request: ChatRequest | CompletionRequest,
        first: Json,
        rest: AsyncIterator[Json],
    ) -> AsyncIterator[Json]:
        out_chars = 0
        texts: dict[int, list[str]] = {}

        def on_chunk(chunk: Json) -> None:
            nonlocal out_chars
            for choice in chunk["choices"]:
                delta = choice.get("delta")
                piece = delta.get("content") if delta else choice.get("text")
                if isinstance(piece, str):
                    out_chars += len(piece)
                    texts.setdefault(choice.get("index", 0), []).append(piece)

        events = normalized_events(first, rest, on_usage=record.set_usage, on_chunk=on_chunk)
        meta: Json = {}
        try:
            async for chunk in events:
                if not meta:
                    meta = {"id": chunk.get("id"), "created": chunk.get("created"), "model": chunk.get("model")}
                yield chunk
            if not record.usage_reported:
                prompt = estimate_prompt_tokens(request)
                completion = estimate_tokens(out_chars) if out_chars else 0
                record.prompt_tokens, record.completion_tokens = prompt, completion
            if request.wants_usage_chunk:
                yield {
                    **meta,
                    "object": _CHUNK_OBJECT[record.task],
                    "choices": [],
                    "usage": {
                        "prompt_tokens": record.prompt_tokens,
                        "completion_tokens": record.completion_tokens,
                        "total_tokens": record.prompt_tokens + record.completion_tokens,
                    },
                }
        except ModelgateError as exc:  # mid-stream: the route sends it as the stream's error event
            record.status_code, record.error_code = exc.status, exc.error_code
            self.mask.scrub_error(exc)  # in place: the error the caller gets holds no secret
            raise
        except BaseException:
            record.client_disconnected = True
            record.status_code, record.error_code = 499, "CANCELLED"
            if not record.usage_reported:
                record.prompt_tokens = estimate_prompt_tokens(request)
                record.completion_tokens = estimate_tokens(out_chars) if out_chars else 0
            raise
        finally:
            await events.aclose()
            record.response = aggregate_stream(record, texts)
            self._finish(record)


def aggregate_stream(record: CallRecord, texts: dict[int, list[str]]) -> Json:
    """A streamed answer as one response object (what usage tracking and inference tables store)."""
    if record.task == CHAT:
        choices: list[Json] = [
            {"index": i, "message": {"role": "assistant", "content": "".join(parts)}}
            for i, parts in sorted(texts.items())
        ]
        obj = "chat.completion"
    else:
        choices = [{"index": i, "text": "".join(parts)} for i, parts in sorted(texts.items())]
        obj = "text_completion"
    usage = {
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": record.prompt_tokens + record.completion_tokens,
    }
    return {"object": obj, "choices": choices, "usage": usage}


def _method(backend: Provider, request: Request) -> Awaitable[Json]:
    if isinstance(request, ChatRequest):
        return backend.chat(request)
    if isinstance(request, CompletionRequest):
        return backend.completions(request)
    return backend.embeddings(request)


def _stream_method(backend: Provider, request: ChatRequest | CompletionRequest) -> AsyncIterator[Json]:
    if isinstance(request, ChatRequest):
        return backend.chat_stream(request)
    return backend.completions_stream(request)


def encode_embeddings_base64(body: Json) -> None:
    """Turn float embeddings into base64 of little-endian float32, as the OpenAI API does."""
    for item in body.get("data") or []:
        vec = item.get("embedding")
        if isinstance(vec, list):
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
