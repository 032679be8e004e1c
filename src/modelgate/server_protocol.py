"""Deadlines and limits on receiving a request, for the HTTP/1.1 connections of `modelgate serve`.

uvicorn holds a connection for as long as its client likes while the request is still coming in: its
keep-alive timer starts only after a response, so a connection that never completes a request (idle from
the start, headers trickled a byte at a time, a body that stops) is never closed, and httptools buffers a
header block of any size. Only the file-descriptor limit stopped them. This subclass of uvicorn's httptools
protocol adds, per connection:

- a header deadline, from the connection's start or from the first byte of the next request;
- a body deadline, from the end of the headers to the end of the body;
- a limit on the bytes of the request line and headers (431);
- a cap on the process's open connections: a request that arrives over it gets 503 and the connection closes;
- Databricks JSON bodies for these answers and for uvicorn's own "invalid HTTP request" 400.

Only receiving the request is deadlined: once it is in, the answer (an SSE stream that lasts minutes) runs
as long as it needs. Keep-alive idle time is uvicorn's own `timeout_keep_alive`.

Timers are armed only when a read leaves a request unfinished, so a request whose headers (and body) arrive
in one read, the usual case, costs no timer at all.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from modelgate.errors import (
    BadRequest,
    ModelgateError,
    RequestHeaderFieldsTooLarge,
    RequestTimeout,
    TemporarilyUnavailable,
)
from modelgate.settings import Settings


@dataclass(frozen=True)
class ConnectionLimits:
    """The settings this module enforces (defaults and meanings: Settings, README, docs/security.md)."""

    keepalive_timeout_s: float
    header_timeout_s: float
    body_timeout_s: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            keepalive_timeout_s=settings.keepalive_timeout_s,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_header_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
        )


def protocol_factory(limits: ConnectionLimits) -> Any:
    """What to pass uvicorn as `http=`; a partial of a module-level class, so it pickles into `--workers`."""
    return functools.partial(GuardedHttpToolsProtocol, limits=limits)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; `send_400_response` then answers with `error`."""


_AWAIT_HEADERS, _BODY, _UPGRADED = 0, 1, 2


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.timeout_keep_alive = limits.keepalive_timeout_s  # type: ignore[assignment]
        self._phase = _AWAIT_HEADERS
        # Bytes read since the phase began; may undercount a request that starts mid-read (pipelining), which
        # the exact count at the end of the headers makes up for.
        self._received = 0
        self._mid_read = False
        self._deadline: asyncio.TimerHandle | None = None
        self._refusal: ModelgateError | None = None

    # -- connection ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        self._mid_read = False
        super().data_received(data)
        # The usual read held a whole request, whose answer is now under way: two checks and out.
        if self._phase == _AWAIT_HEADERS:
            if self._received or (self._deadline is None and (self.cycle is None or self.cycle.response_complete)):
                self._after_partial_headers()
        elif self._phase == _BODY and self._deadline is None and not self.transport.is_closing():
            self._arm(self.limits.body_timeout_s)

    def _after_partial_headers(self) -> None:
        if self.transport.is_closing():
            return
        limit = self.limits.max_header_bytes
        if not self._idle():
            # Bytes of a request pipelined behind a running one: no answer may cut into that one's, so past
            # the limit reading stops until it is done (uvicorn resumes reading then).
            if self._received > limit:
                self.flow.pause_reading()
        elif self._received > limit:
            self._answer_and_close(self._headers_too_large())
        elif self._deadline is None:
            # Part of a request's headers, or nothing after a request whose answer is already sent (a read
            # cancels uvicorn's keep-alive timer, so this one stands in for it).
            self._arm(self.limits.header_timeout_s if self._received else self.limits.keepalive_timeout_s)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self._phase = _UPGRADED
        super().handle_websocket_upgrade()

    # -- parser callbacks ------------------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        limit = self.limits.max_header_bytes
        # Exact only when it can matter: a read past the limit (headers with a body), or a pipelined start.
        if (self._received > limit or self._mid_read) and self._header_block_size() > limit:
            self._refuse(self._headers_too_large())
        if len(self.connections) > self.limits.max_connections:
            self._refuse(TemporarilyUnavailable("The server has too many open connections.", retry_after=1))
        if self._deadline is not None:
            self._disarm()
        self._phase = _BODY
        self._received = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._deadline is not None:
            self._disarm()
        self._phase = _AWAIT_HEADERS
        self._received = 0
        self._mid_read = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request httptools could not parse, and ours to a refused one."""
        error, self._refusal = self._refusal or BadRequest(msg), None
        self._answer_and_close(error)

    # -- deadlines -------------------------------------------------------------------------------------
    def _arm(self, delay: float) -> None:
        self._deadline = self.loop.call_later(delay, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _idle(self) -> bool:
        """No response is under way (a request pipelined behind a running one waits for it, undeadlined)."""
        return self.cycle is None or self.cycle.response_complete

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._phase == _AWAIT_HEADERS:
            if not self._idle():
                return
            if not self._received:  # connected and sent nothing: nothing to answer
                self.transport.close()
                return
            self._answer_and_close(RequestTimeout("The request headers were not received in time."))
        elif self._phase == _BODY:
            cycle = self.cycle
            if self.pipeline:  # its body waits, unread, for the request ahead of it to finish
                self._arm(self.limits.body_timeout_s)
            elif cycle.response_started:
                self.transport.close()
            else:
                # The app waits on this body: it now reads a disconnect, and whatever it sends is dropped.
                cycle.disconnected = True
                cycle.message_event.set()
                self._answer_and_close(RequestTimeout("The request body was not received in time."))

    # -- refusals --------------------------------------------------------------------------------------
    def _header_block_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _headers_too_large(self) -> ModelgateError:
        return RequestHeaderFieldsTooLarge(
            f"The request line and headers are past the limit of {self.limits.max_header_bytes} bytes."
        )

    def _refuse(self, error: ModelgateError) -> None:
        self._refusal = error
        raise _Refused

    def _answer_and_close(self, error: ModelgateError) -> None:
        self._disarm()
        body = orjson.dumps(error.body())
        content = [STATUS_LINE[error.status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        for name_s, value_s in error.headers().items():
            content.extend([name_s.lower().encode("latin-1"), b": ", value_s.encode("latin-1"), b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
