"""AI Gateway cost in instructions: modelgate under callgrind, a plain endpoint against a gateway-on one.

Throughput on a shared machine moves by ±30% between runs (steal time, a neighbour's cache use), more than
the gateway's own cost. Instructions do not depend on the neighbours. This bench runs one modelgate
process under valgrind's callgrind, with two endpoints on the same fake upstream: `bench-chat`, with
nothing on, and `bench-chat-gateway`, with `bench/gateway-on.json` (usage tracking, an inference table,
a rate limit). It loads them in turn with wrk and, after each run, has callgrind dump the instructions of
every thread since the last dump: the event loop, pyreqwest's I/O thread and the gateway writer. It prints
instructions per request for each, and what the gateway adds.

The counts are a proxy for CPU time: cache misses and IPC are not in them. A run also counts what the
server does without load (timers, the writer waking, the settling described below, a /metrics scrape):
~60 M instructions, as much as 100 requests. Under callgrind the number of requests one run serves moves
by 2x, so each round also measures a run without load, and that (the median) is taken off every run's
count before dividing by its requests. What still moves the counts a little:
- the load's dynamics: how many requests one event-loop turn serves;
- how many rows one writer batch holds.
Under callgrind modelgate runs ~50 times slower, so the writer's flush interval is raised (default 5 s,
`MODELGATE_GATEWAY_FLUSH_INTERVAL_S`): its batches then hold about as many rows as at full speed. After
every run the bench idles 1.5 flush intervals (and checks that the writer wrote that run's rows), on both
endpoints alike, so the idle server's own work counts the same on each side.

    .venv/bin/python bench/gateway_instructions.py [--rounds 2] [--duration 15s] [--concurrency 8]

Needs valgrind (Debian's package) and wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from loadgen import pin_prefix, run_wrk
from proxy_bench import (
    ENDPOINT,
    GATEWAY_ENDPOINT,
    ChildProcesses,
    _free_port,
    chat_body,
    configure_endpoint,
    machine_facts,
    parse_duration,
    start_fake_upstream,
    terminate_as_interrupt,
)
from results_files import REPO, RESULTS, run_main, save_results

GATEWAY_CONFIG = REPO / "bench" / "gateway-on.json"
TARGET_GATEWAY_LOSS = 0.15  # issue 6


@dataclass(frozen=True)
class Sample:
    endpoint: str  # or IDLE: a run without load
    requests: int
    instructions: int

    def per_request(self, idle: float) -> float:
        """Instructions per request, less what a run costs without any load (`idle`)."""
        return (self.instructions - idle) / self.requests


IDLE = "idle"


def start_under_callgrind(
    procs: ChildProcesses, out_dir: Path, data_dir: Path, admin: str, flush_s: float
) -> tuple[str, int]:
    port = _free_port()
    env = {
        **os.environ,
        "MODELGATE_ADMIN_TOKEN": admin,
        "MODELGATE_EXPOSE_DEFAULT_MODELS": "0",
        "MODELGATE_GATEWAY_FLUSH_INTERVAL_S": str(flush_s),
        "PYTHONUNBUFFERED": "1",
        "PYTHONHASHSEED": "0",  # the same dict layouts every run
    }
    env.pop("MODELGATE_DATABASE_URL", None)
    cmd = [
        *pin_prefix("0"), "valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.%p",
        sys.executable, "-m", "modelgate", "serve", "--port", str(port), "--data-dir", str(data_dir),
        "--log-level", "warning",
    ]  # fmt: skip
    with (data_dir / "server.log").open("ab") as log:
        proc = procs.start(cmd, env=env, stdout=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=10).status_code == 200:
                return url, proc.pid
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"modelgate under callgrind did not become healthy; see {data_dir / 'server.log'}")


def dump_instructions(pid: int, out_dir: Path) -> int:
    """Have callgrind write what it counted since the last dump; the instructions of all threads."""
    before = set(out_dir.glob("callgrind.*"))
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(out_dir.glob("callgrind.*")) - before
        totals = [_totals(path) for path in new]
        if new and all(t is not None for t in totals):
            return sum(t for t in totals if t is not None)
        time.sleep(0.5)
    raise RuntimeError("callgrind wrote no dump within 60 s")


def _totals(path: Path) -> int | None:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return None


def rows_recorded(gateway_config: dict[str, object]) -> int:
    """Rows the writer writes per request: a usage row, a payload row, or both (no sampling in the bench)."""
    return sum(
        bool((gateway_config.get(part) or {}).get("enabled"))  # type: ignore[union-attr]
        for part in ("usage_tracking_config", "inference_table_config")
    )


def rows_written(url: str, admin: str) -> float:
    """The gateway writer's rows written so far (its metric)."""
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {admin}"}, timeout=60).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("modelgate_gateway_rows_written_total")
    )


def measure(args: argparse.Namespace) -> tuple[list[Sample], dict[str, str]]:
    admin = "dapi" + secrets.token_hex(16)
    gateway_config = json.loads(args.ai_gateway.read_text())
    with ChildProcesses() as procs, terminate_as_interrupt():
        work = Path(tempfile.mkdtemp(prefix="modelgate-instr-"))
        upstream = start_fake_upstream(procs, "1")
        print("starting modelgate under callgrind (a minute or two) ...", file=sys.stderr)
        url, pid = start_under_callgrind(procs, work, work, admin, args.flush_interval)
        configure_endpoint(url, admin, upstream, None)
        configure_endpoint(url, admin, upstream, gateway_config, name=GATEWAY_ENDPOINT)
        target = url + "/serving-endpoints/chat/completions"
        bodies = {}
        for name in (ENDPOINT, GATEWAY_ENDPOINT):
            bodies[name] = work / f"body-{name}.json"
            bodies[name].write_text(json.dumps(chat_body(name)))
        rows_per_request = rows_recorded(gateway_config)
        rows = 0
        # Every run, gateway or not, then idles as long (the writer flushes within it) and is checked with one
        # /metrics scrape, counted in the next run: the same extra work on both sides.
        settle_s = 1.5 * args.flush_interval + 2

        def run(name: str, duration_s: int) -> tuple[int, int]:
            nonlocal rows
            requests = 0
            if name == IDLE:
                time.sleep(duration_s)
            else:
                load = run_wrk(target, bodies[name], f"Bearer {admin}", threads=1, concurrency=args.concurrency,
                               duration_s=duration_s, cpus="1")  # fmt: skip
                if any(load.errors.values()):
                    raise RuntimeError(f"{name}: errors under load: {load.errors}")
                requests = load.requests
            if name == GATEWAY_ENDPOINT:
                rows += rows_per_request * requests
            time.sleep(settle_s)
            instructions = dump_instructions(pid, work)
            written = rows_written(url, admin)
            if written < rows:
                raise RuntimeError(
                    f"the writer had written {written:.0f} of {rows} rows {settle_s:.0f} s after the run"
                )
            return requests, instructions

        print("warming up ...", file=sys.stderr)
        for name in bodies:
            run(name, 5)
        samples: list[Sample] = []
        for round_no in range(args.rounds):
            order = (ENDPOINT, GATEWAY_ENDPOINT) if round_no % 2 == 0 else (GATEWAY_ENDPOINT, ENDPOINT)
            for name in (IDLE, *order):
                sample = Sample(name, *run(name, args.duration))
                samples.append(sample)
                print(f"round {round_no + 1} {name}: {sample.instructions:,} instructions,"
                      f" {sample.requests} requests", file=sys.stderr)  # fmt: skip
        if args.keep_dumps:
            print(f"callgrind dumps kept in {work} (one per run, in order)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return samples, machine_facts()


def render(samples: list[Sample], args: argparse.Namespace, facts: dict[str, str]) -> str:
    idle = statistics.median(s.instructions for s in samples if s.endpoint == IDLE)

    def median(name: str) -> float:
        return statistics.median(s.per_request(idle) for s in samples if s.endpoint == name)

    off, on = median(ENDPOINT), median(GATEWAY_ENDPOINT)
    lost = 1 - off / on
    lines = [
        "# modelgate AI Gateway cost in instructions (callgrind)",
        "",
        *(f"- {k}: {v}" for k, v in facts.items()),
        f"- load: wrk, {args.concurrency} connections, {args.duration} s per run, {args.rounds} rounds, alternating",
        f"- writer flush interval under callgrind: {args.flush_interval} s",
        f"- gateway config: {_shown(args.ai_gateway)}",
        "",
        "| endpoint | instructions/request (median) | every round |",
        "|---|--:|---|",
    ]
    for name in (ENDPOINT, GATEWAY_ENDPOINT):
        rounds = ", ".join(f"{s.per_request(idle):,.0f}" for s in samples if s.endpoint == name)
        lines.append(f"| {name} | {median(name):,.0f} | {rounds} |")
    idle_runs = ", ".join(f"{s.instructions / 1e6:,.1f} M" for s in samples if s.endpoint == IDLE)
    lines += [
        "",
        f"- A run without load ({args.duration} s, then the same settling and scrape) costs {idle / 1e6:,.1f} M"
        f" instructions (median; every round: {idle_runs}); each run's count is taken less that before"
        " dividing by its requests, so the idle server's own work does not weigh more in a slower run.",
        f"- The AI Gateway adds {on - off:,.0f} instructions per request (+{(on - off) / off:.1%}).",
        f"- At equal instructions per cycle, throughput on one core would drop by {lost:.1%} "
        f"(target ≤ {TARGET_GATEWAY_LOSS:.0%}: {'PASS' if lost <= TARGET_GATEWAY_LOSS else 'FAIL'}).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=parse_duration, default=15, help="per run (default 15s)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--flush-interval", type=float, default=5.0, help="the writer's, in seconds (default 5)")
    ap.add_argument("--ai-gateway", type=Path, default=GATEWAY_CONFIG, help="the gateway endpoint's AI Gateway config")
    ap.add_argument("--keep-dumps", action="store_true", help="keep callgrind's dumps (to see what a run cost)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main() -> int:
    args = parse_args()
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed; on Debian: apt-get install -y valgrind wrk", file=sys.stderr)
            return 2
    samples, facts = measure(args)
    text = render(samples, args, facts)
    print(text)
    save_results(text, "gateway-instructions", args.out_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
