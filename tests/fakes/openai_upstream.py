"""A local fake of the OpenAI HTTP API, used in place of api.openai.com.

modelgate proxies external-model endpoints to OpenAI-compatible providers. Tests
and throughput benchmarks cannot reach the internet, so this aiohttp server
stands in for the provider. It speaks OpenAI's wire format (chat completions
incl. SSE streaming, tool calls and ``response_format``; legacy completions;
embeddings with float/base64 encoding; model listing) with deterministic
content (see :mod:`tests.fakes.openai_payloads`), and adds test hooks:

* auth: ``api_key`` -> ``Authorization: Bearer <key>`` required; or
  ``api_key_header=(name, value)`` for custom providers; 401 otherwise;
* failure injection: model ``fail-<status>`` (e.g. ``fail-429``) answers that
  status with an OpenAI error body (+ ``Retry-After: 1`` for 429/503), model
  ``slow-<ms>`` waits before answering, and ``POST /__control/fail_next``
  ``{"status": 503, "count": 2, "retry_after": 1}`` fails the next requests;
* streaming: ``stream_delay_ms`` / ``--stream-delay-ms`` paces SSE events (one
  write each, so a client can disconnect mid-stream, which is then recorded);
  at 0 (default) the whole event stream goes out in a single write;
* strict requests: each chat, completions and embeddings body is checked against the ``openai`` SDK's own
  request types (``CompletionCreateParams*``, ``EmbeddingCreateParams``) with unknown keys rejected, all the
  way into ``messages`` (:mod:`tests.fakes.strict_types`); a body they reject gets OpenAI's 400
  ``invalid_request_error``. ``strict=False`` (``--lenient``) stands in for servers that take extensions
  (vLLM's ``top_k``); benchmarks (``record=False``) skip the check;
* recording: every API request (method, path, lower-cased headers, JSON body,
  whether the client disconnected mid-stream) goes to ``.requests``, also served
  at ``GET /__control/requests``; ``POST /__control/reset`` clears it;
  ``record=False`` / ``--no-record`` disables it for benchmarks.

Run standalone (prints ``READY http://host:port`` once listening)::

    python -m tests.fakes.openai_upstream --port 0 [--api-key K] [--delay-ms 0]
        [--stream-delay-ms 0] [--base-path /v1] [--api-key-header NAME=VALUE] [--no-record] [--lenient]

or in-process via :class:`FakeOpenAIUpstream` (async) or :class:`FakeUpstreamThread`
/ :func:`run_in_thread` (own event loop in a background thread, for sync tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiohttp import web
from openai.types import completion_create_params, embedding_create_params
from openai.types.chat import completion_create_params as chat_create_params

from tests.fakes import openai_payloads as p
from tests.fakes.strict_types import problems

Handler = Callable[[web.Request, "RecordedRequest", p.JSON], Awaitable[web.StreamResponse]]

_DEFAULT = object()
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-3.5-turbo-instruct")


def error_response(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    code: Any = p.DEFAULT_CODE,
    param: str | None = None,
    retry_after: Any = _DEFAULT,
) -> web.Response:
    """An OpenAI-style error; 429/503 get ``Retry-After: 1`` unless overridden."""
    if retry_after is _DEFAULT:
        retry_after = 1 if status in (429, 503) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = p.error_body(status, message, type_=type_, code=code, param=param)
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


@dataclass
class RecordedRequest:
    """One API request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    status: int = 0
    disconnected: bool = False
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _PendingFailure:
    status: int
    count: int
    retry_after: Any
    message: str


class FakeOpenAIUpstream:
    """The fake OpenAI server on the caller's event loop (``await start()``)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_key_header: tuple[str, str] | None = None,
        base_path: str = "/v1",
        delay_ms: float = 0,
        stream_delay_ms: float = 0,
        record: bool = True,
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
        strict: bool = True,
    ) -> None:
        self.api_key = api_key
        self.api_key_header = (api_key_header[0].lower(), api_key_header[1]) if api_key_header else None
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.delay_ms = delay_ms
        self.stream_delay_ms = stream_delay_ms
        self.record = record
        self.strict = strict and record
        self.models = list(models)
        self.requests: list[RecordedRequest] = []
        self._failures: list[_PendingFailure] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0

    # ----------------------------------------------------------------- lifecycle
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        bp = self.base_path
        app.router.add_post(bp + "/chat/completions", self._wrap(self._chat))
        app.router.add_post(bp + "/completions", self._wrap(self._completions))
        app.router.add_post(bp + "/embeddings", self._wrap(self._embeddings))
        app.router.add_get(bp + "/models", self._wrap(self._models))
        app.router.add_get(bp + "/models/{model}", self._wrap(self._model))
        app.router.add_post("/__control/fail_next", self._ctl_fail_next)
        app.router.add_get("/__control/requests", self._ctl_requests)
        app.router.add_post("/__control/reset", self._ctl_reset)
        app.router.add_post("/__control/config", self._ctl_config)
        app.router.add_get("/__control/conn", self._ctl_conn)
        app.router.add_route("*", bp + "/{tail:.*}", self._wrap(self._not_found))
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeOpenAIUpstream:
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=2048)
        await site.start()
        self._runner = runner
        self.host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + self.base_path

    # ------------------------------------------------------------------ controls
    def fail_next(self, status: int, count: int = 1, retry_after: Any = _DEFAULT, message: str | None = None) -> None:
        """Make the next ``count`` API requests fail with ``status``.

        ``retry_after`` sets the ``Retry-After`` header (``None``: no header); by
        default 429 and 503 get ``Retry-After: 1``.
        """
        if count <= 0:
            return
        self._failures.append(_PendingFailure(status, count, retry_after, message or f"Injected {status} error"))

    def reset(self) -> None:
        self.requests.clear()
        self._failures.clear()

    # ------------------------------------------------------------ request flow
    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            body: Any = None
            if request.body_exists:
                raw = await request.read()
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
            if self.record:
                headers = {k.lower(): v for k, v in request.headers.items()}
                rec = RecordedRequest(request.method, request.path, headers, body, query=dict(request.query))
                self.requests.append(rec)
            else:  # benchmarks: skip the header copy, keep a record only for this request's flow
                rec = RecordedRequest(request.method, request.path, {}, None)
            resp = await self._respond(request, rec, body, handler)
            rec.status = resp.status
            return resp

        return wrapped

    async def _respond(
        self, request: web.Request, rec: RecordedRequest, body: Any, handler: Handler
    ) -> web.StreamResponse:
        headers = request.headers
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            return error_response(401, "Incorrect API key provided", retry_after=None)
        if self.api_key_header is not None:
            name, value = self.api_key_header
            if headers.get(name) != value:
                return error_response(401, "Incorrect API key provided", retry_after=None)
        if self._failures:
            failure = self._failures[0]
            failure.count -= 1
            if failure.count <= 0:
                self._failures.pop(0)
            return error_response(failure.status, failure.message, retry_after=failure.retry_after)
        if request.method == "POST" and not isinstance(body, dict):
            return error_response(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly.)",
                code=None,
                retry_after=None,
            )
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        if isinstance(body, dict):
            model = body.get("model")
            if not isinstance(model, str) or not model:
                return error_response(400, "you must provide a model parameter", code=None, param="model")
            if model.startswith("fail-") and model[5:].isdigit() and 400 <= int(model[5:]) <= 599:
                status = int(model[5:])
                return error_response(status, f"Injected {status} error")
            if model.startswith("slow-") and model[5:].isdigit():
                await asyncio.sleep(int(model[5:]) / 1000)
        else:
            body = {}
        try:
            return await handler(request, rec, body)
        except p.PayloadError as exc:
            return error_response(400, exc.message, param=exc.param, code=None, retry_after=None)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):012d}"

    @staticmethod
    def _json(obj: Any) -> web.Response:
        return web.Response(body=orjson.dumps(obj), content_type="application/json")

    # --------------------------------------------------------------- endpoints
    def _check(self, streaming: Any, whole: Any, body: p.JSON) -> None:
        """OpenAI's own request types (the SDK's TypedDicts) accept the body, or this is a 400."""
        if not self.strict:
            return
        found = problems(streaming if body.get("stream") else whole, body)
        if found:
            raise p.PayloadError("Invalid request: " + "; ".join(found), found[0].split(":")[0])

    async def _chat(self, request: web.Request, rec: RecordedRequest, body: p.JSON) -> web.StreamResponse:
        self._check(
            chat_create_params.CompletionCreateParamsStreaming,
            chat_create_params.CompletionCreateParamsNonStreaming,
            body,
        )
        answer = p.ChatAnswer(body)
        n = _count(body, "n")
        rid, created, model = self._new_id("chatcmpl-"), int(time.time()), body["model"]
        if not body.get("stream"):
            return self._json(p.chat_completion(rid, created, model, answer, n))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base: p.JSON = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_modelgate_fake",
        }
        if include_usage:
            base["usage"] = None
        chunks: list[p.JSON] = []
        for i in range(n):
            for delta in p.chat_stream_deltas(answer, f"call_{rid[9:]}_{i}"):
                chunks.append({**base, "choices": [_stream_choice(i, delta, None)]})
            chunks.append({**base, "choices": [_stream_choice(i, {}, answer.finish_reason)]})
        if include_usage:
            u = p.usage(answer.prompt_tokens, answer.completion_tokens * n)
            chunks.append({**base, "choices": [], "usage": u})
        return await self._stream(request, rec, chunks)

    async def _completions(self, request: web.Request, rec: RecordedRequest, body: p.JSON) -> web.StreamResponse:
        self._check(
            completion_create_params.CompletionCreateParamsStreaming,
            completion_create_params.CompletionCreateParamsNonStreaming,
            body,
        )
        _count(body, "n")
        choices, prompt_tokens = p.completion_choices(body)
        rid, created, model = self._new_id("cmpl-"), int(time.time()), body["model"]
        if not body.get("stream"):
            return self._json(p.text_completion(rid, created, model, choices, prompt_tokens))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base: p.JSON = {"id": rid, "object": "text_completion", "created": created, "model": model}
        if include_usage:
            base["usage"] = None
        chunks: list[p.JSON] = []
        for i, (text, finish) in enumerate(choices):
            for piece in p.word_pieces(text):
                choice = {"text": piece, "index": i, "logprobs": None, "finish_reason": None}
                chunks.append({**base, "choices": [choice]})
            last = {"text": "", "index": i, "logprobs": None, "finish_reason": finish}
            chunks.append({**base, "choices": [last]})
        if include_usage:
            completion_tokens = sum(p.count_words(t) for t, _ in choices)
            chunks.append({**base, "choices": [], "usage": p.usage(prompt_tokens, completion_tokens)})
        return await self._stream(request, rec, chunks)

    async def _embeddings(self, request: web.Request, rec: RecordedRequest, body: p.JSON) -> web.StreamResponse:
        self._check(embedding_create_params.EmbeddingCreateParams, embedding_create_params.EmbeddingCreateParams, body)
        return self._json(p.embeddings(body, body["model"]))

    def _model_obj(self, model: str) -> p.JSON:
        return {"id": model, "object": "model", "created": 1700000000, "owned_by": "modelgate-fake"}

    async def _models(self, request: web.Request, rec: RecordedRequest, body: p.JSON) -> web.StreamResponse:
        return self._json({"object": "list", "data": [self._model_obj(m) for m in self.models]})

    async def _model(self, request: web.Request, rec: RecordedRequest, body: p.JSON) -> web.StreamResponse:
        model = request.match_info["model"]
        if model not in self.models:
            return error_response(404, f"The model '{model}' does not exist", param="model")
        return self._json(self._model_obj(model))

    async def _not_found(self, request: web.Request, rec: RecordedRequest, body: p.JSON) -> web.StreamResponse:
        return error_response(404, f"Invalid URL ({request.method} {request.path})", code=None, retry_after=None)

    async def _stream(self, request: web.Request, rec: RecordedRequest, chunks: list[p.JSON]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        try:
            await resp.prepare(request)
            delay = self.stream_delay_ms / 1000
            if not delay:  # benchmark path: one write (one syscall) for the whole event stream
                events = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
                await resp.write(b"".join(events) + b"data: [DONE]\n\n")
            else:  # paced: one write per event, so clients can disconnect mid-stream
                for chunk in chunks:
                    await asyncio.sleep(delay)
                    await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:  # client went away: stop generating
            rec.disconnected = True
        except asyncio.CancelledError:  # handler cancelled (disconnect or shutdown)
            rec.disconnected = True
            raise
        return resp

    # ----------------------------------------------------------------- control
    async def _ctl_fail_next(self, request: web.Request) -> web.Response:
        spec = orjson.loads(await request.read())
        self.fail_next(
            int(spec["status"]),
            int(spec.get("count", 1)),
            spec.get("retry_after", _DEFAULT),
            spec.get("message"),
        )
        return self._json({"ok": True})

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        return self._json([asdict(r) for r in self.requests])

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return self._json({"ok": True})

    async def _ctl_config(self, request: web.Request) -> web.Response:
        spec = orjson.loads(await request.read())
        for key in ("delay_ms", "stream_delay_ms", "record"):
            if key in spec:
                setattr(self, key, spec[key])
        return self._json({"ok": True})

    async def _ctl_conn(self, request: web.Request) -> web.Response:
        """Socket options of this very connection (to check TCP_NODELAY/keep-alive)."""
        sock = request.transport.get_extra_info("socket") if request.transport else None
        nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) if sock else None
        return self._json({"tcp_nodelay": nodelay, "keep_alive": request.keep_alive})


def _count(body: p.JSON, key: str) -> int:
    value = body.get(key) or 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 128:
        raise p.PayloadError(f"'{key}' must be an integer between 1 and 128", key)
    return value


def _stream_choice(index: int, delta: p.JSON, finish: str | None) -> p.JSON:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class FakeUpstreamThread:
    """Runs a :class:`FakeOpenAIUpstream` on its own loop in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        self.server = FakeOpenAIUpstream(**kwargs)
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeUpstreamThread:
        loop = self._loop = _new_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fake-openai", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(self._host, self._port), loop).result(10)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeUpstreamThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    def fail_next(self, status: int, count: int = 1, retry_after: Any = _DEFAULT, message: str | None = None) -> None:
        self.server.fail_next(status, count, retry_after, message)

    def reset(self) -> None:
        self.server.reset()


@contextlib.contextmanager
def run_in_thread(host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> Iterator[FakeUpstreamThread]:
    """``with run_in_thread(api_key="k") as fake: OpenAI(base_url=fake.base_url, ...)``."""
    with FakeUpstreamThread(host, port, **kwargs) as fake:
        yield fake


# ---------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--delay-ms", type=float, default=0, help="latency added to every API response")
    ap.add_argument("--stream-delay-ms", type=float, default=0, help="pause before each SSE event (0: one write)")
    ap.add_argument("--api-key", default=None, help="require Authorization: Bearer <key>")
    ap.add_argument("--api-key-header", default=None, metavar="NAME=VALUE", help="require a custom header")
    ap.add_argument("--base-path", default="/v1")
    ap.add_argument("--no-record", action="store_true", help="do not record requests (benchmarks)")
    ap.add_argument("--lenient", action="store_true", help="accept bodies the openai SDK's types reject")
    return ap.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    header = None
    if args.api_key_header:
        name, _, value = args.api_key_header.partition("=")
        header = (name, value)
    fake = FakeOpenAIUpstream(
        api_key=args.api_key,
        api_key_header=header,
        base_path=args.base_path,
        delay_ms=args.delay_ms,
        stream_delay_ms=args.stream_delay_ms,
        record=not args.no_record,
        strict=not args.lenient,
    )
    await fake.start(args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {fake.url}", flush=True)
    await stop.wait()
    await fake.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(_serve(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
