"""Engine `openai_server`: an OpenAI-compatible inference server (vLLM, llama.cpp's llama-server, ...) run by
modelgate as a managed child process, with queries proxied to it.

A supervisor thread starts the command on a free loopback port, polls `/v1/models` (or `/health`) until it
answers, and then waits on the process. If it exits before it is ready, or is not ready within
`start_timeout_s`, the deployment fails with the last lines of its output. If it dies later, it is started
again with exponential backoff (1 s doubling to 30 s); meanwhile the deployment shows DEPLOYMENT_CREATING and
queries get 503 with Retry-After. The child runs in its own process group, which is killed on shutdown; it
does not inherit modelgate's own settings (MODELGATE_* and DATABRICKS_* variables hold tokens and keys).

Queries go through the OpenAI-compatible provider code the `custom` provider uses, streaming included.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, ClassVar

from modelgate.engines.catalog import CREATING, FAILED, EngineStartError, ModelEntry
from modelgate.engines.engine import Engine
from modelgate.errors import TemporarilyUnavailable
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.base import Json, ProviderConfig, ProviderDeps
from modelgate.providers.openai_compat import OpenAICompatibleProvider

if TYPE_CHECKING:
    from modelgate.engines.catalog import Deployment

log = logging.getLogger(__name__)

PRESETS: dict[str, list[str]] = {
    "vllm": [
        "vllm", "serve", "{model_path}", "--served-model-name", "{served_name}",
        "--host", "127.0.0.1", "--port", "{port}",
    ],
    "llama-server": ["llama-server", "-m", "{model_path}", "--host", "127.0.0.1", "--port", "{port}", "-np", "8"],
}  # fmt: skip
TAIL_LINES = 20
MAX_LINE_CHARS = 400
POLL_INTERVAL_S = 0.25
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a process up this long restarts its backoff from 1 s
STOP_GRACE_S = 10.0
RETRY_AFTER_S = 5
_PRIVATE_ENV_PREFIXES = ("MODELGATE_", "DATABRICKS_")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def command_line(entry: ModelEntry, model_path: str, port: int) -> list[str]:
    template = entry.command if entry.command is not None else PRESETS[entry.preset or ""]
    values = {"{port}": str(port), "{model_path}": model_path, "{served_name}": entry.name}
    out = []
    for arg in template:
        for key, value in values.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def start_managed_server(entry: ModelEntry, location: str) -> ManagedServer:
    """Start the process and wait until it answers (runs in the deployment's load thread)."""
    server = ManagedServer(entry, location)
    server.start_and_wait()
    return server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}


def _answers(port: int) -> bool:
    """Ready when GET /v1/models is 200 (or, for servers without it, GET /health is 200)."""
    for path in ("/v1/models", "/health"):
        try:
            with _NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                return False
        except (OSError, ValueError):
            return False
    return False


class ManagedServer(Engine):
    """The supervised child process of one catalog model."""

    def __init__(self, entry: ModelEntry, location: str) -> None:
        self.entry = entry
        self.location = location
        self.port: int | None = None  # set while the process is ready
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._stopping = threading.Event()
        self._first = threading.Event()
        self._first_error: str | None = None
        self._status: tuple[str, str | None] | None = None  # None: ready
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name=f"supervise-{entry.name}", daemon=True)

    # -- public ------------------------------------------------------------------------------------
    def start_and_wait(self) -> None:
        self._thread.start()
        self._first.wait()
        if self._first_error is not None:
            raise EngineStartError(self._first_error)

    def status(self) -> tuple[str, str | None] | None:
        """None while the process answers; otherwise the deployment state and why."""
        return self._status

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def close(self) -> None:
        self._stopping.set()
        self._kill()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(STOP_GRACE_S + 5)

    # -- supervision -------------------------------------------------------------------------------
    def _supervise(self) -> None:
        attempt = 0
        first = True
        while not self._stopping.is_set():
            error = self._launch()
            if first:
                first = False
                self._first_error = error
                self._first.set()
                if error is not None:
                    return
            if error is None:
                up_since = time.monotonic()
                self._status = None
                proc = self._proc
                code = proc.wait() if proc is not None else -1
                self.port = None
                if self._stopping.is_set():
                    return
                if time.monotonic() - up_since > STABLE_AFTER_S:
                    attempt = 0
                error = f"The inference server exited with code {code}.{self._tail_text()}"
                log.warning("model %s: inference server exited with code %s; restarting", self.entry.name, code)
            attempt += 1
            delay = min(BACKOFF_MAX_S, 2.0 ** (attempt - 1))
            self._status = (CREATING, f"Restarting (attempt {attempt}, after {delay:g}s). {error}")
            if self._stopping.wait(delay):
                return
            self.restarts += 1

    def _launch(self) -> str | None:
        """Start the process and wait until it answers; the reason it did not, or None when it is ready."""
        port = _free_port()
        argv = command_line(self.entry, self.location, port)
        self._tail.clear()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as exc:
            return f"The inference server command '{argv[0]}' could not be started: {exc.strerror or exc}."
        with self._lock:
            self._proc = proc
        if self._stopping.is_set():  # closed while starting
            self._kill()
            return "The server is shutting down."
        threading.Thread(target=self._read_output, args=(proc,), name=f"output-{self.entry.name}", daemon=True).start()
        deadline = time.monotonic() + self.entry.start_timeout_s
        while True:
            code = proc.poll()
            if code is not None:
                proc.wait()
                time.sleep(0.05)  # let the reader thread take the last lines
                return f"The inference server exited with code {code} before it was ready.{self._tail_text()}"
            if _answers(port):
                self.port = port
                log.info("model %s: inference server ready on port %d (pid %d)", self.entry.name, port, proc.pid)
                return None
            if time.monotonic() > deadline:
                self._kill()
                return (
                    f"The inference server was not ready within {self.entry.start_timeout_s:g}s "
                    f"(start_timeout_s).{self._tail_text()}"
                )
            if self._stopping.wait(POLL_INTERVAL_S):
                return "The server is shutting down."

    def _read_output(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._tail.append(line[:MAX_LINE_CHARS])
                log.debug("model %s: %s", self.entry.name, line[:MAX_LINE_CHARS])
        proc.stdout.close()

    def _tail_text(self) -> str:
        lines = list(self._tail)
        return " Last lines of its output:\n" + "\n".join(lines) if lines else " It wrote no output."

    def _kill(self) -> None:
        """SIGTERM to the process group, SIGKILL after a grace period."""
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class ManagedServerProvider(OpenAICompatibleProvider):
    """Serves a catalog model by proxying to its managed process (503 while it starts or restarts)."""

    name: ClassVar[str] = "openai_server"
    config_key: ClassVar[str] = "local_config"
    config_model: ClassVar[type[ProviderConfig]] = ProviderConfig

    def __init__(self, deployment: Deployment, deps: ProviderDeps) -> None:
        self.deployment = deployment
        super().__init__(deployment.entry.full_name, deployment.entry.task, ProviderConfig(), deps)

    def _port(self) -> int:
        d = self.deployment
        state, message = d.view()
        server = d.engine
        port = server.port if isinstance(server, ManagedServer) else None
        if state == FAILED:
            raise TemporarilyUnavailable(f"Model '{self.model_name}' failed to start: {message}")
        if port is None or state != "DEPLOYMENT_READY":
            what = "is restarting its inference server" if d.engine is not None else "is still starting"
            raise TemporarilyUnavailable(f"Model '{self.model_name}' {what}; retry shortly.", retry_after=RETRY_AFTER_S)
        return port

    def url_for(self, route: str) -> str:
        return f"http://127.0.0.1:{self._port()}/v1/{route}"

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def body_model_name(self) -> str | None:
        return self.deployment.entry.name  # the {served_name} the process knows the model by

    def _require(self, task: str, what: str) -> None:
        if self.task != task:
            raise self._unsupported(what)

    async def chat(self, request: ChatRequest) -> Json:
        self._require("llm/v1/chat", "chat")
        return await super().chat(request)

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        self._require("llm/v1/chat", "chat")
        self._port()
        return super().chat_stream(request)

    async def completions(self, request: CompletionRequest) -> Json:
        self._require("llm/v1/completions", "completions")
        return await super().completions(request)

    def completions_stream(self, request: CompletionRequest) -> AsyncIterator[Json]:
        self._require("llm/v1/completions", "completions")
        self._port()
        return super().completions_stream(request)

    async def embeddings(self, request: EmbeddingRequest) -> Json:
        self._require("llm/v1/embeddings", "embeddings")
        return await super().embeddings(request)
