"""A fake upstream that refuses every request and echoes the credentials it received, as some custom
OpenAI-compatible servers and proxies do ("Incorrect API key provided: sk-...").

It answers any POST, on any path, so one fake stands in for OpenAI (`Authorization: Bearer`), Azure OpenAI
(`api-key`, under /openai/deployments/...), Anthropic (`x-api-key`, /v1/messages) and custom providers (a
header of their choosing):

* by default: 401 with an OpenAI/Anthropic-shaped error body whose message quotes every request header
  (name and value) and the request body as sent (a token endpoint's form, say), and whose
  `received_headers` holds the headers as an object (keys and values nested in JSON);
* a streaming request whose body mentions ``midstream``: 200 with one content event in the route's format
  (OpenAI chat chunk, completion chunk, or Anthropic message_start), then an ``error`` event echoing the
  headers the same way, as an upstream failing after the stream began.

Every request is recorded (method, path, lower-cased headers, JSON body) in ``.requests``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.threaded import AppFake, ThreadedFake

MIDSTREAM = "midstream"


def echo_error(headers: dict[str, str], body: str) -> dict[str, Any]:
    quoted = "; ".join(f"{k}: {v}" for k, v in headers.items())
    return {
        "type": "authentication_error",
        "message": f"Incorrect credentials; this request had {quoted}; and the body {body}",
        "code": "invalid_api_key",
        "received_headers": headers,
    }


def _sse(event: dict[str, Any], name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + orjson.dumps(event) + b"\n\n"


class EchoUpstream(AppFake):
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/{tail:.*}", self._refuse)

    async def _refuse(self, request: web.Request) -> web.StreamResponse:
        text = (await request.read()).decode("utf-8", "replace")
        try:
            body: Any = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:  # a form (OAuth token endpoints)
            body = text
        headers = self.record(request, body)
        error = echo_error(headers, text)
        if not (isinstance(body, dict) and body.get("stream") and MIDSTREAM in text):
            return web.json_response({"type": "error", "error": error}, status=401)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if request.path.endswith("/messages"):  # Anthropic
            start = {"type": "message_start", "message": {"id": "msg_1", "model": body.get("model"), "usage": {}}}
            await resp.write(_sse(start, "message_start"))
            await resp.write(_sse({"type": "error", "error": {**error, "type": "overloaded_error"}}, "error"))
        else:
            if request.path.endswith("/chat/completions"):
                choice: dict[str, Any] = {"index": 0, "delta": {"role": "assistant", "content": "Hi"}}
                kind = "chat.completion.chunk"
            else:
                choice, kind = {"index": 0, "text": "Hi"}, "text_completion"
            chunk = {"id": "c-1", "object": kind, "created": 1, "model": "m", "choices": [choice]}
            await resp.write(_sse(chunk))
            await resp.write(_sse({"error": error}))
        await resp.write_eof()
        return resp


class EchoUpstreamThread(ThreadedFake):
    """`EchoUpstream` on its own loop in a daemon thread; `.url` is its root (any path is answered)."""

    def __init__(self) -> None:
        super().__init__(EchoUpstream(), "echo-upstream")
