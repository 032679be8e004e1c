"""CPU scheduling of the server's helper threads: they must never preempt the thread that answers requests.

Under Linux's default policy a thread that wakes up preempts the running one on its core. The upstream I/O
thread wakes for every send and every answer, and the gateway writer for every batch; each time it took
the core from the event loop thread mid-request. At 64 requests in flight on one core that was 3.3 context
switches per request and about a quarter of the throughput (bench/proxy_bench.py). Under SCHED_BATCH a
thread still gets its fair share of the CPU; it just waits until the running thread blocks or uses up its
slice, then does all its ready work in one go. An idle event loop is blocked in epoll, so a lone request
is not delayed. Lowering one's own threads' priority needs no privileges; elsewhere than Linux these are
no-ops.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_TASKS = Path("/proc/self/task")


def _set_batch(tid: int) -> bool:
    """SCHED_BATCH for one thread (0: the calling one); False when it already was or cannot be."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return False
    try:
        if os.sched_getscheduler(tid) == policy:
            return False
        os.sched_setscheduler(tid, policy, os.sched_param(0))
    except OSError as exc:  # the thread ended meanwhile, or a sandbox forbids it: only a speed loss
        log.debug("could not set SCHED_BATCH on thread %s: %s", tid, exc)
        return False
    return True


def yield_to_request_thread() -> bool:
    """Call from a background thread (a writer, a poller) as it starts: it stops preempting requests."""
    return _set_batch(0)


def deprioritise_threads_named(prefix: str) -> int:
    """SCHED_BATCH for this process's threads whose name starts with `prefix` (threads a native library
    started, such as pyreqwest's Tokio runtime); returns how many changed."""
    if not _TASKS.is_dir():
        return 0
    changed = 0
    for task in _TASKS.iterdir():
        try:
            named = (task / "comm").read_text().startswith(prefix)
        except OSError:
            continue
        if named and _set_batch(int(task.name)):
            changed += 1
    return changed
