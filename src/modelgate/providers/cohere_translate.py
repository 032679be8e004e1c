"""Pure translation between our OpenAI-shaped requests/answers and Cohere's v2 API (chat, embed).

Cohere v2 messages are close to OpenAI's (system/user/assistant/tool roles, `tool_calls`, `tool_call_id`);
sampling knobs are renamed (top_p → p, top_k → k, stop → stop_sequences) and answers, stream events and
usage have their own shapes.

- Images (docs.cohere.com/docs/image-inputs): user content parts `{"type": "image_url", "image_url": {"url",
  "detail"}}`, the same shape as OpenAI's, data URLs or https URLs (Cohere fetches those itself).
- Reasoning (docs.cohere.com/docs/reasoning): `thinking: {"type": "enabled", "token_budget"}` or
  `{"type": "disabled"}`; answers carry `{"type": "thinking", "thinking": "..."}` content blocks (streamed as
  content-delta `delta.message.content.thinking`), which come back as our reasoning blocks (Cohere signs
  nothing, so there is no signature) and go back to Cohere from assistant history as thinking blocks.
"""

from __future__ import annotations

import time
from typing import Any

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.anthropic_translate import EFFORT_BUDGETS
from modelgate.providers.base import chat_chunk

Json = dict[str, Any]

# docs.cohere.com/reference/chat: finish_reason COMPLETE | STOP_SEQUENCE | MAX_TOKENS | TOOL_CALL | ERROR | TIMEOUT
FINISH_REASONS = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
_RENAMED = {"top_p": "p", "top_k": "k", "max_tokens": "max_tokens", "temperature": "temperature", "seed": "seed"}
_PASSED = ("frequency_penalty", "presence_penalty")


def chat_body(request: ChatRequest, model: str) -> Json:
    """A v2 /chat body. Example (docs.cohere.com/reference/chat):
    {"model": "command-a-03-2025", "messages": [{"role": "user", "content": "Hello"}], "p": 0.9, "k": 40,
     "stop_sequences": ["END"], "tools": [{"type": "function", "function": {"name": ..., "parameters": ...}}]}
    """
    data = request.model_dump(exclude_none=True, by_alias=True, exclude={"n"})
    body: Json = {"model": model, "messages": [_message(m, i) for i, m in enumerate(data["messages"])]}
    for ours, theirs in _RENAMED.items():
        if data.get(ours) is not None:
            body[theirs] = data[ours]
    if data.get("max_completion_tokens") is not None:
        body["max_tokens"] = data["max_completion_tokens"]
    for name in _PASSED:
        if data.get(name) is not None:
            body[name] = data[name]
    stop = data.get("stop")
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    tools = data.get("tools")
    if tools:
        body["tools"] = tools
        _tool_choice(data.get("tool_choice"), body)
    fmt = data.get("response_format")
    if fmt and fmt.get("type") == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt and fmt.get("type") == "json_schema":
        body["response_format"] = {"type": "json_object", "json_schema": (fmt.get("json_schema") or {}).get("schema")}
    thinking = _thinking(request)
    if thinking is not None:
        body["thinking"] = thinking
    if request.extra_params:
        body.update(request.extra_params)
    return body


def _thinking(request: ChatRequest) -> Json | None:
    """`thinking` / `reasoning_effort` → Cohere's thinking parameter (effort → the same budgets as Anthropic)."""
    if request.thinking is not None:
        if request.thinking.type == "disabled":
            return {"type": "disabled"}
        budget = request.thinking.budget_tokens
        return {"type": "enabled", **({"token_budget": budget} if budget else {})}
    effort = request.reasoning_effort
    if effort is None:
        return None
    if effort == "none":
        return {"type": "disabled"}
    return {"type": "enabled", "token_budget": EFFORT_BUDGETS[effort]}


def _content(role: str, content: Any, index: int) -> Any:
    """Content parts in Cohere's shape: text everywhere, images in user turns, thinking in assistant turns."""
    if isinstance(content, str):
        return content
    parts: list[Json] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url" and role == "user":
            parts.append({"type": "image_url", "image_url": part["image_url"]})
        elif kind == "reasoning" and role == "assistant":
            for item in part.get("summary") or []:
                if item.get("type") == "summary_text":
                    parts.append({"type": "thinking", "thinking": item.get("text") or ""})
        else:
            raise BadRequest(f"messages[{index}]: provider 'cohere' does not take '{kind}' content in {role} messages.")
    return parts


def _message(msg: Json, index: int) -> Json:
    role = msg["role"]
    out: Json = {"role": "system" if role == "developer" else role}
    if msg.get("content") is not None:
        out["content"] = _content(role, msg["content"], index)
    if role == "assistant" and msg.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {k: c["function"][k] for k in ("name", "arguments")}}
            for c in msg["tool_calls"]
        ]
    if role == "tool":
        out["tool_call_id"] = msg.get("tool_call_id")
    return out


def _tool_choice(choice: Any, body: Json) -> None:
    """Cohere has REQUIRED and NONE; a named function becomes REQUIRED with only that tool offered."""
    if choice in (None, "auto"):
        return
    if choice == "none":
        body["tool_choice"] = "NONE"
    elif choice == "required":
        body["tool_choice"] = "REQUIRED"
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        body["tools"] = [t for t in body["tools"] if t["function"]["name"] == name]
        body["tool_choice"] = "REQUIRED"


def reasoning_block(text: str) -> Json:
    """A Cohere thinking block's text as our reasoning content block."""
    return {"type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def usage(raw: Json | None) -> Json:
    """Cohere usage {"billed_units": {...}, "tokens": {"input_tokens", "output_tokens"}} → OpenAI usage."""
    raw = raw or {}
    tokens = raw.get("tokens") or raw.get("billed_units") or {}
    prompt, completion = int(tokens.get("input_tokens") or 0), int(tokens.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_response(resp: Json, model: str) -> Json:
    """A v2 /chat answer → chat.completion. Example (docs.cohere.com/reference/chat):
    {"id": "c14c80c3-...", "finish_reason": "COMPLETE", "message": {"role": "assistant", "content":
     [{"type": "text", "text": "Hi"}]}, "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 2},
     "tokens": {"input_tokens": 71, "output_tokens": 2}}}
    """
    msg = resp.get("message") or {}
    text = "".join(p.get("text", "") for p in msg.get("content") or [] if p.get("type") == "text")
    reasoning = [
        reasoning_block(p.get("thinking") or "") for p in msg.get("content") or [] if p.get("type") == "thinking"
    ]
    content: Any = [*reasoning, {"type": "text", "text": text}] if reasoning else (text or None)
    message: Json = {"role": "assistant", "content": content}
    if msg.get("tool_calls"):
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": c["function"]} for c in msg["tool_calls"]
        ]
    return {
        "id": resp.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": FINISH_REASONS.get(str(resp.get("finish_reason")), "stop"),
            }
        ],
        "usage": usage(resp.get("usage")),
    }


class StreamTranslator:
    """Cohere v2 stream events → chat.completion.chunk dicts. Example events (docs.cohere.com/docs/streaming):
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hello"}}}}
    {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "t1", "type": "function",
     "function": {"name": "get_weather", "arguments": ""}}}}}
    {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {"tokens": {...}}}}
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id: str | None = None
        self.created = int(time.time())

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return chat_chunk({"id": self.id, "created": self.created, "model": self.model}, delta, finish)

    def feed(self, event: Json) -> list[Json]:
        kind = event.get("type")
        delta = (event.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            self.id = event.get("id")
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-delta":
            part = delta.get("content") or {}
            if "thinking" in part:
                return [self._chunk({"content": [reasoning_block(part["thinking"] or "")]})]
            return [self._chunk({"content": part.get("text", "")})]
        if kind == "tool-call-start":
            call = delta.get("tool_calls") or {}
            fn = call.get("function") or {}
            tool = {"name": fn.get("name"), "arguments": fn.get("arguments") or ""}
            entry = {"index": event.get("index", 0), "id": call.get("id"), "type": "function", "function": tool}
            return [self._chunk({"tool_calls": [entry]})]
        if kind == "tool-call-delta":
            args = ((delta.get("tool_calls") or {}).get("function") or {}).get("arguments", "")
            return [self._chunk({"tool_calls": [{"index": event.get("index", 0), "function": {"arguments": args}}]})]
        if kind == "message-end":
            end = event.get("delta") or {}
            finish = FINISH_REASONS.get(str(end.get("finish_reason")), "stop")
            last = self._chunk({}, finish)
            return [last, {**self._chunk({}), "choices": [], "usage": usage(end.get("usage"))}]
        return []  # content-start/-end, tool-plan-delta, tool-call-end, citations


def embed_body(request: EmbeddingRequest, model: str) -> Json:
    """A v2 /embed body. Example (docs.cohere.com/reference/embed):
    {"model": "embed-v4.0", "texts": ["hello"], "input_type": "search_document", "embedding_types": ["float"]}
    """
    texts = [request.input] if isinstance(request.input, str) else list(request.input)
    body: Json = {"model": model, "texts": texts, "input_type": "search_document", "embedding_types": ["float"]}
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions
    if request.extra_params:
        body.update(request.extra_params)
    return body


def embed_response(resp: Json, model: str) -> Json:
    """A v2 /embed answer → OpenAI embeddings list. Example (docs.cohere.com/reference/embed):
    {"id": "...", "embeddings": {"float": [[0.016, -0.0088]]}, "texts": ["hello"],
     "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 1}}}
    """
    vectors = (resp.get("embeddings") or {}).get("float") or []
    tokens = int(((resp.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0)
    return {
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
