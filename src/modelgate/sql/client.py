"""The HTTP side of ai_query: endpoint lookups and many row requests in flight, from synchronous engine UDFs.

Engines call UDFs synchronously, one batch at a time (DuckDB hands over 2,048 rows per call), so all the
concurrency lives here: a private event loop in a daemon thread runs an aiohttp session (httpx's async client
was 6-7x slower at this fan-out, engines.md §4.1), and `run_batch` keeps `concurrency` requests in flight,
returning results in row order. 429/503 answers are retried after their `Retry-After`; while one is pending,
every worker holds off, so a batch backs away from an endpoint's rate limit instead of hammering it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import orjson

from modelgate.sql.calls import CallSpec
from modelgate.sql.errors import AiQueryError, EndpointCallError

T = TypeVar("T")
_RETRY_STATUSES = (429, 503)


@dataclass
class ClientConfig:
    host: str
    token: str
    concurrency: int = 64  # requests in flight per batch
    max_retries: int = 8  # per row, for 429/503 and connection errors
    retry_timeout_s: float = 300.0  # stop retrying a row after this long (the Databricks SDK's default)
    request_timeout_s: float = 600.0
    scheme_assumed: bool = field(default=False, init=False)  # the host came without one: https:// was added

    def __post_init__(self) -> None:
        self.host = self.host.rstrip("/")
        if not self.host.startswith(("http://", "https://")):
            self.host = "https://" + self.host  # as Databricks' clients do
            self.scheme_assumed = True
        if self.concurrency < 1:
            raise AiQueryError("ai_query: concurrency must be at least 1")


@dataclass
class Progress:
    """Counters a progress display reads from another thread (plain ints: reads are atomic)."""

    total: int | None = None
    done: int = 0
    errors: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


class _Backoff:
    """A shared pause: after a 429/503, no worker starts a request before `until`."""

    def __init__(self) -> None:
        self.until = 0.0

    def hold(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + seconds)

    async def wait(self) -> None:
        delay = self.until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            await self.wait()  # another 429 may have moved the deadline meanwhile


class ServingClient:
    """Talks to one modelgate (or Databricks) workspace on behalf of ai_query calls."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.progress = Progress()
        self._headers = {"Authorization": f"Bearer {config.token}", "Content-Type": "application/json"}
        self._tasks: dict[str, str | None] = {}
        self._backoff = _Backoff()
        self._cancelled = threading.Event()
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modelgate-ai-query", daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._run(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def cancel(self) -> None:
        """Stop: batches in flight fail with 'cancelled', and later ones fail at once."""
        self._cancelled.set()
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_cancel_all)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.config.concurrency, limit_per_host=0, ttl_dns_cache=300)
            timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s, sock_connect=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=self._headers)
        return self._session

    # -- control plane -------------------------------------------------------------------------------------
    def endpoint_task(self, name: str) -> str | None:
        """The endpoint's task (GET /api/2.0/serving-endpoints/{name}); cached per client."""
        if name not in self._tasks:
            self._tasks[name] = self._run(self._lookup(name))
        return self._tasks[name]

    async def _lookup(self, name: str) -> str | None:
        url = f"{self.config.host}/api/2.0/serving-endpoints/{quote(name, safe='')}"
        try:
            async with self._http().get(url) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            hint = ""
            if self.config.scheme_assumed and isinstance(exc, aiohttp.ClientSSLError):
                plain = "http://" + self.config.host.removeprefix("https://")
                hint = (
                    f". The host was given without a scheme, so https:// was assumed; a plain-HTTP server "
                    f"(modelgate serves plain HTTP by default) needs http:// in front: {plain}"
                )
            raise AiQueryError(f"ai_query: cannot reach {self.config.host}: {exc}{hint}") from None
        body = _json_or_none(raw)
        if status == 404:
            raise AiQueryError(f"ai_query: endpoint '{name}' does not exist ({_describe(status, body, raw)})")
        if status != 200 or not isinstance(body, dict):
            raise AiQueryError(f"ai_query: cannot look up endpoint '{name}': {_describe(status, body, raw)}")
        task = body.get("task")
        if not task:  # an endpoint without a top-level task: take its first external model's
            entities = (body.get("config") or {}).get("served_entities") or []
            task = next((e["external_model"].get("task") for e in entities if e.get("external_model")), None)
        return str(task) if task else None

    # -- data plane ----------------------------------------------------------------------------------------
    def run_batch(self, spec: CallSpec, requests: list[str | None]) -> list[Any]:
        """Values for `requests` in order (None for None). With failOnError the first failed row raises
        EndpointCallError; without, failed rows become {'result': None, 'errorMessage': ...}."""
        if self._cancelled.is_set():
            raise AiQueryError("ai_query: cancelled")
        try:
            return self._run(self._batch(spec, requests))
        except asyncio.CancelledError:
            raise AiQueryError("ai_query: cancelled") from None

    async def _batch(self, spec: CallSpec, requests: list[str | None]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        todo = iter([i for i, r in enumerate(requests) if r is not None])
        self.progress.done += len(requests) - sum(r is not None for r in requests)

        async def worker() -> None:
            for i in todo:  # one shared iterator: each worker takes the next row
                results[i] = await self._row(spec, requests[i] or "")
                self.progress.done += 1

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.config.concurrency, len(requests))):
                    group.create_task(worker())
        except* EndpointCallError as eg:
            raise eg.exceptions[0] from None
        return results

    async def _row(self, spec: CallSpec, request: str) -> Any:
        try:
            answer = await self._invoke(spec.endpoint, spec.body(request))
            value = spec.value(answer)
        except EndpointCallError as exc:
            self.progress.errors += 1
            message = f"endpoint '{spec.endpoint}': {exc}"
            if spec.fail_on_error:
                raise EndpointCallError(
                    f"ai_query failed: {message}", status=exc.status, error_code=exc.error_code
                ) from None
            return spec.error_value(str(exc))
        return value if spec.fail_on_error else {"result": value, "errorMessage": None}

    async def _invoke(self, endpoint: str, body: bytes) -> Any:
        url = f"{self.config.host}/serving-endpoints/{quote(endpoint, safe='')}/invocations"
        deadline = time.monotonic() + self.config.retry_timeout_s
        attempt = 0
        while True:
            await self._backoff.wait()
            delay: float | None = None
            try:
                async with self._http().post(url, data=body) as resp:
                    raw = await resp.read()
                    if resp.status == 200:
                        return orjson.loads(raw)
                    if resp.status in _RETRY_STATUSES:
                        delay = _retry_after(resp.headers.get("Retry-After"))
                        self._backoff.hold(delay)
                    failure = EndpointCallError(
                        _describe(resp.status, _json_or_none(raw), raw),
                        status=resp.status,
                        error_code=_error_code(_json_or_none(raw)),
                    )
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())
                failure = EndpointCallError(f"connection failed: {exc or type(exc).__name__}")
            except orjson.JSONDecodeError:
                raise EndpointCallError("the endpoint answered 200 with a body that is not JSON") from None
            if delay is None or attempt >= self.config.max_retries or time.monotonic() + delay > deadline:
                raise failure
            attempt += 1
            self.progress.retries += 1
            await asyncio.sleep(delay)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it comes with uvicorn[standard]): less CPU per request at high fan-out."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _cancel_all() -> None:
    for task in asyncio.all_tasks():
        task.cancel()


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header: integer seconds, 1 s if missing or unreadable."""
    try:
        return min(60.0, max(0.0, float(value))) if value else 1.0
    except ValueError:
        return 1.0


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def _error_code(body: Any) -> str | None:
    return str(body["error_code"]) if isinstance(body, dict) and body.get("error_code") else None


def _describe(status: int, body: Any, raw: bytes) -> str:
    """`HTTP 404 RESOURCE_DOES_NOT_EXIST: message`, from a Databricks error body (or the raw text)."""
    if isinstance(body, dict) and ("message" in body or "error_code" in body):
        code = body.get("error_code")
        text = f"HTTP {status}{' ' + str(code) if code else ''}: {body.get('message', '')}".rstrip(": ")
        external = body.get("external_model_message")  # modelgate keeps the provider's own words here
        if isinstance(external, dict):
            external = external.get("message") or orjson.dumps(external).decode()
        return f"{text} ({str(external)[:300]})" if external else text
    text = raw[:300].decode("utf-8", "replace").strip()
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"
