"""AI Gateway guardrails on inputs and outputs: PII (block or mask), invalid keywords, valid topics, safety.

`valid_topics` compares the request with each topic through an embeddings endpoint, and `safety` asks a
judge chat endpoint; both endpoints are settings of this server (MODELGATE_GUARDRAIL_EMBEDDING_ENDPOINT,
MODELGATE_GUARDRAIL_SAFETY_ENDPOINT), queried through the normal dispatch as the server's admin.
Output guardrails apply to non-streaming chat and completions, as on Databricks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from modelgate.errors import BadRequest, InvalidParameterValue
from modelgate.gateway.pii import find_pii, mask
from modelgate.protocol.chat import ChatMessage, ChatRequest, TextPart
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest

Request = ChatRequest | CompletionRequest | EmbeddingRequest
Json = dict[str, Any]
Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
Judge = Callable[[str], Awaitable[str]]

TOPIC_THRESHOLD = 0.5
SAFETY_PROMPT = (
    "You are a content safety classifier. Answer with the single word UNSAFE if the user's message asks for or "
    "contains violence, self-harm, sexual content involving minors, hate, or instructions for serious harm; "
    "otherwise answer SAFE."
)


class GuardrailBlocked(BadRequest):
    """A refusal. `kept_request`, when set, is the refused request with its PII masked: what the inference
    table may keep of it, so a table never holds the PII that the pii guardrail caught."""

    def __init__(self, message: str, *, kept_request: Request | None = None) -> None:
        super().__init__(message)
        self.kept_request = kept_request


def _texts(request: Request) -> list[str]:
    if isinstance(request, ChatRequest):
        return [m.text() for m in request.messages if m.role in ("user", "system", "developer", "tool")]
    if isinstance(request, CompletionRequest):
        return request.prompts()
    return request.inputs()


def _map_texts(request: Request, fn: Callable[[str], str]) -> Request:
    """A copy of the request with `fn` applied to every text the user sent."""
    if isinstance(request, ChatRequest):
        messages: list[ChatMessage] = []
        for m in request.messages:
            if isinstance(m.content, str):
                m = m.model_copy(update={"content": fn(m.content)})
            elif m.content:
                parts = [p.model_copy(update={"text": fn(p.text)}) if isinstance(p, TextPart) else p for p in m.content]
                m = m.model_copy(update={"content": parts})
            messages.append(m)
        return request.model_copy(update={"messages": messages})
    if isinstance(request, CompletionRequest):
        prompt = request.prompt
        return request.model_copy(update={"prompt": fn(prompt) if isinstance(prompt, str) else [fn(p) for p in prompt]})
    value = request.input
    return request.model_copy(update={"input": fn(value) if isinstance(value, str) else [fn(v) for v in value]})


def _keyword_hit(texts: list[str], keywords: list[str]) -> str | None:
    for kw in keywords:
        pattern = re.compile(r"(?<!\w)" + re.escape(kw) + r"(?!\w)", re.IGNORECASE)
        if any(pattern.search(t) for t in texts):
            return kw
    return None


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class Guardrails:
    def __init__(self, embed: Embed | None = None, judge: Judge | None = None) -> None:
        self.embed = embed
        self.judge = judge

    def check_config(self, guardrails: Json | None) -> None:
        """Refuse, at config time, guardrails this server cannot enforce."""
        for side in ("input", "output"):
            params = (guardrails or {}).get(side) or {}
            if params.get("valid_topics") and self.embed is None:
                raise InvalidParameterValue(
                    "guardrails.valid_topics needs an embeddings endpoint to compare topics with; set "
                    "MODELGATE_GUARDRAIL_EMBEDDING_ENDPOINT on the server"
                )
            if params.get("safety") and self.judge is None:
                raise InvalidParameterValue(
                    "guardrails.safety needs a judge chat endpoint; set MODELGATE_GUARDRAIL_SAFETY_ENDPOINT on "
                    "the server"
                )
            if side == "output" and params.get("valid_topics"):
                raise InvalidParameterValue("valid_topics applies to inputs only")

    async def check_input(self, gateway: Json | None, request: Request) -> Request:
        params = ((gateway or {}).get("guardrails") or {}).get("input") or {}
        if not params:
            return request
        texts = _texts(request)
        behavior = (params.get("pii") or {}).get("behavior", "NONE")
        kinds: list[str] = []
        masked = None  # the request with its PII masked, once some was found
        if behavior != "NONE":
            kinds = sorted({e.kind for t in texts for e in find_pii(t)})
            if kinds:
                masked = _map_texts(request, lambda t: mask(t, find_pii(t)))
        keyword = _keyword_hit(texts, params.get("invalid_keywords") or [])
        if keyword is not None:
            raise GuardrailBlocked(
                f"Request blocked by input guardrail 'invalid_keywords': it contains {keyword!r}.", kept_request=masked
            )
        if kinds and behavior == "BLOCK":
            raise GuardrailBlocked(
                f"Request blocked by input guardrail 'pii': it contains {', '.join(kinds)}.", kept_request=masked
            )
        if masked is not None:
            request, texts = masked, _texts(masked)
        topics = params.get("valid_topics") or []
        if topics and self.embed is not None:
            joined = "\n".join(texts)
            vectors = await self.embed([joined, *topics])
            best = max(_cosine(vectors[0], v) for v in vectors[1:])
            if best < TOPIC_THRESHOLD:
                raise GuardrailBlocked(
                    "Request blocked by input guardrail 'valid_topics': it is not about "
                    f"{', '.join(map(repr, topics))}.",
                    kept_request=masked,
                )
        if params.get("safety") and self.judge is not None:
            verdict = await self.judge("\n".join(texts))
            if "UNSAFE" in verdict.upper():
                raise GuardrailBlocked("Request blocked by input guardrail 'safety'.", kept_request=masked)
        return request

    async def check_output(self, gateway: Json | None, body: Json) -> Json:
        params = ((gateway or {}).get("guardrails") or {}).get("output") or {}
        if not params:
            return body
        slots: list[tuple[Json, str]] = []
        for choice in body.get("choices") or []:
            msg = choice.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                slots.append((msg, "content"))
            elif isinstance(choice.get("text"), str):
                slots.append((choice, "text"))
        texts = [holder[key] for holder, key in slots]
        keyword = _keyword_hit(texts, params.get("invalid_keywords") or [])
        if keyword is not None:
            raise GuardrailBlocked(f"Response blocked by output guardrail 'invalid_keywords': it contains {keyword!r}.")
        behavior = (params.get("pii") or {}).get("behavior", "NONE")
        if behavior != "NONE":
            for holder, key in slots:
                entities = find_pii(holder[key])
                if entities and behavior == "BLOCK":
                    kinds = ", ".join(sorted({e.kind for e in entities}))
                    raise GuardrailBlocked(f"Response blocked by output guardrail 'pii': it contains {kinds}.")
                if entities:
                    holder[key] = mask(holder[key], entities)
        if params.get("safety") and self.judge is not None:
            verdict = await self.judge("\n".join(holder[key] for holder, key in slots))
            if "UNSAFE" in verdict.upper():
                raise GuardrailBlocked("Response blocked by output guardrail 'safety'.")
        return body
