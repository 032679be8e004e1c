"""Pure translation between our chat wire model (OpenAI-shaped) and Anthropic's Messages API.

No I/O here: `messages_body` builds the upstream request, `chat_response` turns Anthropic's answer into a
chat.completion, and `StreamTranslator` turns Anthropic's stream events into chat.completion.chunk dicts.
Each function carries a real upstream example and the docs page it comes from.

Mapping notes (also in docs/providers.md):
- `max_tokens` is required by Anthropic; without one we send DEFAULT_MAX_TOKENS (raised above the thinking
  budget when thinking is on, since Anthropic wants budget_tokens < max_tokens).
- Reasoning: each Anthropic `thinking` block becomes one `{"type": "reasoning", "summary": [...]}` content
  block (`summary_text` + `signature`; `redacted_thinking` as `summary_encrypted_text` + `data`), and an
  assistant message sent back with such blocks becomes the same thinking blocks again, byte for byte.
- `response_format` json_object / json_schema: a forced tool whose input comes back as the message content.
- Dropped (Anthropic has no equivalent): logprobs, top_logprobs, presence/frequency_penalty, logit_bias, seed.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from modelgate.errors import BadRequest
from modelgate.protocol.chat import (
    AudioPart,
    ChatMessage,
    ChatRequest,
    ImagePart,
    NamedToolChoice,
    ReasoningPart,
    TextPart,
)
from modelgate.providers.base import chat_chunk

Json = dict[str, Any]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
# Name of the forced tool that carries structured output (response_format) when the request names none.
JSON_TOOL_NAME = "json_response"
# reasoning_effort → thinking budget (Anthropic's minimum budget is 1024).
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 32000}

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# ------------------------------------------------------------------------------------------- request
def messages_body(request: ChatRequest, model: str) -> tuple[Json, str | None]:
    """The Messages API body for `request`, and the name of the structured-output tool if one was added.

    Example (docs.anthropic.com/en/api/messages):
        {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": "You are terse.",
         "messages": [{"role": "user", "content": "Hello, world"}]}
    """
    system, turns = _split_system(request.messages)
    body: Json = {"model": model, "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS}
    if system is not None:
        body["system"] = system
    body["messages"] = _messages(turns)
    if request.stop is not None:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.user:
        body["metadata"] = {"user_id": request.user}

    thinking = _thinking(request)
    if thinking is not None:
        body["thinking"] = thinking
        budget = thinking.get("budget_tokens")
        if request.max_tokens is None and isinstance(budget, int) and budget >= DEFAULT_MAX_TOKENS:
            body["max_tokens"] = budget + DEFAULT_MAX_TOKENS

    tools = [_tool(t.function.model_dump(exclude_none=True, by_alias=True)) for t in request.tools or []]
    choice = _tool_choice(request)
    format_tool = None
    fmt = request.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        if fmt.type == "json_schema" and fmt.json_schema is not None:
            format_tool = fmt.json_schema.name
            schema = fmt.json_schema.schema_ or {"type": "object"}
            description = fmt.json_schema.description or "Answer with an object matching this schema."
        else:
            format_tool, schema, description = JSON_TOOL_NAME, {"type": "object"}, "Answer with a JSON object."
        if any(t["name"] == format_tool for t in tools):
            raise BadRequest(f"Bad request: response_format name {format_tool!r} clashes with a tool's name")
        tools.append({"name": format_tool, "description": description, "input_schema": schema})
        # Anthropic rejects a forced tool while thinking; then the model is asked, not forced.
        forced = thinking is None or thinking.get("type") != "enabled"
        if choice is None or choice.get("type") == "none":
            choice = {"type": "tool", "name": format_tool} if forced else {"type": "auto"}
    if tools:
        body["tools"] = tools
    if choice is None and tools and request.parallel_tool_calls is False:
        choice = {"type": "auto"}  # Anthropic's default, said out loud to carry disable_parallel_tool_use
    if choice is not None:
        if request.parallel_tool_calls is False and choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    if request.extra_params:
        body.update(request.extra_params)
    return body, format_tool


def _split_system(messages: list[ChatMessage]) -> tuple[str | list[Json] | None, list[ChatMessage]]:
    if messages and messages[0].role in ("system", "developer"):
        first = messages[0]
        if isinstance(first.content, str):
            return (first.content if first.content.strip() else None), messages[1:]
        texts = [p.text for p in first.content or [] if isinstance(p, TextPart) and p.text.strip()]
        return ([{"type": "text", "text": t} for t in texts] or None), messages[1:]
    return None, messages


def _messages(turns: list[ChatMessage]) -> list[Json]:
    """Anthropic turns; tool results go in user turns and consecutive same-role turns are merged."""
    out: list[Json] = []
    for i, msg in enumerate(turns):
        role = "assistant" if msg.role == "assistant" else "user"
        blocks = _assistant_blocks(msg, i) if role == "assistant" else _user_blocks(msg, i)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        content = turn["content"]
        if turn["role"] == "user":  # Anthropic wants a turn's tool results before anything else in it
            content.sort(key=lambda block: block["type"] != "tool_result")
        # A lone text turn goes as a plain string, as Anthropic's own examples send it.
        if len(content) == 1 and content[0]["type"] == "text" and set(content[0]) == {"type", "text"}:
            turn["content"] = content[0]["text"]
    return out


def _user_blocks(msg: ChatMessage, position: int) -> list[Json]:
    if msg.role == "tool":
        content: Any = msg.content if isinstance(msg.content, str) else _content_blocks(msg, position)
        return [{"type": "tool_result", "tool_use_id": msg.tool_call_id, "content": content}]
    if isinstance(msg.content, str):
        return [{"type": "text", "text": msg.content}] if msg.content.strip() else []
    return _content_blocks(msg, position)


def _content_blocks(msg: ChatMessage, position: int) -> list[Json]:
    blocks: list[Json] = []
    for part in msg.content if isinstance(msg.content, list) else []:
        if isinstance(part, TextPart):
            if part.text.strip():  # Anthropic refuses a text block without non-whitespace text
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append({"type": "image", "source": _image_source(part.image_url.url)})
        elif isinstance(part, AudioPart):
            raise BadRequest(f"Bad request: messages[{position}]: provider 'anthropic' does not accept audio input")
        elif isinstance(part, ReasoningPart):
            blocks.extend(_thinking_blocks(part))
    return blocks


def _image_source(url: str) -> Json:
    """`data:image/png;base64,...` → a base64 source; an https URL → a url source (Anthropic fetches it)."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0]
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _thinking_blocks(part: ReasoningPart) -> list[Json]:
    """Reasoning → thinking blocks. Anthropic requires a signature on each (ThinkingBlockParam); an unsigned
    one was another provider's (Cohere's, a Gemini thought) and is dropped rather than refused."""
    blocks: list[Json] = []
    for item in part.summary:
        if item.type == "summary_encrypted_text":
            blocks.append({"type": "redacted_thinking", "data": item.data or ""})
        elif item.signature:
            blocks.append({"type": "thinking", "thinking": item.text or "", "signature": item.signature})
    return blocks


def _assistant_blocks(msg: ChatMessage, position: int) -> list[Json]:
    blocks: list[Json] = []
    if isinstance(msg.content, str):
        if msg.content.strip():
            blocks.append({"type": "text", "text": msg.content})
    else:
        blocks = _content_blocks(msg, position)
    for call in msg.tool_calls or []:
        try:
            args = orjson.loads(call.function.arguments) if call.function.arguments.strip() else {}
        except orjson.JSONDecodeError:
            raise BadRequest(
                f"Bad request: messages[{position}].tool_calls: arguments of {call.id!r} are not valid JSON"
            ) from None
        if not isinstance(args, dict):
            raise BadRequest(
                f"Bad request: messages[{position}].tool_calls: arguments of {call.id!r} must be an object"
            )
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": args})
    return blocks


def _tool(fn: Json) -> Json:
    tool: Json = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object"}}
    if fn.get("description"):
        tool["description"] = fn["description"]
    return tool


def _tool_choice(request: ChatRequest) -> Json | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        return {"type": "tool", "name": choice.function.name}
    return {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}


def _thinking(request: ChatRequest) -> Json | None:
    if request.thinking is not None:
        if request.thinking.type == "disabled":
            return {"type": "disabled"}
        return {"type": "enabled", "budget_tokens": request.thinking.budget_tokens}
    effort = request.reasoning_effort
    if effort is None:
        return None
    if effort == "none":
        return {"type": "disabled"}
    return {"type": "enabled", "budget_tokens": EFFORT_BUDGETS[effort]}


# ------------------------------------------------------------------------------------------- response
def chat_response(message: Json, format_tool: str | None) -> Json:
    """A chat.completion for one Anthropic message.

    Example (docs.anthropic.com/en/api/messages, with extended thinking from
    docs.anthropic.com/en/docs/build-with-claude/extended-thinking):
        {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
         "model": "claude-sonnet-4-5",
         "content": [{"type": "thinking", "thinking": "Let me analyze...", "signature": "WaUjzkyp..."},
                     {"type": "text", "text": "Hi! My name is Claude."}],
         "stop_reason": "end_turn", "stop_sequence": null,
         "usage": {"input_tokens": 2095, "output_tokens": 503}}
    """
    reasoning: list[Json] = []
    texts: list[str] = []
    tool_calls: list[Json] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind in ("thinking", "redacted_thinking"):
            reasoning.append(reasoning_block(block))
        elif kind == "tool_use":
            if format_tool is not None and block.get("name") == format_tool:
                texts.append(orjson.dumps(block.get("input") or {}).decode())
            else:
                tool_calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input")).decode()},
                    }
                )
    text = "".join(texts)
    content: Any = [*reasoning, {"type": "text", "text": text}] if reasoning else (text or None)
    if content is None and not tool_calls:
        content = ""
    msg: Json = {"role": "assistant", "content": content}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    finish = finish_reason(message.get("stop_reason"), bool(tool_calls))
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
        "usage": usage(message.get("usage") or {}),
    }


def reasoning_block(block: Json) -> Json:
    if block.get("type") == "redacted_thinking":
        return {"type": "reasoning", "summary": [{"type": "summary_encrypted_text", "data": block.get("data")}]}
    item: Json = {"type": "summary_text", "text": block.get("thinking") or ""}
    if block.get("signature") is not None:
        item["signature"] = block["signature"]
    return {"type": "reasoning", "summary": [item]}


def finish_reason(stop_reason: str | None, has_tool_calls: bool) -> str | None:
    if stop_reason is None:
        return None
    mapped = STOP_REASONS.get(stop_reason, "stop")
    # A forced structured-output tool ends with tool_use, but the caller sees plain content.
    if mapped == "tool_calls" and not has_tool_calls:
        return "stop"
    return mapped


def usage(u: Json) -> Json:
    """Anthropic usage → OpenAI usage; cached input counts toward prompt_tokens, as OpenAI counts it."""
    cache_read = int(u.get("cache_read_input_tokens") or 0)
    prompt = int(u.get("input_tokens") or 0) + int(u.get("cache_creation_input_tokens") or 0) + cache_read
    completion = int(u.get("output_tokens") or 0)
    out: Json = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cache_read:
        out["prompt_tokens_details"] = {"cached_tokens": cache_read}
    return out


# ------------------------------------------------------------------------------------------- stream
class StreamTranslator:
    """Anthropic stream events → chat.completion.chunk dicts, for one choice.

    Example stream (docs.anthropic.com/en/docs/build-with-claude/streaming, "Streaming request with tool use"):
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message",
               "role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,
               "usage":{"input_tokens":472,"output_tokens":2}}}
        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use",
               "id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}
        event: content_block_delta
        data: {"type":"content_block_delta","index":1,
               "delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}
        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},
               "usage":{"output_tokens":89}}
        event: message_stop
        data: {"type":"message_stop"}

    Tool calls are numbered in the order they start (OpenAI's `index`); the first delta of each carries id,
    type and name, later ones only argument fragments. Usage rides on the finishing chunk: input tokens from
    message_start, output tokens from message_delta.
    """

    def __init__(self, format_tool: str | None, choice_index: int = 0) -> None:
        self.format_tool = format_tool
        self.choice = choice_index
        self.meta: Json = {"id": None, "created": int(time.time()), "model": None}
        self.input_usage: Json = {}
        self.tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool_call index
        self.format_blocks: set[int] = set()
        self.saw_tool_call = False

    def feed(self, event: Json) -> list[Json]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.meta["id"] = message.get("id")
            self.meta["model"] = message.get("model")
            self.input_usage = message.get("usage") or {}
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "message_delta":
            delta = event.get("delta") or {}
            u = {**self.input_usage, **{k: v for k, v in (event.get("usage") or {}).items() if v is not None}}
            chunk = self._chunk({}, finish_reason(delta.get("stop_reason"), self.saw_tool_call) or "stop")
            chunk["usage"] = usage(u)
            return [chunk]
        return []  # ping, content_block_stop, message_stop

    def _block_start(self, index: int, block: Json) -> list[Json]:
        kind = block.get("type")
        if kind == "tool_use":
            if self.format_tool is not None and block.get("name") == self.format_tool:
                self.format_blocks.add(index)
                return []
            position = len(self.tool_index)
            self.tool_index[index] = position
            self.saw_tool_call = True
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "redacted_thinking":
            return [self._chunk({"content": [reasoning_block(block)]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _block_delta(self, index: int, delta: Json) -> list[Json]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text") or ""})]
        if kind == "input_json_delta":
            fragment = delta.get("partial_json") or ""
            if index in self.format_blocks:
                return [self._chunk({"content": fragment})] if fragment else []
            position = self.tool_index.get(index)
            if position is None or not fragment:
                return []
            return [self._chunk({"tool_calls": [{"index": position, "function": {"arguments": fragment}}]})]
        if kind == "thinking_delta":
            item = {"type": "summary_text", "text": delta.get("thinking") or ""}
            return [self._chunk({"content": [{"type": "reasoning", "summary": [item]}]})]
        if kind == "signature_delta":
            item = {"type": "summary_text", "text": "", "signature": delta.get("signature")}
            return [self._chunk({"content": [{"type": "reasoning", "summary": [item]}]})]
        return []

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return chat_chunk(self.meta, delta, finish, self.choice)
