"""The HTTP client every provider's upstream calls go through: pyreqwest (Rust's reqwest and hyper).

Chosen by measurement (bench/README.md, upstream_clients.py): at 64 requests in flight it spent 0.57x
aiohttp's CPU per call, and aiohttp's client code had been 41% of the server's samples; whole servers served
6-33% more requests/s with it. One client per server holds the keep-alive pool; its I/O runs on a Tokio thread.

This module hides the library from the providers: they see `UpstreamResponse` (status, headers, body,
chunks) and `TRANSPORT_ERRORS`, of which the timeouts are also `TimeoutError`s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, RequestError
from pyreqwest.request import StreamRequest
from pyreqwest.response import Response

from modelgate.scheduling import deprioritise_threads_named

HttpClient = Client

# Connection refused or reset, DNS, TLS, a body cut short, a timeout (those also subclass TimeoutError).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (RequestError,)


def is_connection_refused(exc: Exception) -> bool:
    """Whether `exc` is a refused connection: nothing listens at the address, as opposed to a reset, a timeout
    or a DNS failure. pyreqwest says so only in the error's chain of causes."""
    if not isinstance(exc, ConnectError):
        return False
    causes = (getattr(exc, "details", None) or {}).get("causes") or []
    return any("connection refused" in str(c.get("message", "")).lower() for c in causes if isinstance(c, dict))


def new_http_client(*, max_connections: int, read_timeout_s: float, connect_timeout_s: float = 30.0) -> HttpClient:
    """The server's one upstream client.

    `read_timeout_s` bounds each wait for the upstream (a first byte, the next chunk of a stream), not the
    whole call, so a long stream that keeps sending is never cut. Proxies from the environment are ignored
    (as before with aiohttp's trust_env=False): upstream URLs go where the endpoint config says.
    """
    client = (
        ClientBuilder()
        .max_connections(max_connections)
        .pool_idle_timeout(dt.timedelta(seconds=60))
        .connect_timeout(dt.timedelta(seconds=connect_timeout_s))
        .read_timeout(dt.timedelta(seconds=read_timeout_s))
        .no_proxy()
        .gzip(True)
        .follow_redirects(False)
        .error_for_status(False)
        .build()
    )
    keep_io_threads_from_preempting()
    return client


# pyreqwest names its Tokio runtime's threads so (one I/O thread by default, made with the first client).
IO_THREAD_PREFIX = "pyreqwest"


def keep_io_threads_from_preempting() -> int:
    """The I/O thread wakes for every send and every answer; see `modelgate.scheduling` for why it must not
    preempt the event loop thread. Threads it starts later inherit the policy."""
    return deprioritise_threads_named(IO_THREAD_PREFIX)


class UpstreamResponse:
    """One upstream answer: its status and headers at once, its body read whole or chunk by chunk.

    A streamed response holds its connection until `close()`; closing before the end drops the connection,
    which is how the upstream learns that the caller went away.
    """

    __slots__ = ("_request", "_response")

    def __init__(self, response: Response, request: StreamRequest | None = None) -> None:
        self._response = response
        self._request = request

    @property
    def status(self) -> int:
        return self._response.status

    def header(self, name: str) -> str | None:
        return self._response.get_header(name)

    async def read(self) -> bytes:
        return bytes(await self._response.bytes())

    async def chunks(self) -> AsyncIterator[bytes]:
        reader = self._response.body_reader
        while (chunk := await reader.read_chunk()) is not None:
            yield bytes(chunk)

    async def lines(self) -> AsyncIterator[bytes]:
        """The body split at line ends (LF, CRLF or CR, as SSE allows), without them."""
        pending = b""
        async for chunk in self.chunks():
            pending += chunk
            if b"\r" in pending:
                pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line
        if pending:
            yield pending

    async def close(self) -> None:
        if self._request is not None:
            request, self._request = self._request, None
            await request.__aexit__(None, None, None)

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def post(http: HttpClient, url: str, data: bytes, headers: dict[str, str], *, stream: bool) -> UpstreamResponse:
    """POST `data`; the body is read before returning unless `stream`."""
    builder = http.post(url).body_bytes(data).headers(headers)
    if not stream:
        return UpstreamResponse(await builder.build().send())
    # pyreqwest buffers a streamed body up to this limit before handing over the response; at 0 each chunk
    # is handed over as it arrives (SSE events must reach the caller as the upstream sends them).
    request = builder.streamed_read_buffer_limit(0).build_streamed()
    return UpstreamResponse(await request.__aenter__(), request)


async def post_form(http: HttpClient, url: str, form: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
    """POST an urlencoded form (OAuth token requests); returns the status and the body."""
    builder = http.post(url).form(form).timeout(dt.timedelta(seconds=timeout_s))
    response = await builder.build().send()
    return response.status, bytes(await response.bytes())
