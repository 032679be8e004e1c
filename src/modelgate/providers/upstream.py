"""HTTP calls to OpenAI-compatible upstreams: JSON requests, SSE streams and error translation.

aiohttp rather than httpx: at 64 requests in flight httpx.AsyncClient was 6-7x slower in the research
(engines.md §4) and in bench/upstream_clients.py; one pooled keep-alive session serves every provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from modelgate.errors import (
    DeadlineExceeded,
    ExternalModelError,
    TemporarilyUnavailable,
    error_code_for_status,
)

Json = dict[str, Any]


def upstream_error(provider: str, status: int, body: bytes, retry_after: str | None) -> ExternalModelError:
    """Wrap an upstream failure; the provider's own message goes in `external_model_message`."""
    try:
        parsed: Any = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        parsed = {"message": body[:2000].decode("utf-8", "replace")}
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


def _parse_retry_after(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return max(1, int(float(value)))
    except ValueError:
        return None


class UpstreamClient:
    """Posts JSON to one upstream base URL with the given headers, mapping failures to our errors."""

    def __init__(self, http: aiohttp.ClientSession, provider: str, timeout_s: float) -> None:
        self.http = http
        self.provider = provider
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_s)

    async def post_json(self, url: str, body: Json, headers: dict[str, str]) -> Json:
        try:
            async with self.http.post(url, data=orjson.dumps(body), headers=headers, timeout=self.timeout) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise upstream_error(self.provider, resp.status, raw, resp.headers.get("Retry-After"))
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise self._unreachable(exc) from None
        except TimeoutError:
            raise DeadlineExceeded(f"The {self.provider} upstream did not answer in time.") from None
        try:
            result = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise upstream_error(self.provider, 502, raw, None) from None
        if not isinstance(result, dict):
            raise upstream_error(self.provider, 502, raw, None)
        return result

    async def stream_sse(self, url: str, body: Json, headers: dict[str, str]) -> AsyncIterator[Json]:
        """Yield each `data:` event of an SSE response as a dict; stop at `[DONE]`.

        Errors before the first event raise as usual. Closing the generator (a client that went away)
        closes the upstream connection, which cancels the upstream's work.
        """
        try:
            async with self.http.post(url, data=orjson.dumps(body), headers=headers, timeout=self.timeout) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    raise upstream_error(self.provider, resp.status, raw, resp.headers.get("Retry-After"))
                content_type = resp.headers.get("Content-Type", "")
                if "text/event-stream" not in content_type:
                    # Some servers ignore stream=true and answer with one JSON body.
                    raw = await resp.read()
                    yield {"__whole_response__": orjson.loads(raw)}
                    return
                async for line in resp.content:
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
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise self._unreachable(exc) from None
        except TimeoutError:
            raise DeadlineExceeded(f"The {self.provider} upstream did not answer in time.") from None
        except orjson.JSONDecodeError:
            raise ExternalModelError(
                self.provider, 502, "TEMPORARILY_UNAVAILABLE", "upstream sent an event that is not JSON"
            ) from None
        except asyncio.CancelledError:
            raise

    def _unreachable(self, exc: Exception) -> TemporarilyUnavailable:
        return TemporarilyUnavailable(
            f"The {self.provider} upstream could not be reached ({type(exc).__name__}). "
            "Check the endpoint's base URL and that the provider is up.",
            retry_after=1,
        )
