"""A local fake of Anthropic's Messages API (POST /v1/messages), used in place of api.anthropic.com.

Built from the published request/response/stream examples (docs.anthropic.com/en/api/messages,
/en/docs/build-with-claude/streaming, /extended-thinking, /tool-use, /vision, /en/api/errors). It checks
what a client sends the way the real API does and answers deterministically:

* headers: ``x-api-key`` must equal the configured key (401 authentication_error otherwise) and
  ``anthropic-version`` must be ``2023-06-01`` (400 otherwise);
* strict requests: each body is checked against the ``anthropic`` SDK's own request types
  (:mod:`tests.fakes.anthropic_types`): an unknown key anywhere is Anthropic's 400 ``invalid_request_error``;
  answers and streamed events are checked against the SDK's ``Message`` and stream event models;
* body shape: ``model``, ``max_tokens`` and non-empty ``messages`` required; roles only user/assistant
  (a ``system`` role → 400, system goes top-level); known block types only; a ``tool_result`` must answer a
  ``tool_use`` id of the previous assistant turn and come first in its user turn; images need a valid
  base64 source of an allowed media type; ``thinking.budget_tokens`` ≥ 1024 and < ``max_tokens``;
  ``temperature`` ≤ 1; thinking blocks sent back must carry the signature this fake gave them (so a
  round trip that changes a byte fails) and redacted blocks the data it gave;
* answers: text ``"echo: <last user text>"``; with tools (and tool_choice not none) on a fresh user turn, a
  ``tool_use`` of the named/first tool with a sample input from its schema; after tool results, text
  ``"tool said: <result text>"``; with thinking on, a ``thinking`` block first (signature = ``sig-`` + a hash
  of its text) and, if the user text contains ``redact``, a ``redacted_thinking`` block; ``stop_sequences``
  and ``max_tokens`` (in words) cut the text; usage counts words (input: all texts, output: produced text);
* streaming: ``event:``/``data:`` SSE with message_start, a ping, content blocks (text_delta per word,
  input_json_delta in 7-character fragments, thinking_delta + signature_delta), message_delta with
  stop_reason and output usage, message_stop;
* failures: model ``fail-<status>`` answers that status with Anthropic's error body (429 with
  ``retry-after: 3``, 529 overloaded_error, 401, ...); user text containing ``overflow`` gets the 400
  "prompt is too long" error; model ``stream-overload`` fails mid-stream with an ``error`` event;
  ``fail_next(status, count, retry_after)`` fails the next requests.

Every request is recorded (method, path, lower-cased headers, JSON body) in ``.requests``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import itertools
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.anthropic_types import event_problems, request_problems, response_problems
from tests.fakes.openai_payloads import sample_instance, word_pieces
from tests.fakes.threaded import AppFake, ThreadedFake, retry_headers

JSON = dict[str, Any]
VERSION = "2023-06-01"
MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
REDACTED_DATA = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
CONTEXT_LIMIT = 200000


class InvalidRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def signature_for(thinking: str) -> str:
    return "sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def error_response(status: int, message: str, retry_after: int | None = None) -> web.Response:
    """Anthropic's error shape (docs.anthropic.com/en/api/errors)."""
    body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
    headers = retry_headers(retry_after)
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


class FakeAnthropicUpstream(AppFake):
    client_max_size = 64 * 1024 * 1024  # vision tests send large images

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(1)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/messages", self._messages)

    def reset(self) -> None:
        self.requests.clear()
        self.failures.clear()

    # ------------------------------------------------------------------------------------ handler
    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        headers = self.record(request, body)
        if headers.get("x-api-key") != self.api_key:
            return error_response(401, "invalid x-api-key")
        if headers.get("anthropic-version") != VERSION:
            return error_response(400, "anthropic-version: header is required and must be a supported version")
        failure = self.take_failure()
        if failure is not None:
            return error_response(failure.status, f"Injected {failure.status} error", failure.retry_after)
        if not isinstance(body, dict):
            return error_response(400, "There was an issue with the format of your request: invalid JSON")
        model = body.get("model")
        if isinstance(model, str) and model.startswith("fail-") and model[5:].isdigit():
            status = int(model[5:])
            messages = {429: "Number of request tokens has exceeded your per-minute rate limit", 529: "Overloaded"}
            retry = 3 if status == 429 else None
            return error_response(status, messages.get(status, f"Injected {status} error"), retry)
        found = request_problems(body)
        if found:
            return error_response(400, "; ".join(found).replace(": unknown field", ": Extra inputs are not permitted"))
        try:
            blocks, stop_reason, stop_sequence, input_tokens = self._answer(body)
        except InvalidRequest as exc:
            return error_response(400, exc.message)
        output_tokens = sum(len(str(b.get("text") or b.get("thinking") or "").split()) for b in blocks) or 1
        message = {
            "id": f"msg_{next(self._ids):024d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        if body.get("stream"):
            return await self._stream(request, message)
        found = response_problems(message)
        assert not found, f"the fake's own answer is not Anthropic's: {found}"
        return web.Response(body=orjson.dumps(message), content_type="application/json")

    # ----------------------------------------------------------------------------------- checking
    def _answer(self, body: JSON) -> tuple[list[JSON], str, str | None, int]:
        for key in ("model", "max_tokens", "messages"):
            if key not in body:
                raise InvalidRequest(f"{key}: Field required")
        max_tokens = body["max_tokens"]
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be a valid integer greater than 0")
        temperature = body.get("temperature")
        if temperature is not None and not 0 <= temperature <= 1:
            raise InvalidRequest("temperature: range: 0 <= temperature <= 1")
        thinking = body.get("thinking")
        thinking_on = isinstance(thinking, dict) and thinking.get("type") == "enabled"
        if thinking_on:
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise InvalidRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if budget >= max_tokens:
                raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("messages: at least one message is required")
        words = len(block_text(body.get("system")).split())
        previous_tool_ids: set[str] = set()
        for i, msg in enumerate(messages):
            role = msg.get("role")
            if role not in ("user", "assistant"):
                raise InvalidRequest(f'messages.{i}.role: Input should be "user" or "assistant"')
            content = msg.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list) or not blocks:
                raise InvalidRequest(f"messages.{i}: content must be non-empty")
            tool_ids: set[str] = set()
            seen_other = False
            for j, block in enumerate(blocks):
                words += self._check_block(block, role, f"messages.{i}.content.{j}", previous_tool_ids)
                if block["type"] == "tool_result":
                    if seen_other:
                        raise InvalidRequest(f"messages.{i}: tool_result blocks must come first in a user turn")
                else:
                    seen_other = True
                if block["type"] == "tool_use":
                    tool_ids.add(block["id"])
            previous_tool_ids = tool_ids
        if messages[-1]["role"] != "user":
            raise InvalidRequest("the last message must have role user")
        tools = body.get("tools") or []
        for k, tool in enumerate(tools):
            if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
                raise InvalidRequest(f"tools.{k}: name and input_schema are required")
        choice = body.get("tool_choice") or {"type": "auto"}
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if thinking_on and choice["type"] in ("any", "tool"):
            raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")

        last = messages[-1]["content"]
        last_blocks = [{"type": "text", "text": last}] if isinstance(last, str) else last
        user_text = block_text(last_blocks)
        if "overflow" in user_text:
            raise InvalidRequest(f"prompt is too long: {CONTEXT_LIMIT + 1234} tokens > {CONTEXT_LIMIT} maximum")
        results = [b for b in last_blocks if b["type"] == "tool_result"]
        out: list[JSON] = []
        if thinking_on:
            thought = f"The user wrote {len(user_text.split())} words; answer plainly."
            out.append({"type": "thinking", "thinking": thought, "signature": signature_for(thought)})
            if "redact" in user_text:
                out.append({"type": "redacted_thinking", "data": REDACTED_DATA})
        if tools and choice["type"] != "none" and not results:
            named = choice.get("name") if choice["type"] == "tool" else None
            tool = next((t for t in tools if t["name"] == named), tools[0])
            call_id = f"toolu_{next(self._ids):024d}"
            out.append(
                {
                    "type": "tool_use",
                    "id": call_id,
                    "name": tool["name"],
                    "input": sample_instance(tool["input_schema"]),
                }
            )
            return out, "tool_use", None, words
        if results:
            text = "tool said: " + " ".join(
                r["content"] if isinstance(r["content"], str) else block_text(r["content"]) for r in results
            )
        else:
            text = "echo: " + user_text
        stop_reason, stop_sequence = "end_turn", None
        stops = [s for s in body.get("stop_sequences") or [] if s in text]
        if stops:
            first = min(stops, key=text.find)
            text, stop_reason, stop_sequence = text[: text.find(first)], "stop_sequence", first
        pieces = text.split()
        if len(pieces) > max_tokens:
            text, stop_reason, stop_sequence = " ".join(pieces[:max_tokens]), "max_tokens", None
        out.append({"type": "text", "text": text})
        return out, stop_reason, stop_sequence, words

    def _check_block(self, block: Any, role: str, where: str, tool_ids: set[str]) -> int:
        """Validate one content block; return its word count."""
        if not isinstance(block, dict):
            raise InvalidRequest(f"{where}: Input should be an object")
        kind = block.get("type")
        if kind == "text":
            if not isinstance(block.get("text"), str) or not block["text"].strip():
                raise InvalidRequest(f"{where}: text content blocks must contain non-whitespace text")
            return len(block["text"].split())
        if kind == "image" and role == "user":
            source = block.get("source") or {}
            if source.get("type") == "url":
                return 1
            if source.get("type") != "base64" or source.get("media_type") not in MEDIA_TYPES:
                raise InvalidRequest(f"{where}.source: base64 source with a supported media_type required")
            try:
                data = base64.b64decode(source.get("data") or "", validate=True)
            except binascii.Error:
                raise InvalidRequest(f"{where}.source.data: invalid base64 data") from None
            from PIL import Image

            with Image.open(io.BytesIO(data)) as img:
                actual = Image.MIME.get(img.format or "")
                if actual != source["media_type"]:
                    raise InvalidRequest(f"{where}: image was specified as {source['media_type']} but is {actual}")
                if max(img.size) > 8000:
                    raise InvalidRequest(f"{where}: image dimensions exceed max allowed size: 8000 pixels")
            return 1
        if kind == "tool_result" and role == "user":
            if block.get("tool_use_id") not in tool_ids:
                raise InvalidRequest(
                    f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {block.get('tool_use_id')}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )
            return len(block_text(block.get("content")).split())
        if kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("input"), dict) or not block.get("id") or not block.get("name"):
                raise InvalidRequest(f"{where}: tool_use needs id, name and an object input")
            return 0
        if kind == "thinking" and role == "assistant":
            if block.get("signature") != signature_for(block.get("thinking") or ""):
                raise InvalidRequest(f"{where}: Invalid `signature` in `thinking` block")
            return 0
        if kind == "redacted_thinking" and role == "assistant":
            if block.get("data") != REDACTED_DATA:
                raise InvalidRequest(f"{where}: Invalid `data` in `redacted_thinking` block")
            return 0
        raise InvalidRequest(f"{where}: unexpected block type {kind!r} in a {role} message")

    # ---------------------------------------------------------------------------------- streaming
    async def _stream(self, request: web.Request, message: JSON) -> web.StreamResponse:
        events: list[JSON] = []
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}
        events.append({"type": "message_start", "message": start})
        events.append({"type": "ping"})
        for index, block in enumerate(message["content"]):
            events.extend(_block_events(index, block))
            if message["model"] == "stream-overload" and index == 0:
                events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                break
        else:
            delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
            events.append(
                {"type": "message_delta", "delta": delta, "usage": {"output_tokens": message["usage"]["output_tokens"]}}
            )
            events.append({"type": "message_stop"})
        for event in events:
            found = event_problems(event)
            assert not found, f"the fake's own event is not Anthropic's: {found}"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        payload = b"".join(f"event: {e['type']}\n".encode() + b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
        await resp.write(payload)
        await resp.write_eof()
        return resp


def _block_events(index: int, block: JSON) -> list[JSON]:
    kind = block["type"]
    events: list[JSON] = []
    if kind == "text":
        events.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
        for piece in word_pieces(block["text"]) or [""]:
            delta = {"type": "text_delta", "text": piece}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        text = orjson.dumps(block["input"]).decode()
        for k in range(0, len(text), 7):
            delta = {"type": "input_json_delta", "partial_json": text[k : k + 7]}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        for piece in word_pieces(block["thinking"]):
            delta = {"type": "thinking_delta", "thinking": piece}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        delta = {"type": "signature_delta", "signature": block["signature"]}
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
    elif kind == "redacted_thinking":
        events.append({"type": "content_block_start", "index": index, "content_block": block})
    events.append({"type": "content_block_stop", "index": index})
    return events


class FakeAnthropicThread(ThreadedFake):
    """Runs a :class:`FakeAnthropicUpstream` on its own event loop in a daemon thread."""

    def __init__(self, api_key: str) -> None:
        super().__init__(FakeAnthropicUpstream(api_key), "fake-anthropic")
        self.server: FakeAnthropicUpstream

    def reset(self) -> None:
        self.on_loop(self.server.reset)
