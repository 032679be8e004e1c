"""The upstream client's I/O thread runs under SCHED_BATCH, so its wake-ups never preempt request handling.

bench/proxy_bench.py showed why: at 64 requests in flight on one core, the default policy cost 3.3 context
switches per request and about a quarter of the throughput.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from modelgate.providers.http import IO_THREAD_PREFIX, keep_io_threads_from_preempting, new_http_client
from tests.support.live import LiveServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")


def io_thread_policies(pid: int | str) -> dict[int, int]:
    """Each pyreqwest I/O thread of a process, with its scheduling policy."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().startswith(IO_THREAD_PREFIX):
            out[int(task.name)] = os.sched_getscheduler(int(task.name))
    return out


def test_a_new_client_puts_its_io_thread_under_sched_batch() -> None:
    async def build_and_close() -> dict[int, int]:
        client = new_http_client(max_connections=4, read_timeout_s=5)
        try:
            return io_thread_policies("self")
        finally:
            await client.close()

    policies = asyncio.run(build_and_close())
    assert policies, "pyreqwest started no I/O thread"
    assert set(policies.values()) == {os.SCHED_BATCH}
    # Already done: a second call changes nothing; the request thread itself keeps the default policy.
    assert keep_io_threads_from_preempting() == 0
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_the_live_server_io_thread_is_sched_batch(server: LiveServer) -> None:
    assert server.proc is not None
    policies = io_thread_policies(server.proc.pid)
    assert policies, "the server has no pyreqwest I/O thread"
    assert set(policies.values()) == {os.SCHED_BATCH}
    main_thread_policy = os.sched_getscheduler(server.proc.pid)
    assert main_thread_policy == os.SCHED_OTHER
