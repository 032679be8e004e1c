"""Connection hygiene (server_protocol.py): a request must arrive within its deadlines and limits, while an
answer, an SSE stream included, takes as long as it takes; a normal client is served through it all."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config
from tests.support.rawhttp import closed_within, connect, read_response, request
from tests.support.services import live_server_on

DEADLINE_S = 1.0
# How much later than its deadline a connection may be seen closed (a busy 2-core CI machine included).
SLACK_S = 1.5
API = "/api/2.0/serving-endpoints"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def strict_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Short deadlines, on each store (the normal client's authenticated requests read it)."""
    env = {
        "MODELGATE_KEEPALIVE_TIMEOUT_S": str(DEADLINE_S),
        "MODELGATE_HEADER_TIMEOUT_S": str(DEADLINE_S),
        "MODELGATE_BODY_TIMEOUT_S": str(DEADLINE_S),
    }
    with live_server_on(request.param, tmp_path_factory.mktemp(f"mg-strict-{request.param}"), env) as live:
        yield live


def _auth(server: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_token}"}


def _databricks_error(raw: bytes, status: int, error_code: str) -> str:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), raw[:200]
    assert b"content-type: application/json" in head.lower(), head
    payload = orjson.loads(body)
    assert payload["error_code"] == error_code, payload
    message: str = payload["message"]
    return message


# -- deadlines ---------------------------------------------------------------------------------------------
def _idle(server: LiveServer, sock: socket.socket) -> None:
    pass


def _half_headers(server: LiveServer, sock: socket.socket) -> None:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")


def _trickled_headers(server: LiveServer, sock: socket.socket) -> None:
    """A byte every 100 ms: each read is progress, but the headers never end."""

    def trickle() -> None:
        try:
            for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                sock.send(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass

    threading.Thread(target=trickle, daemon=True).start()


def _half_body(server: LiveServer, sock: socket.socket) -> None:
    head = request("POST", API, {**_auth(server), "Content-Type": "application/json"})
    sock.sendall(head.replace(b"Content-Length: 0", b"Content-Length: 100") + b'{"name": ')


def _kept_alive(server: LiveServer, sock: socket.socket) -> None:
    sock.sendall(request("GET", "/health"))
    resp = read_response(sock)
    assert resp is not None and resp.status == 200


@pytest.mark.parametrize(
    ("start", "answer"),
    [
        pytest.param(_idle, None, id="idle-from-connect"),
        pytest.param(_half_headers, "headers", id="half-sent-headers"),
        pytest.param(_trickled_headers, "headers", id="trickled-headers"),
        pytest.param(_half_body, "body", id="half-sent-body"),
        pytest.param(_kept_alive, None, id="kept-alive-idle"),
    ],
)
def test_an_unfinished_request_is_closed_on_its_deadline(
    strict_server: LiveServer, start: Callable[[LiveServer, socket.socket], None], answer: str | None
) -> None:
    with connect(strict_server.port) as sock:
        began = time.monotonic()
        start(strict_server, sock)
        closed, sent = closed_within(sock, DEADLINE_S + SLACK_S)
        took = time.monotonic() - began
    assert closed, f"still open after {took:.1f}s"
    assert took >= DEADLINE_S * 0.9, f"closed after {took:.2f}s, before its deadline"
    if answer is None:
        assert b"HTTP/1.1 4" not in sent, sent  # an idle connection is closed without an unasked-for answer
    else:
        message = _databricks_error(sent, 408, "BAD_REQUEST")
        assert answer in message


# -- header limits -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(request("GET", "/health", {"X-Big": "a" * 40_000}), id="complete-40KB-block"),
        pytest.param(request("GET", API, {"Authorization": "Bearer " + "a" * 1_000_000}), id="1MB-authorization"),
        # Headers that never end: refused once past the limit, not buffered to the end of the stream.
        pytest.param(b"GET /health HTTP/1.1\r\nX-Endless: " + b"a" * 200_000, id="endless-header"),
    ],
)
def test_an_oversized_header_block_gets_431(strict_server: LiveServer, raw: bytes) -> None:
    with connect(strict_server.port) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)  # the server may answer and close before it has read everything
        closed, sent = closed_within(sock, 5)
    assert closed
    assert "limit of 32768 bytes" in _databricks_error(sent, 431, "BAD_REQUEST")


def test_a_request_that_http_cannot_parse_gets_a_databricks_400(strict_server: LiveServer) -> None:
    with connect(strict_server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n")
        closed, sent = closed_within(sock, 5)
    assert closed
    _databricks_error(sent, 400, "BAD_REQUEST")


# -- under attack ----------------------------------------------------------------------------------------------
class SlowClients:
    """Keeps `count` connections open that never finish a request (a third idle, a third with half the
    headers, a third trickling bytes), reopening each one the server closes, and notes how long each lived."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.lifetimes: list[float] = []
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowClients:
        for i in range(self.count):
            self._open(i % 3)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def open_ages(self) -> list[float]:
        now = time.monotonic()
        return [now - key.data[1] for key in self._selector.get_map().values()]

    def _open(self, kind: int) -> None:
        sock = connect(self.port)
        if kind > 0:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, (kind, time.monotonic()))

    def _run(self) -> None:
        last_trickle = time.monotonic()
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if sock.recv(65536):
                        continue  # the 408; the close follows
                except OSError:
                    pass
                self._selector.unregister(sock)
                sock.close()
                kind, opened = key.data
                self.lifetimes.append(time.monotonic() - opened)
                self._open(kind)
            if time.monotonic() - last_trickle > 0.2:
                last_trickle = time.monotonic()
                for key in list(self._selector.get_map().values()):
                    if key.data[0] == 2:
                        with contextlib.suppress(OSError):
                            key.fileobj.send(b"a")  # type: ignore[union-attr]


def test_a_normal_client_is_served_while_hundreds_of_slow_connections_are_cut(strict_server: LiveServer) -> None:
    latencies = []
    with SlowClients(strict_server.port, 300) as slow, strict_server.client() as client:
        time.sleep(0.5)  # let the server take them all in
        for _ in range(100):
            began = time.monotonic()
            resp = client.get(API)
            latencies.append(time.monotonic() - began)
            assert resp.status_code == 200, resp.text
            time.sleep(0.02)
        time.sleep(DEADLINE_S)
        ages = slow.open_ages()
    latencies.sort()
    p99 = latencies[98]
    print(f"normal client p99 {p99 * 1000:.0f} ms; {len(slow.lifetimes)} slow connections cut")
    assert p99 < 1.0, f"p99 {p99:.2f}s"
    # Every one of the first 300 was cut (and then some of their replacements), none long after its deadline.
    assert len(slow.lifetimes) >= 300
    assert max(slow.lifetimes) < DEADLINE_S + SLACK_S, max(slow.lifetimes)
    assert max(ages) < DEADLINE_S + SLACK_S, max(ages)


def test_a_request_over_the_connection_cap_gets_503(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "data", env={"MODELGATE_MAX_CONNECTIONS": "8"}) as server:
        held = [connect(server.port) for _ in range(8)]
        for sock in held:  # each one answered, so each one is surely counted by the server
            sock.sendall(request("GET", "/health"))
            assert (resp := read_response(sock)) is not None and resp.status == 200
        with connect(server.port) as extra:
            extra.sendall(request("GET", "/health"))
            closed, sent = closed_within(extra, 5)
        assert closed
        _databricks_error(sent, 503, "TEMPORARILY_UNAVAILABLE")
        assert b"retry-after: 1" in sent.lower()
        for sock in held:
            sock.close()
        time.sleep(0.2)
        with server.client() as c:
            assert c.get("/health").status_code == 200


# -- what is not deadlined -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paced_upstream() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(api_key=UPSTREAM_KEY, stream_delay_ms=20) as fake:
        yield fake


def test_a_long_stream_and_a_big_body_outlast_the_deadlines(
    strict_server: LiveServer, paced_upstream: FakeUpstreamThread
) -> None:
    with strict_server.client() as c:
        create_endpoint(c, "paced-chat", external_chat_config(paced_upstream.base_url, api_key=UPSTREAM_KEY))
        words = [f"w{i}" for i in range(150)]  # ~150 chunks at 20 ms: about 3 s, three deadlines long
        body = {"messages": [{"role": "user", "content": " ".join(words)}], "stream": True}
        began = time.monotonic()
        with c.stream("POST", "/serving-endpoints/paced-chat/invocations", json=body) as resp:
            assert resp.status_code == 200
            lines = [line for line in resp.iter_lines() if line]
        assert time.monotonic() - began > 2 * DEADLINE_S
        assert lines[-1] == "data: [DONE]"
        text = "".join(
            orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in lines[:-1]
            if orjson.loads(line[6:])["choices"]
        )
        assert text.split()[-1] == words[-1]
        # 12 MiB sent at once: far past any one read, within the body deadline.
        big = {"messages": [{"role": "user", "content": "x" * (12 * 1024 * 1024)}], "max_tokens": 1}
        resp = c.post("/serving-endpoints/paced-chat/invocations", json=big)
        assert resp.status_code == 200, resp.text[:300]


def test_many_requests_on_one_kept_alive_connection(strict_server: LiveServer) -> None:
    """A client that keeps its connection busy is never cut, however long it stays."""
    with connect(strict_server.port) as sock:
        buffered = bytearray()
        began = time.monotonic()
        while time.monotonic() - began < 2.5 * DEADLINE_S:
            sock.sendall(request("GET", API, _auth(strict_server)))
            resp = read_response(sock, buffered)
            assert resp is not None and resp.status == 200
            time.sleep(0.05)


def test_requests_of_several_workers_are_deadlined_too(tmp_path: Path) -> None:
    env = {"MODELGATE_HEADER_TIMEOUT_S": str(DEADLINE_S)}
    with LiveServer(tmp_path / "data", env=env, extra_args=["--workers", "2"], start_timeout=90) as server:

        def half(_: int) -> bool:
            with connect(server.port) as sock:
                _half_headers(server, sock)
                return closed_within(sock, DEADLINE_S + SLACK_S)[0]

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(half, range(8)))
