"""A fake OpenAI-compatible inference server (vLLM / llama-server stand-in), run as a separate process.

modelgate's `openai_server` engine starts it the way it starts vLLM: a command line with `{port}`,
`{model_path}` and `{served_name}`. Standard library only, so it runs as a plain script:

    python tests/fakes/fake_inference_server.py --port PORT [--model PATH] [--served-model-name NAME]
        [--startup-delay S] [--fail MESSAGE] [--pid-file FILE]

It speaks the OpenAI routes vLLM serves (`GET /v1/models`, `/health`, `POST /v1/chat/completions`,
`/v1/completions` and `/v1/embeddings`, streams included) with deterministic answers: the chat answer echoes
the last user message, one stream chunk per word. A request naming another model than the served name gets
vLLM's 404. Test hooks: `--startup-delay` sleeps before listening, `--fail` writes the message to stderr and
exits 1 (like a server that cannot load its model), `POST /__control/exit` makes the process exit with code
3 right after answering, `GET /__control/info` returns its pid, model path and the requests it saw, and
`--pid-file` appends "<pid> <port>" to a file (one line per start).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIMENSION = 8


class State:
    served_name = "model"
    model_path = ""
    requests: list[dict[str, Any]] = []


def _words(messages: list[dict[str, Any]]) -> list[str]:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    content = last.get("content") or ""
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ["echo:", *str(content).split()]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-inference/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            model = {"id": State.served_name, "object": "model", "owned_by": "fake", "root": State.model_path}
            self._json(200, {"object": "list", "data": [model]})
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        elif self.path == "/__control/info":
            self._json(200, {"pid": os.getpid(), "model_path": State.model_path, "served_name": State.served_name,
                             "requests": State.requests})  # fmt: skip
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/__control/exit":
            self._json(200, {"exiting": True})
            self.wfile.flush()
            threading.Timer(0.05, os._exit, args=(3,)).start()
            return
        State.requests.append({"path": self.path, "body": body})
        if body.get("model") != State.served_name:
            message = f"The model `{body.get('model')}` does not exist."
            self._json(404, {"error": {"message": message, "type": "NotFoundError", "param": None, "code": 404}})
            return
        route = {"/v1/chat/completions": self._chat, "/v1/completions": self._completions,
                 "/v1/embeddings": self._embeddings}.get(self.path)  # fmt: skip
        if route is None:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})
            return
        route(body)

    def _chat(self, body: dict[str, Any]) -> None:
        words = _words(body.get("messages") or [])
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 64
        out, finish = words[:limit], "stop" if len(words) <= limit else "length"
        meta = {"id": "chatcmpl-fake", "created": int(time.time()), "model": State.served_name}
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
        if not body.get("stream"):
            message = {"role": "assistant", "content": " ".join(out)}
            choice = {"index": 0, "message": message, "finish_reason": finish}
            self._json(200, {**meta, "object": "chat.completion", "choices": [choice],
                             "usage": _usage(prompt_tokens, len(out))})  # fmt: skip
            return
        events: list[dict[str, Any]] = []
        for i, word in enumerate(out):
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
            events.append({**meta, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})  # fmt: skip
        events.append({**meta, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})  # fmt: skip
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**meta, "object": "chat.completion.chunk", "choices": [],
                           "usage": _usage(prompt_tokens, len(out))})  # fmt: skip
        self._sse(events)

    def _completions(self, body: dict[str, Any]) -> None:
        prompt = body.get("prompt") or ""
        words = ["echo:", *str(prompt if isinstance(prompt, str) else prompt[0]).split()]
        meta = {"id": "cmpl-fake", "created": int(time.time()), "model": State.served_name}
        choice = {"index": 0, "text": " ".join(words), "finish_reason": "stop", "logprobs": None}
        usage = _usage(len(words) - 1, len(words))
        if not body.get("stream"):
            self._json(200, {**meta, "object": "text_completion", "choices": [choice], "usage": usage})
            return
        events = [{**meta, "object": "text_completion", "choices": [choice]}]
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**meta, "object": "text_completion", "choices": [], "usage": usage})
        self._sse(events)

    def _embeddings(self, body: dict[str, Any]) -> None:
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        data = []
        for i, text in enumerate(texts):
            vector = [float((len(text) + k) % 5) for k in range(DIMENSION)]
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(len(str(t).split()) for t in texts)
        self._json(200, {"object": "list", "model": State.served_name, "data": data,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="")
    parser.add_argument("--served-model-name", default="model")
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--fail", default=None)
    parser.add_argument("--pid-file", default=None)
    args = parser.parse_args()
    State.served_name, State.model_path = args.served_model_name, args.model
    if args.pid_file:
        with open(args.pid_file, "a") as f:
            f.write(f"{os.getpid()} {args.port}\n")
    print(f"fake inference server: loading {args.model}", file=sys.stderr, flush=True)
    if args.fail:
        print(f"ERROR: {args.fail}", file=sys.stderr, flush=True)
        sys.exit(1)
    time.sleep(args.startup_delay)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"fake inference server: listening on {args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
