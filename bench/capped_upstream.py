"""The fake OpenAI upstream with a cap on requests in flight, for ai_query benchmarks.

tests/fakes/openai_upstream.py can delay each answer but admits any number of requests at once; a real
endpoint does not. This subclass queues requests beyond `max_in_flight` (so capacity is max_in_flight / delay
requests per second), records the peak it saw, and also answers the two serving-endpoint routes ai_query uses
(GET /api/2.0/serving-endpoints/{name}, POST /serving-endpoints/{name}/invocations) so the ai_query client can
be measured on its own, without a modelgate server in between.

    python bench/capped_upstream.py --delay-ms 100 --max-in-flight 64   # prints READY http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.openai_upstream import FakeOpenAIUpstream, Handler, RecordedRequest, _new_loop


class CappedUpstream(FakeOpenAIUpstream):
    def __init__(self, *, max_in_flight: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.peak = 0
        self.served = 0
        self._slots: asyncio.Semaphore | None = None

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_get("/api/2.0/serving-endpoints/{name}", self._endpoint)
        app.router.add_post("/serving-endpoints/{name}/invocations", self._wrap(self._invocations))
        app.router.add_get("/__control/peak", self._peak)
        return app

    async def _respond(self, request: web.Request, rec: RecordedRequest, body: Any, handler: Handler) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        if "name" in request.match_info and isinstance(body, dict):  # a serving-endpoint invocation
            body.setdefault("model", request.match_info["name"])
        async with self._slots:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                return await super()._respond(request, rec, body, handler)
            finally:
                self.in_flight -= 1
                self.served += 1

    async def _endpoint(self, request: web.Request) -> web.Response:
        return self._json({"name": request.match_info["name"], "task": "llm/v1/chat"})

    async def _invocations(self, request: web.Request, rec: RecordedRequest, body: Any) -> web.StreamResponse:
        return await self._chat(request, rec, body)

    async def _peak(self, request: web.Request) -> web.Response:
        peak, served = self.peak, self.served
        if request.query.get("reset"):
            self.peak = self.served = 0
        return web.Response(body=orjson.dumps({"peak": peak, "served": served}), content_type="application/json")


async def _serve(args: argparse.Namespace) -> None:
    fake = CappedUpstream(max_in_flight=args.max_in_flight, delay_ms=args.delay_ms, api_key=args.api_key, record=False)
    await fake.start("127.0.0.1", args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {fake.url}", flush=True)
    await stop.wait()
    await fake.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description="fake OpenAI upstream with a concurrency cap")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=100)
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--api-key", default=None)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(_serve(ap.parse_args()))


if __name__ == "__main__":
    main()
