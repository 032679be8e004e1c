"""Running an async fake provider server on its own event loop in a daemon thread, for sync tests, and the
plumbing every fake provider shares: serving routes, recording requests, injecting failures."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

from aiohttp import web

from tests.fakes.openai_upstream import RecordedRequest


class AsyncFake(Protocol):
    url: str
    requests: list[Any]

    async def start(self) -> Any: ...

    async def stop(self) -> None: ...


@runtime_checkable
class InjectsFailures(Protocol):
    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None: ...


class ThreadedFake:
    """`with SubClass(...) as fake:` starts `self.server` on a private loop; `on_loop` runs code there."""

    def __init__(self, server: AsyncFake, name: str) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Any]:
        return self.server.requests

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `count` admitted requests with `status` (and `Retry-After`, when given)."""
        assert isinstance(self.server, InjectsFailures), f"{type(self.server).__name__} cannot inject failures"
        self.on_loop(self.server.fail_next, status, count, retry_after)

    def on_loop(self, fn: Any, *args: Any) -> None:
        """Call `fn(*args)` on the server's loop (its state is not thread-safe) and wait for it."""

        async def call() -> None:
            fn(*args)

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve `app` on a free loopback port; returns the runner (to clean up) and the base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def retry_headers(retry_after: int | None) -> dict[str, str] | None:
    """The `Retry-After` header an error answer carries, when it has one."""
    return {"Retry-After": str(retry_after)} if retry_after is not None else None


@dataclass
class Failure:
    status: int
    count: int
    retry_after: int | None


class AppFake:
    """Base of the aiohttp fake providers: subclasses add their handlers in `routes`, call `record` first in each
    and answer `take_failure()`'s injected failure, when there is one, in their own error format."""

    path_prefix = ""  # appended to the server's root to make `url`, the provider's API base
    client_max_size = 1024**2

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.failures: list[Failure] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(client_max_size=self.client_max_size)
        self.routes(app.router)
        self._runner, base = await start_app(app)
        self.url = base + self.path_prefix

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def record(self, request: web.Request, body: Any, path: str | None = None, **extra: Any) -> dict[str, str]:
        """Record the request as received (`path` overrides its decoded path); returns its lower-cased headers."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, path or request.path, headers, body, **extra))
        return headers

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        self.failures.append(Failure(status, count, retry_after))

    def take_failure(self) -> Failure | None:
        """The injected failure due now, if any, counting it down."""
        if not self.failures:
            return None
        failure = self.failures[0]
        failure.count -= 1
        if failure.count <= 0:
            self.failures.pop(0)
        return failure
