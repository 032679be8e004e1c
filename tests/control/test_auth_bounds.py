"""Anonymous callers cannot grow the server's memory: Authorization headers are size-limited and rejected
tokens are remembered by digest, briefly, in a bounded cache (auth/authenticator.py)."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.control.checks import API, assert_error
from tests.support.live import LiveServer
from tests.support.rawhttp import connect, read_response, request, rss_bytes

RSS_MARGIN = 20 * 1024 * 1024
MAX_AUTHORIZATION_BYTES = 8 * 1024  # as documented (auth.authenticator.MAX_AUTHORIZATION_BYTES)
CONNECTIONS = 4


def _junk_runs(port: int, count: int, authorization: Callable[[], str]) -> Counter[int]:
    """`count` GETs, each with a fresh `authorization()`, over a few kept-alive connections; their statuses."""

    def run(n: int) -> Counter[int]:
        statuses: Counter[int] = Counter()
        buffered = bytearray()
        sock = connect(port)
        with sock:
            for _ in range(n):
                sock.sendall(request("GET", API, {"Authorization": authorization()}))
                resp = read_response(sock, buffered)
                assert resp is not None, "the server closed a kept-alive connection"
                statuses[resp.status] += 1
        return statuses

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        parts = [count // CONNECTIONS + (i < count % CONNECTIONS) for i in range(CONNECTIONS)]
        return sum(pool.map(run, parts), Counter())


def _padded_pat(size: int) -> Callable[[], str]:
    """A distinct `dapi…` token of `size` characters each call: it reaches the token lookup, and is rejected."""
    pad = "0" * (size - 4 - 32)
    return lambda: f"Bearer dapi{secrets.token_hex(16)}{pad}"


@pytest.mark.parametrize(
    ("size", "count", "status"),
    [
        # Past the Authorization limit: refused before anything is looked up or kept.
        pytest.param(16 * 1024, 20_000, 431, id="16KB-tokens"),
        # Just under it: looked up, rejected, and remembered, so this is what bounds the rejected cache.
        pytest.param(MAX_AUTHORIZATION_BYTES - 1024, 8_000, 401, id="7KB-tokens"),
    ],
)
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_distinct_junk_tokens_leave_memory_where_it_was(
    request: pytest.FixtureRequest, store: str, size: int, count: int, status: int
) -> None:
    server: LiveServer = request.getfixturevalue("small_server" if store == "sqlite" else "pg_server")
    assert server.proc is not None
    pid = server.proc.pid
    junk = _padded_pat(size)
    assert _junk_runs(server.port, 2_000, junk) == {status: 2_000}  # warm-up: pools, allocator arenas
    before = rss_bytes(pid)
    assert _junk_runs(server.port, count, junk) == {status: count}
    after = rss_bytes(pid)
    print(f"RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB after {count} distinct {size}-byte tokens")
    assert after - before < RSS_MARGIN, f"RSS grew by {(after - before) / 2**20:.0f} MiB ({count} requests)"


def test_an_oversized_authorization_gets_431_with_a_databricks_body(small_server: LiveServer) -> None:
    with small_server.client(token="dapi" + "f" * (MAX_AUTHORIZATION_BYTES + 1)) as c:
        assert_error(c.get(API), 431, "BAD_REQUEST", contains=f"limit is {MAX_AUTHORIZATION_BYTES}")
    # The valid admin token still works on the same server.
    with small_server.client() as c:
        assert c.get(API).status_code == 200
