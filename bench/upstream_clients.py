"""Which HTTP client should modelgate use for upstream calls: aiohttp, httpx or pyreqwest?

Against the fake OpenAI upstream (its own process, pinned to ``--upstream-cpus``), this process (pinned
to ``--client-cpu``) sends N chat requests with 1 and 64 in flight through (a) one shared
``aiohttp.ClientSession`` (``TCPConnector``, keep-alive), (b) one shared ``httpx.AsyncClient`` (limits
above the concurrency) and (c) modelgate's own pyreqwest client (``modelgate.providers.http``: Rust's
reqwest, its I/O on a Tokio thread of this process), each run on a fresh event loop (uvloop when
installed), rotating which client goes first in each round. It prints requests/s, p50/p99 and the CPU
this process spent per request (all its threads) per client, and the ratios to aiohttp, and saves
bench/results/upstream-clients-latest.md. See bench/README.md.

    .venv/bin/python bench/upstream_clients.py [--requests 3000] [--concurrency 1,64] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import aiohttp
import httpx
import orjson
from loadgen import new_event_loop, percentile
from proxy_bench import (
    UPSTREAM_KEY,
    UPSTREAM_MODEL,
    ChildProcesses,
    chat_body,
    load_average,
    machine_facts,
    parse_concurrency,
    start_fake_upstream,
    terminate_as_interrupt,
)
from results_files import RESULTS, run_main, save_results

from modelgate.providers.http import new_http_client, post

CLIENTS = ("aiohttp", "httpx", "pyreqwest")
Send = Callable[[], Awaitable[None]]


@dataclass
class ClientRun:
    requests: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_s: float = 0.0  # this process's CPU time (every thread) during the run

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def _drive(send: Send, total: int, concurrency: int) -> ClientRun:
    """``total`` requests, ``concurrency`` in flight, each worker taking the next as soon as one is done."""
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                await send()
            except Exception:  # counted and shown; a run with errors is reported as failed
                errors += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)

    start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    latencies.sort()
    return ClientRun(len(latencies), elapsed, percentile(latencies, 50), percentile(latencies, 99), errors, cpu)


def _check(status: int, raw: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"HTTP {status}")
    orjson.loads(raw)  # the gateway parses every answer; so do both clients here


async def run_aiohttp(url: str, body: bytes, headers: dict[str, str], total: int, concurrency: int,
                      warmup: int) -> ClientRun:  # fmt: skip
    connector = aiohttp.TCPConnector(limit=max(100, concurrency), keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def send() -> None:
            async with session.post(url, data=body, headers=headers) as resp:
                _check(resp.status, await resp.read())

        await _drive(send, warmup, concurrency)
        return await _drive(send, total, concurrency)


async def run_httpx(url: str, body: bytes, headers: dict[str, str], total: int, concurrency: int,
                    warmup: int) -> ClientRun:  # fmt: skip
    limits = httpx.Limits(max_connections=max(100, concurrency), max_keepalive_connections=max(100, concurrency))
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def send() -> None:
            resp = await client.post(url, content=body, headers=headers)
            _check(resp.status_code, resp.content)

        await _drive(send, warmup, concurrency)
        return await _drive(send, total, concurrency)


async def run_pyreqwest(url: str, body: bytes, headers: dict[str, str], total: int, concurrency: int,
                        warmup: int) -> ClientRun:  # fmt: skip
    async with new_http_client(max_connections=max(100, concurrency), read_timeout_s=30) as client:

        async def send() -> None:
            resp = await post(client, url, body, headers, stream=False)
            _check(resp.status, await resp.read())

        await _drive(send, warmup, concurrency)
        return await _drive(send, total, concurrency)


RUNNERS = {"aiohttp": run_aiohttp, "httpx": run_httpx, "pyreqwest": run_pyreqwest}


def measure(client: str, upstream: str, total: int, concurrency: int) -> ClientRun:
    url = upstream + "/chat/completions"
    body = orjson.dumps(chat_body(UPSTREAM_MODEL))
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}
    warmup = max(concurrency * 2, total // 10)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:  # a fresh loop per client and run
        return runner.run(RUNNERS[client](url, body, headers, total, concurrency, warmup))


def render(runs: dict[tuple[str, int], list[ClientRun]], levels: list[int], header: dict[str, str], rounds: int,
           total: int) -> str:  # fmt: skip
    lines = ["# Upstream HTTP client: " + ", ".join(CLIENTS), ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += ["", f"## Medians of {rounds} round(s), {total} requests each", ""]
    lines += ["| in flight | client | requests/s | p50 ms | p99 ms | CPU ms/req | errors |"]
    lines += ["|--:|---|--:|--:|--:|--:|--:|"]
    med: dict[tuple[str, int], tuple[float, float, float, float]] = {}
    for c in levels:
        for name in CLIENTS:
            results = runs[(name, c)]
            rps = statistics.median(r.rps for r in results)
            p50 = statistics.median(r.p50_ms for r in results)
            p99 = statistics.median(r.p99_ms for r in results)
            cpu = statistics.median(r.cpu_ms_per_request for r in results)
            med[(name, c)] = (rps, p50, p99, cpu)
            errors = sum(r.errors for r in results)
            lines.append(f"| {c} | {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {cpu:.3f} | {errors} |")
    lines += [
        "",
        "Ratios to aiohttp (above 1: more requests/s; below 1: less latency or CPU).",
        "",
        "| in flight | client | requests/s | p50 | p99 | CPU per request |",
        "|--:|---|--:|--:|--:|--:|",
    ]
    for c in levels:
        base = med[("aiohttp", c)]
        for name in CLIENTS[1:]:
            m = med[(name, c)]
            cpu_ratio = f"{m[3] / base[3]:.2f}" if base[3] else "n/a"
            ratios = f"{m[0] / base[0]:.2f} | {m[1] / base[1]:.2f} | {m[2] / base[2]:.2f}"
            lines.append(f"| {c} | {name} | {ratios} | {cpu_ratio} |")
    lines += ["", "## Every round", ""]
    lines += ["| round | in flight | client | requests/s | p50 ms | p99 ms | CPU ms/req | errors |"]
    lines.append("|--:|--:|---|--:|--:|--:|--:|--:|")
    for c in levels:
        for name in CLIENTS:
            for i, r in enumerate(runs[(name, c)], 1):
                lines.append(
                    f"| {i} | {c} | {name} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                    f"{r.cpu_ms_per_request:.3f} | {r.errors} |"
                )
    return "\n".join(lines) + "\n"


def _loop_name() -> str:
    loop = new_event_loop()
    try:
        return f"{type(loop).__module__}.{type(loop).__name__}"
    finally:
        loop.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=3000, help="measured requests per run (default 3000)")
    ap.add_argument("--concurrency", type=parse_concurrency, default=[1, 64], help="requests in flight, e.g. 1,64")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the table shows medians (default 3)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 500 requests, 1 round, no files saved")
    ap.add_argument("--save", action="store_true", help="save the result files even with --quick")
    ap.add_argument("--client-cpu", type=int, default=0, help="CPU this process (both clients) is pinned to")
    ap.add_argument("--upstream-cpus", default="1", help="taskset CPUs for the fake upstream ('none': no pinning)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 500, 1
    if args.requests < 1 or args.rounds < 1:
        ap.error("--requests and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    upstream_cpus = None if args.upstream_cpus.lower() in ("", "none", "off") else args.upstream_cpus
    if args.client_cpu not in os.sched_getaffinity(0):
        sys.exit(f"CPU {args.client_cpu} is not available here ({sorted(os.sched_getaffinity(0))})")
    os.sched_setaffinity(0, {args.client_cpu})
    header = machine_facts()
    header["versions"] = (
        f"aiohttp {aiohttp.__version__}, httpx {httpx.__version__}, pyreqwest {version('pyreqwest')}, "
        f"event loop {_loop_name()}"
    )
    header["pinning"] = f"all clients (this process) on CPU {args.client_cpu}; fake upstream on CPU {upstream_cpus}"
    header["load average before"] = load_average()
    runs: dict[tuple[str, int], list[ClientRun]] = {(n, c): [] for n in CLIENTS for c in args.concurrency}
    with ChildProcesses() as procs, terminate_as_interrupt():
        upstream = start_fake_upstream(procs, upstream_cpus)
        for r in range(args.rounds):
            order = CLIENTS[r % len(CLIENTS) :] + CLIENTS[: r % len(CLIENTS)]
            for c in args.concurrency:
                for name in order:
                    run = measure(name, upstream, args.requests, c)
                    runs[(name, c)].append(run)
                    print(f"  round {r + 1}/{args.rounds} in flight {c:<3} {name:<7} {run.rps:8.0f} req/s  "
                          f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  "
                          f"CPU {run.cpu_ms_per_request:.3f} ms/req  errors {run.errors}",
                          file=sys.stderr, flush=True)  # fmt: skip
    header["load average after"] = load_average()
    text = render(runs, args.concurrency, header, args.rounds, args.requests)
    print(text)
    if not args.quick or args.save:
        save_results(text, "upstream-clients", args.out_dir)
    if any(r.errors for results in runs.values() for r in results):
        print("ERROR: some requests failed (see the errors column)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
