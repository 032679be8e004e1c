"""The floor for any Python gateway on this stack: uvicorn + pyreqwest forwarding each request, and nothing else.

No auth, no validation, no routing, no records: it reads the body, swaps in the upstream model name, posts it
to the upstream's /chat/completions with modelgate's HTTP client (`modelgate.providers.http`: pyreqwest, pooled
keep-alive) and returns the answer as it came. What
modelgate costs above this is modelgate's own work; what this costs above `direct` is the price of the
server and client libraries themselves. Used by proxy_bench.py --floor.

    python bench/floor_proxy.py --upstream http://127.0.0.1:PORT/v1 --port 0 --api-key KEY --model NAME
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import orjson
import uvicorn

from modelgate.providers.http import HttpClient, new_http_client, post


def make_app(upstream: str, api_key: str, model: str) -> Any:
    state: dict[str, HttpClient] = {}
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    url = upstream.rstrip("/") + "/chat/completions"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    state["http"] = new_http_client(max_connections=1000, read_timeout_s=600)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await state["http"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = orjson.loads(body)
        request["model"] = model
        resp = await post(state["http"], url, orjson.dumps(request), headers, stream=False)
        status, answer = resp.status, await resp.read()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(make_app(args.upstream, args.api_key, args.model), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
