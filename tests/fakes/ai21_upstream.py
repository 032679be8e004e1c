"""A local fake of AI21 Studio's Jamba chat API (POST /studio/v1/chat/completions), in place of api.ai21.com.

Built from the published reference (docs.ai21.com/reference/jamba-1-6-api-ref): it requires
``Authorization: Bearer <key>`` (401 ``{"detail": "Forbidden: Bad or missing API token."}`` otherwise),
``model`` and non-empty ``messages``, and rejects (422) any field outside the documented set. Answers are
OpenAI-shaped: ``"echo: <last user text>"`` with word-count usage, or, streaming, ``data:`` chunks (one per
word, then a final chunk with finish_reason and usage) and ``data: [DONE]``. ``fail_next(status, count,
retry_after)`` fails the next requests. Every request is recorded in ``.requests``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_payloads import word_pieces
from tests.fakes.openai_upstream import RecordedRequest
from tests.fakes.threaded import ThreadedFake, start_app

JSON = dict[str, Any]
DOCUMENTED = {
    "model",
    "messages",
    "tools",
    "tool_choice",
    "n",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "response_format",
    "documents",
}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


class FakeAI21Upstream:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.failures: list[list[int | None]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/studio/v1/chat/completions", self._chat)
        self._runner, base = await start_app(app)
        self.url = base + "/studio/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, request.path, headers, body))
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return web.json_response({"detail": "Forbidden: Bad or missing API token."}, status=401)
        if self.failures:
            status, count, retry_after = self.failures[0]
            assert status is not None and count is not None
            self.failures[0][1] = count - 1
            if count - 1 <= 0:
                self.failures.pop(0)
            extra = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return web.json_response({"detail": f"Injected {status} error"}, status=status, headers=extra)
        unknown = sorted(set(body) - DOCUMENTED)
        if unknown:
            detail = [{"loc": ["body", k], "msg": "extra fields not permitted"} for k in unknown]
            return web.json_response({"detail": detail}, status=422)
        if not body.get("model") or not body.get("messages"):
            return web.json_response({"detail": "model and messages are required"}, status=422)
        text = f"echo: {_text(body['messages'][-1].get('content'))}"
        prompt = sum(len(_text(m.get("content")).split()) for m in body["messages"])
        usage = {"prompt_tokens": prompt, "completion_tokens": len(text.split()), "total_tokens": 0}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {"id": "chat-1", "model": body["model"]}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return web.json_response({**base, "choices": [choice], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        pieces = [{"role": "assistant", "content": ""}] + [{"content": p} for p in word_pieces(text)]
        for delta in pieces:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
        await resp.write(b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp


class FakeAI21Thread(ThreadedFake):
    """Runs a :class:`FakeAI21Upstream` on its own event loop in a daemon thread."""

    def __init__(self, api_key: str) -> None:
        super().__init__(FakeAI21Upstream(api_key), "fake-ai21")
        self.server: FakeAI21Upstream

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        self.on_loop(self.server.failures.append, [status, count, retry_after])
