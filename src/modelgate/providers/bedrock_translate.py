"""Pure translation between our OpenAI-shaped requests/answers and Amazon Bedrock's Converse API and the
InvokeModel embedding bodies (Titan, Cohere).

Converse differs from OpenAI's chat: the system prompt is a top-level list, messages strictly alternate
user/assistant and hold content blocks (`text`, `image`, `toolUse`, `toolResult`), tool results travel in
a user turn, sampling knobs live in `inferenceConfig`, and tools in `toolConfig`.

- `response_format` json_object / json_schema: Converse has no native JSON mode, so a forced tool
  (`toolChoice.tool`) carries it and its input comes back as the message content with finish_reason "stop".
- Reasoning (bedrock_provider anthropic only): `thinking` / `reasoning_effort` become
  `additionalModelRequestFields.reasoning_config`; `reasoningContent` blocks come back as our reasoning content
  blocks (`reasoningText` → `summary_text` + `signature`, `redactedContent` → `summary_encrypted_text` + `data`)
  and go back to Bedrock from assistant history unmodified.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any

import orjson

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.anthropic_translate import DEFAULT_MAX_TOKENS, EFFORT_BUDGETS, JSON_TOOL_NAME
from modelgate.providers.base import chat_chunk

Json = dict[str, Any]

# docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html: stopReason values
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_IMAGE_FORMATS = {"image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


def converse_body(request: ChatRequest, bedrock_provider: str = "anthropic") -> tuple[Json, str | None]:
    """A Converse body, and the name of the structured-output tool if one was added (Converse has no `n`: the
    provider fans out). Example (API_runtime_Converse):
    {"messages": [{"role": "user", "content": [{"text": "Hello"}]}], "system": [{"text": "be brief"}],
     "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
     "toolConfig": {"tools": [{"toolSpec": {"name": ..., "inputSchema": {"json": {...}}}}],
                    "toolChoice": {"auto": {}}}}
    """
    data = request.model_dump(exclude_none=True, by_alias=True)
    system: list[Json] = []
    messages: list[Json] = []
    for i, msg in enumerate(data["messages"]):
        role = msg["role"]
        if role in ("system", "developer"):
            text = _text_of(msg.get("content"))
            if text.strip():  # Bedrock refuses a blank text block
                system.append({"text": text})
            continue
        bedrock_role = "assistant" if role == "assistant" else "user"
        blocks = _blocks(msg, i)
        if not blocks:
            continue  # nothing Bedrock takes (blank text, dropped reasoning): the turn goes, neighbours merge
        if messages and messages[-1]["role"] == bedrock_role:
            messages[-1]["content"].extend(blocks)  # Converse requires alternating roles
        else:
            messages.append({"role": bedrock_role, "content": blocks})
    if not messages:
        raise BadRequest("Bad request: the messages have no text to send (Bedrock refuses blank text)")
    body: Json = {"messages": messages}
    if system:
        body["system"] = system
    reasoning = _reasoning_config(request, bedrock_provider)
    inference = _inference_config(data)
    budget = (reasoning or {}).get("budget_tokens")
    if isinstance(budget, int) and "maxTokens" not in inference:
        inference["maxTokens"] = budget + DEFAULT_MAX_TOKENS  # the budget must stay below maxTokens
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(data) or {}
    format_tool = _add_format_tool(request, tool_config, forced=reasoning is None)
    if tool_config:
        body["toolConfig"] = tool_config
    extra: Json = {}
    if data.get("top_k") is not None:
        extra["top_k"] = data["top_k"]
    if reasoning is not None:
        extra["reasoning_config"] = reasoning
    if request.extra_params:
        extra.update(request.extra_params)
    if extra:
        body["additionalModelRequestFields"] = extra
    return body, format_tool


def _reasoning_config(request: ChatRequest, bedrock_provider: str) -> Json | None:
    """`thinking` / `reasoning_effort` → Claude's reasoning_config; None when reasoning is off or not asked."""
    if request.thinking is not None:
        budget = request.thinking.budget_tokens if request.thinking.type == "enabled" else None
    elif request.reasoning_effort is not None and request.reasoning_effort != "none":
        budget = EFFORT_BUDGETS[request.reasoning_effort]
    else:
        budget = None
    if budget is None:
        return None
    if bedrock_provider != "anthropic":
        raise BadRequest(
            "Provider 'amazon-bedrock' supports reasoning only for bedrock_provider 'anthropic', "
            f"not '{bedrock_provider}'."
        )
    return {"type": "enabled", "budget_tokens": budget}


def _add_format_tool(request: ChatRequest, config: Json, forced: bool) -> str | None:
    """Adds the structured-output tool for response_format json_object / json_schema to the tool config (in
    place) and returns its name. It is forced unless the request chose tools itself; Claude rejects a forced
    tool while reasoning, so then it is only offered."""
    fmt = request.response_format
    if fmt is None or fmt.type not in ("json_object", "json_schema"):
        return None
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        name = fmt.json_schema.name
        schema = fmt.json_schema.schema_ or {"type": "object"}
        description = fmt.json_schema.description or "Answer with an object matching this schema."
    else:
        name, schema, description = JSON_TOOL_NAME, {"type": "object"}, "Answer with a JSON object."
    specs = config.setdefault("tools", [])
    if any(spec["toolSpec"]["name"] == name for spec in specs):
        raise BadRequest(f"Bad request: response_format name {name!r} clashes with a tool's name")
    specs.append({"toolSpec": {"name": name, "inputSchema": {"json": schema}, "description": description}})
    if "toolChoice" not in config:
        config["toolChoice"] = {"tool": {"name": name}} if forced else {"auto": {}}
    return name


def _text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _blocks(msg: Json, index: int) -> list[Json]:
    role, content = msg["role"], msg.get("content")
    if role == "tool":
        return [{"toolResult": {"toolUseId": msg.get("tool_call_id"), "content": _tool_result(content, index)}}]
    blocks: list[Json] = []
    if isinstance(content, str):
        if content.strip():  # Bedrock refuses a blank text block
            blocks.append({"text": content})
    elif content:
        for part in content:
            if part.get("type") == "text":
                if part["text"].strip():
                    blocks.append({"text": part["text"]})
            elif part.get("type") == "image_url":
                blocks.append(_image(part["image_url"]["url"], index))
            elif part.get("type") == "reasoning" and role == "assistant":
                blocks.extend(_reasoning_blocks(part))
    for call in msg.get("tool_calls") or []:
        fn = call["function"]
        try:
            args = orjson.loads(fn["arguments"] or "{}")
        except orjson.JSONDecodeError:
            raise BadRequest(f"messages[{index}]: tool call arguments must be a JSON object") from None
        blocks.append({"toolUse": {"toolUseId": call["id"], "name": fn["name"], "input": args}})
    return blocks


def _tool_result(content: Any, index: int) -> list[Json]:
    """A tool message's content → toolResult content: text and image blocks (Converse takes both there). A
    blank result goes as an empty JSON object, since a blank text block is refused."""
    parts: list[Json] = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    blocks: list[Json] = []
    for part in parts:
        if part.get("type") == "text" and part["text"].strip():
            blocks.append({"text": part["text"]})
        elif part.get("type") == "image_url":
            blocks.append(_image(part["image_url"]["url"], index))
    return blocks or [{"json": {}}]


def _reasoning_blocks(part: Json) -> list[Json]:
    """Our reasoning block → Converse reasoningContent blocks, text and signature passed on unmodified. Claude
    refuses unsigned reasoning, so an unsigned block (another provider's: Cohere's, a Gemini thought) is
    dropped."""
    blocks: list[Json] = []
    for item in part.get("summary") or []:
        if item.get("type") == "summary_encrypted_text":
            blocks.append({"reasoningContent": {"redactedContent": item.get("data") or ""}})
        elif item.get("signature"):
            text: Json = {"text": item.get("text") or "", "signature": item["signature"]}
            blocks.append({"reasoningContent": {"reasoningText": text}})
    return blocks


def _image(url: str, index: int) -> Json:
    """A base64 data URL → an image block; Bedrock does not fetch URLs, so https URLs are refused."""
    head, sep, payload = url.partition(",")
    mime = head.removeprefix("data:").removesuffix(";base64")
    if not (sep and head.startswith("data:") and head.endswith(";base64")) or mime not in _IMAGE_FORMATS:
        raise BadRequest(f"messages[{index}]: provider 'amazon-bedrock' takes images as base64 data URLs only")
    try:
        base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise BadRequest(f"messages[{index}]: the image is not valid base64") from None
    return {"image": {"format": _IMAGE_FORMATS[mime], "source": {"bytes": payload}}}


def _inference_config(data: Json) -> Json:
    out: Json = {}
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None:
        out["maxTokens"] = max_tokens
    if data.get("temperature") is not None:
        out["temperature"] = data["temperature"]
    if data.get("top_p") is not None:
        out["topP"] = data["top_p"]
    stop = data.get("stop")
    if stop:
        out["stopSequences"] = [stop] if isinstance(stop, str) else stop
    return out


def _tool_config(data: Json) -> Json | None:
    """Bedrock has auto / any / a named tool; `tool_choice: none` is expressed by offering no tools."""
    tools, choice = data.get("tools"), data.get("tool_choice")
    if not tools or choice == "none":
        return None
    specs = []
    for tool in tools:
        fn = tool["function"]
        spec: Json = {"name": fn["name"], "inputSchema": {"json": fn.get("parameters") or {"type": "object"}}}
        if fn.get("description"):
            spec["description"] = fn["description"]
        specs.append({"toolSpec": spec})
    config: Json = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name")}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def usage(raw: Json | None) -> Json:
    """Converse usage {"inputTokens", "outputTokens", "totalTokens"} → OpenAI usage."""
    raw = raw or {}
    prompt, completion = int(raw.get("inputTokens") or 0), int(raw.get("outputTokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def reasoning_block(content: Json) -> Json:
    """A Converse reasoningContent → our reasoning content block."""
    if "redactedContent" in content:
        return {
            "type": "reasoning",
            "summary": [{"type": "summary_encrypted_text", "data": content["redactedContent"]}],
        }
    text = content.get("reasoningText") or {}
    item: Json = {"type": "summary_text", "text": text.get("text") or ""}
    if text.get("signature") is not None:
        item["signature"] = text["signature"]
    return {"type": "reasoning", "summary": [item]}


def _finish(stop_reason: Any, has_tool_calls: bool) -> str:
    mapped = FINISH_REASONS.get(str(stop_reason), "stop")
    # A forced structured-output tool ends with tool_use, but the caller sees plain content.
    return "stop" if mapped == "tool_calls" and not has_tool_calls else mapped


def chat_response(resp: Json, model: str, format_tool: str | None = None) -> Json:
    """A Converse answer → chat.completion. Example (API_runtime_Converse):
    {"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}, {"toolUse": {"toolUseId": "t1",
     "name": "get_weather", "input": {"city": "Paris"}}}]}}, "stopReason": "end_turn",
     "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}, "metrics": {"latencyMs": 120}}
    """
    content = ((resp.get("output") or {}).get("message") or {}).get("content") or []
    texts: list[str] = []
    reasoning: list[Json] = []
    calls: list[Json] = []
    for block in content:
        if "text" in block:
            texts.append(block["text"])
        elif "reasoningContent" in block:
            reasoning.append(reasoning_block(block["reasoningContent"]))
        elif "toolUse" in block:
            if format_tool is not None and block["toolUse"].get("name") == format_tool:
                texts.append(orjson.dumps(block["toolUse"].get("input") or {}).decode())
            else:
                calls.append(block["toolUse"])
    text = "".join(texts)
    answer: Any = [*reasoning, {"type": "text", "text": text}] if reasoning else (text or None)
    message: Json = {"role": "assistant", "content": answer}
    if calls:
        message["tool_calls"] = [
            {
                "id": c.get("toolUseId"),
                "type": "function",
                "function": {"name": c.get("name"), "arguments": orjson.dumps(c.get("input") or {}).decode()},
            }
            for c in calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(resp.get("stopReason"), bool(calls))}],
        "usage": usage(resp.get("usage")),
    }


class StreamTranslator:
    """ConverseStream events (event type, payload) → chat.completion.chunk dicts. Example events
    (API_runtime_ConverseStream): messageStart {"role": "assistant"};
    contentBlockStart {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}};
    contentBlockDelta {"contentBlockIndex": 0, "delta": {"text": "Hi"}} or {"delta": {"toolUse": {"input": "{\\""}}};
    contentBlockStop; messageStop {"stopReason": "end_turn"}; metadata {"usage": {...}, "metrics": {...}}.
    Reasoning arrives as contentBlockDelta {"delta": {"reasoningContent": {"text": ...}}}, then one with
    {"signature": ...} (or {"redactedContent": ...}); each becomes a reasoning content delta.
    """

    def __init__(self, model: str, format_tool: str | None = None) -> None:
        self.model = model
        self.format_tool = format_tool
        self.format_blocks: set[int] = set()
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.tool_index: dict[int, int] = {}  # contentBlockIndex → OpenAI tool_calls index

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return chat_chunk({"id": self.id, "created": self.created, "model": self.model}, delta, finish)

    def feed(self, kind: str, event: Json) -> list[Json]:
        block = int(event.get("contentBlockIndex") or 0)
        if kind == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "contentBlockStart":
            tool = (event.get("start") or {}).get("toolUse")
            if not tool:
                return []
            if self.format_tool is not None and tool.get("name") == self.format_tool:
                self.format_blocks.add(block)
                return []
            index = self.tool_index.setdefault(block, len(self.tool_index))
            fn = {"name": tool.get("name"), "arguments": ""}
            entry = {"index": index, "id": tool.get("toolUseId"), "type": "function", "function": fn}
            return [self._chunk({"tool_calls": [entry]})]
        if kind == "contentBlockDelta":
            delta = event.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})]
            if "reasoningContent" in delta:
                return [self._chunk({"content": [_reasoning_delta(delta["reasoningContent"])]})]
            if "toolUse" in delta and block in self.format_blocks:
                fragment = delta["toolUse"].get("input") or ""
                return [self._chunk({"content": fragment})] if fragment else []
            if "toolUse" in delta:
                index = self.tool_index.setdefault(block, len(self.tool_index))
                args = delta["toolUse"].get("input") or ""
                return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": args}}]})]
            return []
        if kind == "messageStop":
            return [self._chunk({}, _finish(event.get("stopReason"), bool(self.tool_index)))]
        if kind == "metadata":
            return [{**self._chunk({}), "choices": [], "usage": usage(event.get("usage"))}]
        return []  # contentBlockStop


def _reasoning_delta(delta: Json) -> Json:
    if "redactedContent" in delta:
        return {"type": "reasoning", "summary": [{"type": "summary_encrypted_text", "data": delta["redactedContent"]}]}
    item: Json = {"type": "summary_text", "text": delta.get("text") or ""}
    if "signature" in delta:
        item["signature"] = delta["signature"]
    return {"type": "reasoning", "summary": [item]}


def embed_bodies(request: EmbeddingRequest, bedrock_provider: str) -> list[Json]:
    """InvokeModel bodies: Titan takes one text per call ({"inputText": ..., "dimensions"?}), Cohere a list
    ({"texts": [...], "input_type": "search_document"})."""
    texts = request.inputs()
    extra = request.extra_params or {}
    if bedrock_provider == "amazon":
        dims = {"dimensions": request.dimensions} if request.dimensions is not None else {}
        return [{"inputText": t, **dims, **extra} for t in texts]
    if bedrock_provider == "cohere":
        return [{"texts": texts, "input_type": "search_document", **extra}]
    raise BadRequest(f"Provider 'amazon-bedrock' has no embedding models for bedrock_provider '{bedrock_provider}'.")


def embed_response(answers: list[Json], texts: list[str], model: str) -> Json:
    """Titan answers {"embedding": [...], "inputTextTokenCount": n} or a Cohere answer {"embeddings": [[...]]}
    → an OpenAI embeddings list. Cohere reports no token count: it is estimated as (characters + 1) / 4."""
    vectors: list[Any] = []
    tokens = 0
    for answer in answers:
        if "embedding" in answer:
            vectors.append(answer["embedding"])
            tokens += int(answer.get("inputTextTokenCount") or 0)
        else:
            vectors.extend(answer.get("embeddings") or [])
    if tokens == 0:
        tokens = sum((len(t) + 1) // 4 for t in texts)
    return {
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
