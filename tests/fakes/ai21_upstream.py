"""A local fake of AI21 Studio's Jamba chat API (POST /studio/v1/chat/completions), in place of api.ai21.com.

Built from the published reference (docs.ai21.com/reference/jamba-1-6-api-ref): it requires
``Authorization: Bearer <key>`` (401 ``{"detail": "Forbidden: Bad or missing API token."}`` otherwise),
``model`` and non-empty ``messages``, and rejects (422) a body the ``ai21`` SDK's own types refuse
(:mod:`tests.fakes.ai21_types`: an unknown key anywhere, content parts where Jamba takes a string, a
``response_format`` other than text / json_object). Answers, checked against the SDK's response models, are
OpenAI-shaped: ``"echo: <last user text>"`` with word-count usage, or, streaming, ``data:`` chunks (one per
word, then a final chunk with finish_reason and usage) and ``data: [DONE]``. ``fail_next(status, count,
retry_after)`` fails the next requests. Every request is recorded in ``.requests``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.ai21_types import answer_problems, chunk_problems, request_problems
from tests.fakes.openai_payloads import word_pieces
from tests.fakes.threaded import AppFake, ThreadedFake, retry_headers

JSON = dict[str, Any]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


class FakeAI21Upstream(AppFake):
    path_prefix = "/studio/v1"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/studio/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        headers = self.record(request, body)
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return web.json_response({"detail": "Forbidden: Bad or missing API token."}, status=401)
        failure = self.take_failure()
        if failure is not None:
            body = {"detail": f"Injected {failure.status} error"}
            return web.json_response(body, status=failure.status, headers=retry_headers(failure.retry_after))
        found = request_problems(body)
        if found:
            detail = [{"loc": p.split(":")[0].split("."), "msg": p.split(": ", 1)[1]} for p in found]
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
            answer = {**base, "choices": [choice], "usage": usage}
            found = answer_problems(answer)
            assert not found, f"the fake's own answer is not AI21's: {found}"
            return web.json_response(answer)
        pieces = [{"role": "assistant", "content": ""}] + [{"content": p} for p in word_pieces(text)]
        chunks = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in pieces]
        last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
        for chunk in [*chunks, last]:
            found = chunk_problems(chunk)
            assert not found, f"the fake's own chunk is not AI21's: {found}"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in chunks:
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await resp.write(b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp


class FakeAI21Thread(ThreadedFake):
    """Runs a :class:`FakeAI21Upstream` on its own event loop in a daemon thread."""

    def __init__(self, api_key: str) -> None:
        super().__init__(FakeAI21Upstream(api_key), "fake-ai21")
        self.server: FakeAI21Upstream
