"""HTTP calls to OpenAI-compatible upstreams: JSON requests, SSE streams and error translation.

The transport is `providers/http.py` (pyreqwest); one pooled keep-alive client serves every provider.

Transient failures (connection errors, 429, 5xx) are retried here, for every provider, with exponential
backoff and full jitter inside a per-endpoint time budget; a `Retry-After` from the provider sets the wait,
and a wait that would end past the budget is not started: the failure goes back to the caller at once.
Streams are retried only while opening, never after the first event reached the caller.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from modelgate.errors import (
    DeadlineExceeded,
    ExternalModelError,
    TemporarilyUnavailable,
    error_code_for_status,
)
from modelgate.providers.http import TRANSPORT_ERRORS, HttpClient, UpstreamResponse, is_connection_refused, post
from modelgate.redaction import SecretMask

Json = dict[str, Any]
log = logging.getLogger(__name__)

DEFAULT_RETRY_BUDGET_S = 30.0
_BACKOFF_BASE_S = 0.25
_BACKOFF_CAP_S = 8.0


def upstream_error(
    provider: str, status: int, body: bytes, retry_after: str | None, mask: SecretMask | None = None
) -> ExternalModelError:
    """Wrap an upstream failure; the provider's own message goes in `external_model_message`.

    A body that is not JSON is cut to 2000 characters, after `mask` scrubbed it: a secret echoed across the cut
    would otherwise leave a part of itself that no later scrub recognizes. (Dispatch scrubs the whole error.)"""
    try:
        parsed: Any = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace")
        parsed = {"message": mask.clip(text, 2000) if mask is not None else text[:2000]}
    message = parsed
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        message = parsed["error"]
    # The caller's own credentials were fine; an upstream 401/403 is this endpoint's misconfiguration.
    client_status = 400 if status in (401, 403) else status
    if status == 529:  # Anthropic's "overloaded": to clients, a 503 they know to retry
        status = client_status = 503
    if client_status < 400:
        client_status = 502
    retry = _parse_retry_after(retry_after) if status in (429, 503) else None
    if status in (429, 503) and retry is None:
        retry = 1
    return ExternalModelError(provider, client_status, error_code_for_status(client_status), message, retry_after=retry)


def is_transient(status: int) -> bool:
    """Worth another try: rate limited or the upstream's own failure (incl. Anthropic's 529 overloaded)."""
    return status == 429 or status >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_s(attempt: int) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))


class _Transient(Exception):
    """A failed attempt that may be retried; `error` is what the caller gets if it is not."""

    def __init__(self, error: Exception, wait_s: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait_s = wait_s


def _parse_retry_after(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return max(1, int(float(value)))
    except ValueError:
        return None


# Dispatch lowers this while another served entity can take the request (fallbacks), so a failing entity
# hands over at once instead of spending the whole retry budget first.
NO_CAP = float("inf")
RETRY_BUDGET_CAP: contextvars.ContextVar[float] = contextvars.ContextVar("retry_budget_cap", default=NO_CAP)


def _origin(url: str) -> str:
    """scheme://host:port of `url`: enough to name the upstream, never its path, query or credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class UpstreamClient:
    """Posts JSON to one upstream base URL with the given headers, mapping failures to our errors.

    Waits are bounded by the HTTP client's read timeout (the server's `upstream_timeout_s`)."""

    def __init__(
        self,
        http: HttpClient,
        provider: str,
        retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
        mask: SecretMask | None = None,
    ) -> None:
        self.http = http
        self.provider = provider
        self.retry_budget_s = retry_budget_s
        self.mask = mask

    async def post_json(self, url: str, body: Json, headers: dict[str, str]) -> Json:
        resp = await self.open(url, body, headers, stream=False)
        try:
            raw = await resp.read()
        except TRANSPORT_ERRORS as exc:
            raise self.transport_failure(exc) from None
        try:
            result = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise upstream_error(self.provider, 502, raw, None, self.mask) from None
        if not isinstance(result, dict):
            raise upstream_error(self.provider, 502, raw, None, self.mask)
        return result

    async def stream_sse(self, url: str, body: Json, headers: dict[str, str]) -> AsyncIterator[Json]:
        """Yield each `data:` event of an SSE response as a dict; stop at `[DONE]`.

        Errors before the first event raise as usual. Closing the generator (a client that went away)
        closes the upstream connection, which cancels the upstream's work.
        """
        resp = await self.open(url, body, headers, stream=True)
        try:
            async with resp:
                if "text/event-stream" not in (resp.header("Content-Type") or ""):
                    # Some servers ignore stream=true and answer with one JSON body.
                    yield {"__whole_response__": orjson.loads(await resp.read())}
                    return
                async for line in resp.lines():
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, event:/id: lines
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    if not data:
                        continue
                    event = orjson.loads(data)
                    if isinstance(event, dict) and "error" in event and "choices" not in event:
                        err = event["error"]
                        raise ExternalModelError(self.provider, 502, "TEMPORARILY_UNAVAILABLE", err)
                    yield event
        except TRANSPORT_ERRORS as exc:
            raise self.transport_failure(exc) from None
        except orjson.JSONDecodeError:
            raise ExternalModelError(
                self.provider, 502, "TEMPORARILY_UNAVAILABLE", "upstream sent an event that is not JSON"
            ) from None

    async def open(self, url: str, body: Json, headers: dict[str, str], *, stream: bool) -> UpstreamResponse:
        """POST until a non-error response arrives, retrying transient failures within the budget.

        With `stream`, the caller reads the body and must close the response (`async with`)."""
        data = orjson.dumps(body)
        started = time.monotonic()
        try:
            return await self._attempt(url, data, headers, stream)
        except _Transient as failure:  # the uncommon path: the budget counts from the first attempt
            return await self._retry(url, data, headers, stream, failure, started)

    async def _retry(
        self, url: str, data: bytes, headers: dict[str, str], stream: bool, failure: _Transient, started: float
    ) -> UpstreamResponse:
        deadline = started + min(self.retry_budget_s, RETRY_BUDGET_CAP.get())
        attempt = 0
        while True:
            wait = failure.wait_s if failure.wait_s is not None else backoff_s(attempt)
            if time.monotonic() + wait > deadline:
                raise failure.error from None
            attempt += 1
            log.info(
                "%s upstream: transient %s (status %s); retry %d in %.2fs",
                self.provider,
                type(failure.error).__name__,
                getattr(failure.error, "status", "-"),
                attempt,
                wait,
            )
            await asyncio.sleep(wait)
            try:
                return await self._attempt(url, data, headers, stream)
            except _Transient as again:
                failure = again

    async def _attempt(self, url: str, data: bytes, headers: dict[str, str], stream: bool) -> UpstreamResponse:
        try:
            resp = await post(self.http, url, data, headers, stream=stream)
        except TRANSPORT_ERRORS as exc:
            failure = self.transport_failure(exc, url)
            # A refused connection means nothing listens there: retrying for the whole budget only keeps the
            # caller waiting (and its client's own retries on top), so it gets the 503 at once.
            if isinstance(failure, DeadlineExceeded) or is_connection_refused(exc):
                raise failure from None
            raise _Transient(failure, None) from None
        if resp.status < 400:
            return resp
        retry_after = resp.header("Retry-After")
        try:
            async with resp:
                raw = await resp.read()
        except TRANSPORT_ERRORS:
            raw = b""
        error = upstream_error(self.provider, resp.status, raw, retry_after, self.mask)
        if is_transient(resp.status):
            raise _Transient(error, retry_after_seconds(retry_after))
        raise error

    def transport_failure(self, exc: Exception, url: str | None = None) -> TemporarilyUnavailable | DeadlineExceeded:
        """What the caller gets for a transport failure: a timeout, or an upstream that could not be reached."""
        if isinstance(exc, TimeoutError):
            return DeadlineExceeded(f"The {self.provider} upstream did not answer in time.")
        if url is not None and is_connection_refused(exc):
            return TemporarilyUnavailable(
                f"The {self.provider} upstream at {_origin(url)} could not be reached: it refused the connection "
                "(nothing listens there). "
                "Check the endpoint's base URL and that the provider is up.",
                retry_after=1,
            )
        return TemporarilyUnavailable(
            f"The {self.provider} upstream could not be reached ({type(exc).__name__}). "
            "Check the endpoint's base URL and that the provider is up.",
            retry_after=1,
        )
