"""Running an async fake provider server on its own event loop in a daemon thread, for sync tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol, Self

from aiohttp import web


class AsyncFake(Protocol):
    url: str
    requests: list[Any]

    async def start(self) -> Any: ...

    async def stop(self) -> None: ...


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

    def on_loop(self, fn: Any, *args: Any) -> None:
        """Call `fn(*args)` on the server's loop (its state is not thread-safe) and wait for it."""

        async def call() -> None:
            fn(*args)

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve `app` on a free loopback port; returns the runner (to clean up) and the base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"
