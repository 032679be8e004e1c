"""POST /serving-endpoints/responses: the OpenAI Responses API over chat endpoints.

The request is translated to a chat request (`instructions` → system message, input items → messages,
function tools → chat tools, `max_output_tokens` → `max_tokens`), served like any chat query, and the
answer translated back into a Response object. Streams are the Responses event sequence
(`response.created` … `response.completed`) as `data:` lines only (clients.md §0.7), without `[DONE]`,
which the Responses protocol does not have. Stateful features (`previous_response_id`, stored responses,
built-in tools) are refused with a 400.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.errors import BadRequest, ModelgateError
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import OpenModel, WireModel, validate_request
from modelgate.routes.common import JSONResponse, SSEResponse, principal, read_json_object, services
from modelgate.serving.streams import sse

Json = dict[str, Any]


class ResponseTool(OpenModel):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(OpenModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(OpenModel):
    format: TextFormat | None = None


class Reasoning(OpenModel):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: str | None = None


class ResponsesRequest(WireModel):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool | None = None
    tools: list[ResponseTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    # Accepted for client compatibility; nothing is stored, so `store` has no effect.
    store: bool | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    previous_response_id: str | None = None
    # Databricks gateway fields, as on every query route.
    client_request_id: str | None = Field(default=None, max_length=256)
    usage_context: dict[str, str] | None = None


# -- request translation (pure) ---------------------------------------------------------------------
def _content_to_chat(content: Any) -> str | list[Json]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest("Bad request: message 'content' must be a string or a list of content parts.")
    parts: list[Json] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise BadRequest(f"Bad request: content part of type {kind!r} is not supported.")
    return parts


def _input_messages(items: str | list[Json]) -> list[Json]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[Json] = []
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise BadRequest(f"Bad request: input[{i}].role must be user, assistant, system or developer.")
            messages.append({"role": role, "content": _content_to_chat(item.get("content"))})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            prev = messages[-1] if messages else None
            if prev is not None and prev["role"] == "assistant" and prev.get("tool_calls") and not prev.get("content"):
                prev["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _content_text(output)
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # reasoning items sent back from an earlier turn carry nothing a chat model needs
        else:
            raise BadRequest(f"Bad request: input item of type {kind!r} is not supported.")
    return messages


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _tool_choice(choice: str | Json | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest(f"Bad request: tool_choice {choice!r} is not supported; use a function tool.")


def _response_format(text: TextConfig | None) -> Json | None:
    fmt = text.format if text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    schema = {"name": fmt.name or "response", "schema": fmt.schema_ or {}, "strict": fmt.strict}
    return {"type": "json_schema", "json_schema": {k: v for k, v in schema.items() if v is not None}}


def to_chat_request(req: ResponsesRequest) -> ChatRequest:
    if req.previous_response_id:
        raise BadRequest("Bad request: 'previous_response_id' is not supported; send the whole conversation.")
    messages = _input_messages(req.input)
    if req.instructions:
        messages.insert(0, {"role": "system", "content": req.instructions})
    tools: list[Json] = []
    for tool in req.tools or []:
        if tool.type != "function" or not tool.name:
            raise BadRequest(f"Bad request: tool type {tool.type!r} is not supported; only function tools are.")
        fn = {"name": tool.name, "description": tool.description, "parameters": tool.parameters or {}}
        tools.append({"type": "function", "function": {k: v for k, v in fn.items() if v is not None}})
    body: Json = {
        "messages": messages,
        "max_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "stream": req.stream,
        "tools": tools or None,
        "tool_choice": _tool_choice(req.tool_choice) if tools else None,
        "parallel_tool_calls": req.parallel_tool_calls if tools else None,
        "response_format": _response_format(req.text),
        "reasoning_effort": req.reasoning.effort if req.reasoning else None,
        "user": req.user,
        "client_request_id": req.client_request_id,
        "usage_context": req.usage_context,
        "model": req.model,
    }
    if req.stream:
        body["stream_options"] = {"include_usage": True}
    return validate_request(ChatRequest, {k: v for k, v in body.items() if v is not None})


# -- response translation (pure) --------------------------------------------------------------------
def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _usage(usage: Json | None) -> Json:
    u = usage or {}
    inp, out = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": int(u.get("total_tokens") or inp + out),
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> Json:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": [part]}


def _call_item(item_id: str, call: Json, status: str = "completed") -> Json:
    fn = call.get("function") or {}
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.get("id") or item_id,
        "name": fn.get("name", ""),
        "arguments": fn.get("arguments", ""),
        "status": status,
    }


def _envelope(req: ResponsesRequest, resp_id: str, created: int, status: str) -> Json:
    fmt = req.text.format.model_dump(by_alias=True, exclude_none=True) if req.text and req.text.format else None
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "model": req.model,
        "output": [],
        "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
        "temperature": req.temperature,
        "tool_choice": req.tool_choice or "auto",
        "tools": [t.model_dump(exclude_none=True) for t in req.tools or []],
        "top_p": req.top_p,
        "text": {"format": fmt or {"type": "text"}},
        "metadata": req.metadata or {},
        "usage": None,
    }


def _finish(envelope: Json, finish_reason: str | None) -> None:
    if finish_reason == "length":
        envelope["status"] = "incomplete"
        envelope["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        envelope["status"] = "completed"


def to_response(req: ResponsesRequest, chat: Json) -> Json:
    choices = chat.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    out = _envelope(req, _new_id("resp_"), int(chat.get("created") or time.time()), "completed")
    content = message.get("content")
    text = content if isinstance(content, str) else _content_text(content)
    if text or not message.get("tool_calls"):
        out["output"].append(_message_item(_new_id("msg_"), text))
    for call in message.get("tool_calls") or []:
        out["output"].append(_call_item(_new_id("fc_"), call))
    out["usage"] = _usage(chat.get("usage"))
    _finish(out, choice.get("finish_reason"))
    return out


class _StreamTranslator:
    """Turns chat chunks into Responses stream events, one output item at a time."""

    def __init__(self, req: ResponsesRequest) -> None:
        self.envelope = _envelope(req, _new_id("resp_"), int(time.time()), "in_progress")
        self.seq = 0
        self.text: list[str] = []
        self.msg_id: str | None = None
        self.calls: dict[int, Json] = {}  # chat tool-call index -> {item, output_index}
        self.outputs: list[Json] = []
        self.finish_reason: str | None = None
        self.usage: Json | None = None

    def event(self, kind: str, **fields: Any) -> Json:
        ev = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def start(self) -> list[Json]:
        snapshot = {**self.envelope, "output": []}
        return [
            self.event("response.created", response=snapshot),
            self.event("response.in_progress", response=snapshot),
        ]

    def chunk(self, chunk: Json) -> list[Json]:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        events: list[Json] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                events += self._text(piece)
            for tc in delta.get("tool_calls") or []:
                events += self._tool_delta(tc)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _text(self, piece: str) -> list[Json]:
        events: list[Json] = []
        if self.msg_id is None:
            self.msg_id = _new_id("msg_")
            item = {**_message_item(self.msg_id, "", "in_progress"), "content": []}
            self.outputs.append(item)
            idx = len(self.outputs) - 1
            events.append(self.event("response.output_item.added", output_index=idx, item=item))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(
                self.event(
                    "response.content_part.added", item_id=self.msg_id, output_index=idx, content_index=0, part=part
                )
            )
        self.text.append(piece)
        idx = self._index_of(self.msg_id)
        events.append(
            self.event(
                "response.output_text.delta",
                item_id=self.msg_id,
                output_index=idx,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        )
        return events

    def _tool_delta(self, tc: Json) -> list[Json]:
        index = int(tc.get("index", 0))
        fn = tc.get("function") or {}
        entry = self.calls.get(index)
        events: list[Json] = []
        if entry is None:
            item = _call_item(
                _new_id("fc_"), {"id": tc.get("id"), "function": {"name": fn.get("name", "")}}, "in_progress"
            )
            item["arguments"] = ""
            self.outputs.append(item)
            entry = self.calls[index] = {"item": item, "output_index": len(self.outputs) - 1}
            events.append(self.event("response.output_item.added", output_index=entry["output_index"], item=dict(item)))
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            entry["item"]["arguments"] += args
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=entry["item"]["id"],
                    output_index=entry["output_index"],
                    delta=args,
                )
            )
        return events

    def _index_of(self, item_id: str | None) -> int:
        return next(i for i, item in enumerate(self.outputs) if item["id"] == item_id)

    def finish(self) -> list[Json]:
        events: list[Json] = []
        for idx, item in enumerate(self.outputs):
            if item["type"] == "message":
                text = "".join(self.text)
                done = _message_item(item["id"], text)
                part = done["content"][0]
                events.append(
                    self.event(
                        "response.output_text.done",
                        item_id=item["id"],
                        output_index=idx,
                        content_index=0,
                        text=text,
                        logprobs=[],
                    )
                )
                events.append(
                    self.event(
                        "response.content_part.done", item_id=item["id"], output_index=idx, content_index=0, part=part
                    )
                )
            else:
                done = {**item, "status": "completed"}
                events.append(
                    self.event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=idx,
                        name=item["name"],
                        arguments=item["arguments"],
                    )
                )
            self.outputs[idx] = done
            events.append(self.event("response.output_item.done", output_index=idx, item=done))
        final = {**self.envelope, "output": self.outputs, "usage": _usage(self.usage)}
        _finish(final, self.finish_reason)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        events.append(self.event(kind, response=final))
        return events

    def error(self, exc: ModelgateError) -> Json:
        """A mid-stream failure. `error` makes the OpenAI client raise; the rest is the Responses error event."""
        return {
            **self.event("error", code=exc.error_code, message=exc.message, param=None),
            "error": {"message": exc.message, "code": exc.error_code, "type": "server_error"},
        }


async def _events(translator: _StreamTranslator, chunks: AsyncIterator[Json]) -> AsyncIterator[bytes]:
    for ev in translator.start():
        yield sse(ev)
    try:
        async for chunk in chunks:
            for ev in translator.chunk(chunk):
                yield sse(ev)
        for ev in translator.finish():
            yield sse(ev)
    except ModelgateError as exc:
        yield sse(translator.error(exc))


async def create_response(request: Request) -> Response:
    body = await read_json_object(request)
    req = validate_request(ResponsesRequest, body)
    chat = to_chat_request(req)
    who = await principal(request)
    svc = services(request).invocations
    if req.stream:
        result = await svc.stream(who, req.model, chat)
        return SSEResponse(
            _events(_StreamTranslator(req), result.chunks), headers={"served-model-name": result.served_entity}
        )
    done = await svc.call(who, req.model, chat)
    return JSONResponse(to_response(req, done.body), headers={"served-model-name": done.served_entity})


routes = [Route("/serving-endpoints/responses", create_response, methods=["POST"])]
