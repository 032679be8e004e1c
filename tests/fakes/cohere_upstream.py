"""A local fake of Cohere's v2 API (POST /v2/chat, POST /v2/embed), used in place of api.cohere.com.

Built from the published request/response/stream examples (docs.cohere.com/reference/chat,
/reference/chat-stream, /docs/streaming, /reference/embed, /reference/errors). It checks what a client sends:

* ``Authorization: Bearer <key>`` (401 ``{"message": "invalid api token"}`` otherwise);
* body: ``model`` and non-empty ``messages`` required; roles system/user/assistant/tool; a tool message's
  ``tool_call_id`` must name a call of an earlier assistant message; first, every key is checked by name
  against the ``cohere`` SDK's own types (:mod:`tests.fakes.cohere_types`), so an unknown key anywhere (an
  OpenAI-only ``top_p``, a stray ``schema``) is a 400 as Cohere answers it; answers and stream events are
  checked against the SDK's response models;
* answers: ``message.content [{"type": "text", "text": "echo: <last user text>"}]``; with tools (and
  tool_choice not NONE) on a fresh user turn, a tool call of the first tool with a sample input from its
  schema, finish_reason TOOL_CALL; after a tool message, ``"tool said: <content>"``; usage counts words;
* streaming: ``event:``/``data:`` SSE of message-start, content-start, content-delta per word, content-end,
  or tool-plan-delta, tool-call-start, tool-call-delta (7-character argument fragments), tool-call-end, then
  message-end with finish_reason and usage;
* content parts (docs.cohere.com/docs/image-inputs, /docs/reasoning): user turns take ``text`` and ``image_url``
  (``{"url": data URL of an image or https URL, "detail": low|high|auto}``), assistant turns ``text`` and
  ``thinking`` (``{"thinking": str}``), system turns ``text``; anything else is a 400; an answer to a user turn
  with images says ``[saw N image(s): <media types>]``;
* reasoning: ``thinking`` must be ``{"type": "enabled"|"disabled", "token_budget"?: positive int}``; enabled, the
  answer starts with ``{"type": "thinking", "thinking": "thinking about: <last user text>"}`` (streamed as a
  content block of its own: content-start, a content-delta ``{"thinking": word}`` per word, content-end);
* embed: ``texts``, ``input_type`` and ``embedding_types`` required; 4-dimensional float vectors;
* ``fail_next(status, count, retry_after)`` fails the next requests with ``{"message": ...}``.

Every request is recorded in ``.requests``.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.cohere_types import (
    chat_answer_problems,
    chat_problems,
    embed_answer_problems,
    embed_problems,
    stream_event_problems,
)
from tests.fakes.openai_payloads import sample_instance, word_pieces
from tests.fakes.threaded import AppFake, ThreadedFake, retry_headers

JSON = dict[str, Any]
ROLES = {"system", "user", "assistant", "tool"}
PART_TYPES = {"system": {"text"}, "user": {"text", "image_url"}, "assistant": {"text", "thinking"}, "tool": {"text"}}


def _error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=retry_headers(retry_after))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


class FakeCohereUpstream(AppFake):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v2/chat", self._chat)
        router.add_post("/v2/embed", self._embed)

    async def _admit(self, request: web.Request) -> JSON | web.Response:
        body = await request.json()
        headers = self.record(request, body)
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid api token")
        failure = self.take_failure()
        if failure is not None:
            return _error(failure.status, f"Injected {failure.status} error", failure.retry_after)
        if not isinstance(body, dict) or not body.get("model"):
            return _error(400, "invalid request: model must be provided")
        if str(body["model"]).startswith("fail-"):
            status = int(str(body["model"])[5:])
            return _error(status, f"Injected {status} error", 3 if status == 429 else None)
        return body

    # -- chat -------------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._admit(request)
        if isinstance(body, web.Response):
            return body
        problem = self._check_chat(body)
        if problem:
            return _error(400, problem)
        messages = body["messages"]
        last = messages[-1]
        tools = body.get("tools") or []
        tool_call: JSON | None = None
        if last["role"] == "tool":
            text = f"tool said: {_text_of(last.get('content'))}"
        elif tools and body.get("tool_choice") != "NONE":
            fn = tools[0]["function"]
            args = orjson.dumps(sample_instance(fn.get("parameters") or {})).decode()
            tool_call = {
                "id": f"{fn['name']}_1",
                "type": "function",
                "function": {"name": fn["name"], "arguments": args},
            }
            text = ""
        else:
            text = f"echo: {_text_of(last.get('content'))}{_images_seen(last.get('content'))}"
        thought = ""
        if (body.get("thinking") or {}).get("type") == "enabled" and last["role"] == "user":
            thought = f"thinking about: {_text_of(last.get('content'))}"
        words_in = sum(len(_text_of(m.get("content")).split()) for m in messages)
        words_out = len(text.split()) + len(thought.split())
        usage = {
            "billed_units": {"input_tokens": words_in, "output_tokens": words_out},
            "tokens": {"input_tokens": words_in + 10, "output_tokens": words_out + (5 if tool_call else 0)},
        }
        finish = "TOOL_CALL" if tool_call else "COMPLETE"
        if body.get("stream"):
            return await self._stream(request, text, tool_call, finish, usage, thought)
        message: JSON = {"role": "assistant"}
        if tool_call:
            message["tool_plan"] = "I will call the tool."
            message["tool_calls"] = [tool_call]
        else:
            thinking = [{"type": "thinking", "thinking": thought}] if thought else []
            message["content"] = [*thinking, {"type": "text", "text": text}]
        answer = {"id": "c-1", "finish_reason": finish, "message": message, "usage": usage}
        found = chat_answer_problems(answer)
        assert not found, f"the fake's own answer is not Cohere's: {found}"
        return web.json_response(answer)

    def _check_chat(self, body: JSON) -> str | None:
        found = chat_problems(body)
        if found:
            return "invalid request: " + "; ".join(found)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "invalid request: messages must not be empty"
        problem = _thinking_problem(body.get("thinking"))
        if problem:
            return problem
        call_ids: set[str] = set()
        for i, m in enumerate(messages):
            if m.get("role") not in ROLES:
                return f"invalid request: messages[{i}].role must be one of system, user, assistant, tool"
            problem = _content_problem(m["role"], m.get("content"), i)
            if problem:
                return problem
            for c in m.get("tool_calls") or []:
                call_ids.add(c["id"])
            if m["role"] == "tool" and m.get("tool_call_id") not in call_ids:
                return f"invalid request: messages[{i}].tool_call_id does not match a tool call"
        return None

    async def _stream(
        self, request: web.Request, text: str, tool_call: JSON | None, finish: str, usage: JSON, thought: str = ""
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(event: JSON) -> None:
            found = stream_event_problems(event)
            assert not found, f"the fake's own event is not Cohere's: {found}"
            await resp.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")

        start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
        await send({"type": "message-start", "id": "c-1", "delta": {"message": start}})
        if tool_call:
            await send({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will call the tool."}}})
            fn = tool_call["function"]
            head = {"id": tool_call["id"], "type": "function", "function": {"name": fn["name"], "arguments": ""}}
            await send({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": head}}})
            args = fn["arguments"]
            for i in range(0, len(args), 7):
                piece = {"tool_calls": {"function": {"arguments": args[i : i + 7]}}}
                await send({"type": "tool-call-delta", "index": 0, "delta": {"message": piece}})
            await send({"type": "tool-call-end", "index": 0})
        else:
            index = 0
            if thought:
                start_thinking = {"content": {"type": "thinking", "thinking": ""}}
                await send({"type": "content-start", "index": 0, "delta": {"message": start_thinking}})
                for piece in word_pieces(thought):
                    delta = {"message": {"content": {"thinking": piece}}}
                    await send({"type": "content-delta", "index": 0, "delta": delta})
                await send({"type": "content-end", "index": 0})
                index = 1
            empty = {"content": {"type": "text", "text": ""}}
            await send({"type": "content-start", "index": index, "delta": {"message": empty}})
            for piece in word_pieces(text):
                delta = {"message": {"content": {"text": piece}}}
                await send({"type": "content-delta", "index": index, "delta": delta})
            await send({"type": "content-end", "index": index})
        await send({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage}})
        await resp.write_eof()
        return resp

    # -- embed ------------------------------------------------------------------------------------
    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body = await self._admit(request)
        if isinstance(body, web.Response):
            return body
        found = embed_problems(body)
        if found:
            return _error(400, "invalid request: " + "; ".join(found))
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts:
            return _error(400, "invalid request: texts must be a non-empty list")
        if not body.get("input_type") or not body.get("embedding_types"):
            return _error(400, "invalid request: input_type and embedding_types are required for v3+ models")
        vectors = [[round(len(t) / 100, 4), 0.5, -0.25, float(i)] for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        answer = {
            "id": "e-1",
            "embeddings": {"float": vectors},
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            "response_type": "embeddings_by_type",
        }
        found = embed_answer_problems(answer)
        assert not found, f"the fake's own answer is not Cohere's: {found}"
        return web.json_response(answer)


def _thinking_problem(thinking: Any) -> str | None:
    if thinking is None:
        return None
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        return "invalid request: thinking.type must be one of enabled, disabled"
    if set(thinking) - {"type", "token_budget"}:
        return f"invalid request: unknown field in thinking: {sorted(set(thinking) - {'type', 'token_budget'})[0]}"
    budget = thinking.get("token_budget")
    if budget is not None and (not isinstance(budget, int) or budget < 1):
        return "invalid request: thinking.token_budget must be a positive integer"
    return None


def _content_problem(role: str, content: Any, index: int) -> str | None:
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"invalid request: messages[{index}].content must be a string or a list of content blocks"
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"messages[{index}].content[{j}]"
        if kind not in PART_TYPES[role]:
            return f"invalid request: {where}.type must be one of {', '.join(sorted(PART_TYPES[role]))}"
        if kind == "thinking" and not isinstance(part.get("thinking"), str):
            return f"invalid request: {where}.thinking must be a string"
        if kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not (_is_image_data_url(url) or url.startswith("https://")):
                return f"invalid request: {where}.image_url.url must be a base64 image data URL or an https URL"
            if image.get("detail") not in (None, "low", "high", "auto"):
                return f"invalid request: {where}.image_url.detail must be one of low, high, auto"
    return None


def _is_image_data_url(url: str) -> bool:
    head, sep, data = url.partition(",")
    if not (sep and head.startswith("data:image/") and head.endswith(";base64")):
        return False
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        return False
    return True


def _images_seen(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    urls = [p["image_url"]["url"] for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    if not urls:
        return ""
    kinds = [u[5:].split(";")[0] if u.startswith("data:") else "url" for u in urls]
    return f" [saw {len(urls)} image(s): {', '.join(kinds)}]"


class FakeCohereThread(ThreadedFake):
    """Runs a :class:`FakeCohereUpstream` on its own event loop in a daemon thread."""

    def __init__(self, api_key: str) -> None:
        super().__init__(FakeCohereUpstream(api_key), "fake-cohere")
        self.server: FakeCohereUpstream
