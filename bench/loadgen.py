"""Closed-loop HTTP load: wrk when installed, else a Python (aiohttp + uvloop) fallback.

Both drive ``concurrency`` keep-alive connections, each sending the next POST as soon as the previous
answer arrived, for ``duration_s`` seconds, and report the same :class:`LoadResult`. wrk is the
preferred generator: the Python one spends far more CPU per request, and as it shares a core with
the fake upstream its own cost shows up in every number (the tables say which generator ran).

Run standalone (the fallback generator; prints ``LOADGEN_JSON {...}``)::

    BENCH_AUTHORIZATION="Bearer …" python bench/loadgen.py --url URL --body-file F --concurrency 64 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk_post.lua"
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


@dataclass
class LoadResult:
    """One measured run; latencies in milliseconds."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


def pin_prefix(cpus: str | None) -> list[str]:
    """``taskset -c CPUS`` when pinning is asked for and possible, else nothing."""
    if not cpus or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", cpus]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].split(" [")[0] if text else "wrk (unknown version)"


def _env(body_file: Path, authorization: str | None) -> dict[str, str]:
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    env.pop("BENCH_AUTHORIZATION", None)
    if authorization:
        env["BENCH_AUTHORIZATION"] = authorization
    return env


def _parse_marker(output: str, marker: str, what: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith(marker + " "):
            parsed: dict[str, Any] = json.loads(line[len(marker) + 1 :])
            return parsed
    raise RuntimeError(f"{what} printed no {marker} line:\n{output[-2000:]}")


def run_wrk(
    url: str,
    body_file: Path,
    authorization: str | None,
    *,
    concurrency: int,
    duration_s: int,
    threads: int = 1,
    cpus: str | None = None,
    timeout_s: int = 10,
) -> LoadResult:
    threads = max(1, min(threads, concurrency))
    cmd = [
        *pin_prefix(cpus), "wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration_s}s",
        f"--timeout={timeout_s}s", "-s", str(WRK_SCRIPT), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, env=_env(body_file, authorization), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited with {out.returncode}:\n{out.stdout}\n{out.stderr}")
    data = _parse_marker(out.stdout, "WRK_JSON", "wrk")
    lat = data["latency_us"]
    return LoadResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        errors={k: int(data["errors"][k]) for k in ERROR_KINDS},
    )


def run_python(
    url: str,
    body_file: Path,
    authorization: str | None,
    *,
    concurrency: int,
    duration_s: int,
    cpus: str | None = None,
    timeout_s: int = 10,
) -> LoadResult:
    """The fallback generator, in its own (pinned) process like wrk would be."""
    cmd = [
        *pin_prefix(cpus), sys.executable, str(Path(__file__).resolve()), "--url", url, "--body-file", str(body_file),
        "--concurrency", str(concurrency), "--duration", str(duration_s), "--timeout", str(timeout_s),
    ]  # fmt: skip
    out = subprocess.run(cmd, env=_env(body_file, authorization), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"python load generator exited with {out.returncode}:\n{out.stdout}\n{out.stderr}")
    data = _parse_marker(out.stdout, "LOADGEN_JSON", "the python load generator")
    return LoadResult(**data)


# ------------------------------------------------------------------------ the fallback generator itself
def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def _closed_loop(url: str, body: bytes, headers: dict[str, str], concurrency: int, duration_s: float,
                       timeout_s: float) -> LoadResult:  # fmt: skip
    import aiohttp

    latencies: list[float] = []
    errors = dict.fromkeys(ERROR_KINDS, 0)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + duration_s

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status >= 400:
                            errors["status"] += 1
                except TimeoutError:
                    errors["timeout"] += 1
                    continue
                except aiohttp.ClientConnectorError:
                    errors["connect"] += 1
                    continue
                except aiohttp.ClientError:
                    errors["read"] += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return LoadResult(
        requests=len(latencies),  # like wrk: every answered request, whatever its status
        duration_s=elapsed,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        errors=errors,
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it is, with uvicorn[standard]), else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Closed-loop POST load generator (the fallback when wrk is absent).")
    ap.add_argument("--url", required=True)
    ap.add_argument("--body-file", type=Path, required=True)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10, help="seconds")
    ap.add_argument("--timeout", type=float, default=10, help="per-request timeout in seconds")
    args = ap.parse_args(argv)
    headers = {"Content-Type": "application/json"}
    if os.environ.get("BENCH_AUTHORIZATION"):
        headers["Authorization"] = os.environ["BENCH_AUTHORIZATION"]
    body = args.body_file.read_bytes()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        result = runner.run(_closed_loop(args.url, body, headers, args.concurrency, args.duration, args.timeout))
    payload = {k: getattr(result, k) for k in ("requests", "duration_s", "p50_ms", "p90_ms", "p99_ms", "errors")}
    print("LOADGEN_JSON " + json.dumps(payload), flush=True)


if __name__ == "__main__":
    main()
