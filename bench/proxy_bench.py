"""Serving-core benchmark: what modelgate adds on top of calling the upstream directly.

Two targets, measured alternately in the same run on the same machine:

* ``direct``    load generator -> fake upstream ``POST /v1/chat/completions``;
* ``modelgate`` load generator -> modelgate ``POST /serving-endpoints/chat/completions`` (Bearer PAT, so
  auth is on) -> the same fake upstream, through an external-model endpoint (provider ``openai``).

modelgate is pinned to one CPU (``--gateway-cpus``, default 0: "each gateway on one core"); the fake
upstream and the load generator share another (``--client-cpus``, default 1). Each round runs every
concurrency level for both targets, alternating which goes first; the table shows the median of the
rounds, then the overhead rows and the issue's targets (added p50 <= 1 ms at c=1, throughput ratio
>= 0.5 at c=64). See bench/README.md.

    .venv/bin/python bench/proxy_bench.py [--concurrency 1,64] [--duration 10s] [--rounds 3] [--quick]
        [--ai-gateway FILE.json] [--label NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from loadgen import LoadResult, pin_prefix, run_python, run_wrk, wrk_available, wrk_version
from results_files import REPO, RESULTS, run_main, save_results

ENDPOINT = "bench-chat"
GATEWAY_ENDPOINT = "bench-chat-gateway"  # --compare-ai-gateway: the same upstream, the AI Gateway on
UPSTREAM_MODEL = "gpt-4o-mini"
UPSTREAM_KEY = "sk-bench-upstream"  # the fake upstream's key; not a secret
TARGETS = ("direct", "modelgate")
FLOOR_TARGETS = ("direct", "floor", "modelgate")  # --floor: also a bare uvicorn + pyreqwest forwarder
GATEWAY_ON = "modelgate+gateway"  # --compare-ai-gateway: GATEWAY_ENDPOINT on the same modelgate process
TARGET_GATEWAY_LOSS = 0.15  # issue 6: at most 15% less throughput with the AI Gateway features on
TARGET_ADDED_P50_MS = 1.0  # at concurrency 1
TARGET_RATIO = 0.5  # at concurrency 64


# ------------------------------------------------------------------------------------ child processes
class ChildProcesses:
    """Every process this bench starts, each in its own session so the whole group can be stopped."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, cmd: list[str], *, env: dict[str, str] | None = None, stdout: Any = None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()

    def __enter__(self) -> ChildProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so the ``finally`` blocks stop the children."""

    def _raise(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drain(stream: Any) -> None:
    for _ in iter(stream.readline, b""):
        pass


def start_fake_upstream(procs: ChildProcesses, cpus: str | None, api_key: str = UPSTREAM_KEY) -> str:
    """Start ``tests.fakes.openai_upstream`` and return its base URL (…/v1)."""
    cmd = [
        *pin_prefix(cpus), sys.executable, "-m", "tests.fakes.openai_upstream",
        "--port", "0", "--no-record", "--api-key", api_key,
    ]  # fmt: skip
    return start_ready_printer(procs, cmd) + "/v1"  # READY prints the root; the API is under --base-path


def start_floor(procs: ChildProcesses, cpus: str | None, upstream_base: str) -> str:
    """Start bench/floor_proxy.py (pinned like modelgate) and return its root URL."""
    cmd = [
        *pin_prefix(cpus), sys.executable, str(REPO / "bench" / "floor_proxy.py"),
        "--upstream", upstream_base, "--api-key", UPSTREAM_KEY, "--model", UPSTREAM_MODEL,
    ]  # fmt: skip
    return start_ready_printer(procs, cmd)


def start_ready_printer(procs: ChildProcesses, cmd: list[str]) -> str:
    """Start a server that prints ``READY <url>`` once listening; return that URL."""
    proc = procs.start(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            seen += line
            if line.startswith(b"READY "):
                threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
                return line.split()[1].decode()
        if proc.poll() is not None:
            break
    raise RuntimeError(f"{' '.join(cmd)} did not print READY:\n{seen.decode(errors='replace')}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_modelgate(procs: ChildProcesses, cpus: str | None, data_dir: Path, admin_token: str) -> str:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MODELGATE_ADMIN_TOKEN": admin_token, "PYTHONUNBUFFERED": "1"}
    env.pop("MODELGATE_DATABASE_URL", None)
    # The built-in embedding model would load (importing torch) in the background during the first runs;
    # this bench measures the proxy path only.
    env["MODELGATE_EXPOSE_DEFAULT_MODELS"] = "0"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    cmd = [
        *pin_prefix(cpus), sys.executable, "-m", "modelgate", "serve",
        "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        proc = procs.start(cmd, env=env, stdout=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return url
        time.sleep(0.1)
    raise RuntimeError(f"modelgate did not become healthy:\n{log_path.read_text(errors='replace')[-4000:]}")


def configure_endpoint(
    gateway: str, admin_token: str, upstream_base: str, ai_gateway: dict[str, Any] | None, name: str = ENDPOINT
) -> None:
    """Create the external-model endpoint (and put the AI Gateway config, if any) over REST."""
    entity = {
        "name": "openai",
        "external_model": {
            "name": UPSTREAM_MODEL,
            "provider": "openai",
            "task": "llm/v1/chat",
            "openai_config": {"openai_api_base": upstream_base, "openai_api_key_plaintext": UPSTREAM_KEY},
        },
    }
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as client:
        body = {"name": name, "config": {"served_entities": [entity]}}
        resp = client.post("/api/2.0/serving-endpoints", json=body)
        _expect_ok(resp, "creating the endpoint")
        if ai_gateway is not None:
            _expect_ok(client.put(f"/api/2.0/serving-endpoints/{name}/ai-gateway", json=ai_gateway), "ai-gateway")


def _expect_ok(resp: httpx.Response, what: str) -> None:
    if resp.status_code != 200:
        raise RuntimeError(f"{what} failed: HTTP {resp.status_code} {resp.text[:2000]}")


# ------------------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    name: str
    url: str
    authorization: str
    body_file: Path


def chat_body(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def make_targets(
    work: Path,
    upstream_base: str,
    gateway: str,
    admin_token: str,
    floor: str | None = None,
    gateway_on: str | None = None,
) -> dict[str, Target]:
    targets = {}
    wanted = [
        ("direct", upstream_base + "/chat/completions", f"Bearer {UPSTREAM_KEY}", UPSTREAM_MODEL),
        ("modelgate", gateway + "/serving-endpoints/chat/completions", f"Bearer {admin_token}", ENDPOINT),
    ]
    if floor is not None:
        wanted.append(("floor", floor + "/chat/completions", "", UPSTREAM_MODEL))
    if gateway_on is not None:
        url = gateway_on + "/serving-endpoints/chat/completions"
        wanted.append((GATEWAY_ON, url, f"Bearer {admin_token}", GATEWAY_ENDPOINT))
    for name, url, auth, model in wanted:
        body_file = work / f"body-{name}.json"
        body_file.write_text(json.dumps(chat_body(model)))
        targets[name] = Target(name, url, auth, body_file)
    return targets


def check_target(target: Target) -> None:
    """One request by hand: both targets must answer 200 with the fake's echo before any load."""
    headers = {"Authorization": target.authorization, "Content-Type": "application/json"}
    resp = httpx.post(target.url, content=target.body_file.read_bytes(), headers=headers, timeout=30)
    _expect_ok(resp, f"the {target.name} probe request")
    content = resp.json()["choices"][0]["message"]["content"]
    if content != "echo: hello":
        raise RuntimeError(f"the {target.name} probe got an unexpected answer: {content!r}")


def probe(target: Target) -> str:
    """Status and start of the body of one request, to show why a run had errors."""
    headers = {"Authorization": target.authorization, "Content-Type": "application/json"}
    try:
        resp = httpx.post(target.url, content=target.body_file.read_bytes(), headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"HTTP {resp.status_code} {resp.text[:500]}"


# ----------------------------------------------------------------------------------------- measuring
@dataclass
class Options:
    concurrency: list[int]
    duration_s: int
    warmup_s: int
    rounds: int
    threads: int
    gateway_cpus: str | None
    client_cpus: str | None
    use_wrk: bool
    targets: tuple[str, ...] = TARGETS
    compare_ai_gateway: dict[str, Any] | None = None  # the config of the GATEWAY_ON target


def measure(target: Target, concurrency: int, duration_s: int, opts: Options) -> LoadResult:
    kwargs: dict[str, Any] = {"concurrency": concurrency, "duration_s": duration_s, "cpus": opts.client_cpus}
    if opts.use_wrk:
        return run_wrk(target.url, target.body_file, target.authorization, threads=opts.threads, **kwargs)
    return run_python(target.url, target.body_file, target.authorization, **kwargs)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and all its threads so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


@dataclass
class Run:
    """One measured run, plus the CPU time each server spent per request during it (ms, None if unknown).

    CPU per request hardly depends on how busy the machine is, unlike latency and throughput, so it is the
    steadiest number a shared machine gives: 1000 / (gateway CPU ms per request) bounds what one core can serve.
    """

    load: LoadResult
    gateway_cpu_ms: float | None
    upstream_cpu_ms: float | None


@dataclass(frozen=True)
class Pids:
    gateways: dict[str, int]  # target name -> the pid of the gateway it goes through
    upstream: int


Runs = dict[tuple[str, int], list[Run]]


def _per_request_ms(before: float | None, after: float | None, requests: int) -> float | None:
    if before is None or after is None or requests == 0:
        return None
    return (after - before) * 1000 / requests


def measure_cpu(target: Target, concurrency: int, opts: Options, pids: Pids) -> Run:
    gateway_pid = pids.gateways.get(target.name)
    gw0 = cpu_seconds(gateway_pid) if gateway_pid else None
    up0 = cpu_seconds(pids.upstream)
    load = measure(target, concurrency, opts.duration_s, opts)
    gw1 = cpu_seconds(gateway_pid) if gateway_pid else None
    up1 = cpu_seconds(pids.upstream)
    return Run(load, _per_request_ms(gw0, gw1, load.requests), _per_request_ms(up0, up1, load.requests))


def run_rounds(targets: dict[str, Target], opts: Options, pids: Pids) -> Runs:
    for c in opts.concurrency:  # warm up: connection pools, caches, TCP windows, lazily imported code
        for name in opts.targets:
            measure(targets[name], c, opts.warmup_s, opts)
    runs: Runs = {(name, c): [] for name in opts.targets for c in opts.concurrency}
    for r in range(opts.rounds):
        order = opts.targets if r % 2 == 0 else opts.targets[::-1]
        for c in opts.concurrency:
            for name in order:
                run = measure_cpu(targets[name], c, opts, pids)
                runs[(name, c)].append(run)
                if name == GATEWAY_ON:
                    time.sleep(1.0)  # the writer flushes every 0.25 s: its rows are not the next target's CPU
                print(
                    f"  round {r + 1}/{opts.rounds} c={c:<3} {name:<9} {run.load.rps:9.0f} req/s  "
                    f"p50 {run.load.p50_ms:7.2f} ms  p99 {run.load.p99_ms:7.2f} ms  "
                    f"gateway CPU/req {_ms(run.gateway_cpu_ms)}  errors {run.load.error_total}",
                    file=sys.stderr,
                    flush=True,
                )
    return runs


@dataclass
class Summary:
    rps: float
    p50: float
    p90: float
    p99: float
    errors: int
    gateway_cpu_ms: float | None
    upstream_cpu_ms: float | None


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summarize(runs: list[Run]) -> Summary:
    """Median of each metric over the rounds; errors are the total over all rounds."""
    return Summary(
        rps=statistics.median(r.load.rps for r in runs),
        p50=statistics.median(r.load.p50_ms for r in runs),
        p90=statistics.median(r.load.p90_ms for r in runs),
        p99=statistics.median(r.load.p99_ms for r in runs),
        errors=sum(r.load.error_total for r in runs),
        gateway_cpu_ms=_median([r.gateway_cpu_ms for r in runs]),
        upstream_cpu_ms=_median([r.upstream_cpu_ms for r in runs]),
    )


# ------------------------------------------------------------------------------------------ reporting
def machine_facts() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        if match:
            cpu = match.group(1).strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version() + f" ({platform.python_implementation()})",
        "os": f"{platform.system()} {platform.release()}",
        "commit": _git_commit(),
        "modelgate imported from": _modelgate_source(),
    }


def _modelgate_source() -> str:
    """Where the served modelgate comes from (PYTHONPATH may point at another checkout)."""
    code = "import modelgate, pathlib; print(pathlib.Path(modelgate.__file__).parent.parent)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def _git_commit() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" (+ uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "unknown"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(runs: Runs, opts: Options, header: dict[str, str]) -> str:
    lines = [f"# modelgate proxy benchmark{' — ' + header['label'] if header.get('label') else ''}", ""]
    lines += [f"- {key}: {value}" for key, value in header.items() if key != "label"]
    lines += ["", f"## Medians of {opts.rounds} round(s), {opts.duration_s} s each", ""]
    lines += [
        "| target | concurrency | requests/s | p50 ms | p90 ms | p99 ms | errors "
        "| gateway CPU ms/req | upstream CPU ms/req |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    summary = {key: summarize(results) for key, results in runs.items()}
    for c in opts.concurrency:
        for name in opts.targets:
            s = summary[(name, c)]
            lines.append(
                f"| {name} | {c} | {s.rps:.0f} | {s.p50:.2f} | {s.p90:.2f} | {s.p99:.2f} | {s.errors} "
                f"| {_ms(s.gateway_cpu_ms)} | {_ms(s.upstream_cpu_ms)} |"
            )
    lines += ["", "## Overhead (modelgate - direct) and the issue's targets", ""]
    lines += ["| metric | concurrency | value | target | result |", "|---|--:|--:|---|---|"]
    for c in opts.concurrency:
        d, m = summary[("direct", c)], summary[("modelgate", c)]
        added_p50, added_p99 = m.p50 - d.p50, m.p99 - d.p99
        ratio = m.rps / d.rps if d.rps else 0.0
        p50_target = ("≤ 1 ms", _verdict(added_p50 <= TARGET_ADDED_P50_MS)) if c == 1 else ("", "")
        ratio_target = ("≥ 0.5", _verdict(ratio >= TARGET_RATIO)) if c == 64 else ("", "")
        lines.append(f"| added p50 | {c} | {added_p50:+.2f} ms | {p50_target[0]} | {p50_target[1]} |")
        lines.append(f"| added p99 | {c} | {added_p99:+.2f} ms |  |  |")
        lines.append(
            f"| throughput ratio modelgate/direct | {c} | {ratio:.2f} | {ratio_target[0]} | {ratio_target[1]} |"
        )
        if m.gateway_cpu_ms:
            ceiling = 1000 / m.gateway_cpu_ms
            value = f"{m.gateway_cpu_ms:.3f} ms (one core: ≤ {ceiling:.0f} req/s)"
            lines.append(f"| modelgate CPU per request | {c} | {value} |  |  |")
        if ("floor", c) in summary:
            f = summary[("floor", c)]
            lines.append(f"| throughput ratio floor/direct | {c} | {f.rps / d.rps if d.rps else 0.0:.2f} |  |  |")
            lines.append(f"| throughput ratio modelgate/floor | {c} | {m.rps / f.rps if f.rps else 0.0:.2f} |  |  |")
            if f.gateway_cpu_ms and m.gateway_cpu_ms:
                own = m.gateway_cpu_ms - f.gateway_cpu_ms
                lines.append(f"| modelgate CPU above the floor | {c} | {own:+.3f} ms |  |  |")
        if (GATEWAY_ON, c) in summary:
            g = summary[(GATEWAY_ON, c)]
            # Each round runs both endpoints back to back, so a round's ratio cancels the machine's slow drifts,
            # which move the medians of each side by more than the effect (±15% between rounds here).
            losses = [
                1 - on.load.rps / off.load.rps
                for off, on in zip(runs[("modelgate", c)], runs[(GATEWAY_ON, c)], strict=True)
                if off.load.rps
            ]
            loss = statistics.median(losses) if losses else 0.0
            verdict = _verdict(loss <= TARGET_GATEWAY_LOSS) if c == 64 else ""
            lines.append(
                f"| throughput lost with the AI Gateway on (median of rounds) | {c} | {loss:.1%} "
                f"| {'≤ 15%' if c == 64 else ''} | {verdict} |"
            )
            every = ", ".join(f"{x:.1%}" for x in losses)
            lines.append(f"| ... in each round | {c} | {every} |  |  |")
            if g.gateway_cpu_ms and m.gateway_cpu_ms:
                extra = g.gateway_cpu_ms - m.gateway_cpu_ms
                lines.append(f"| CPU the AI Gateway adds per request | {c} | {extra:+.3f} ms |  |  |")
    if 1 not in opts.concurrency or 64 not in opts.concurrency:
        lines.append("\nThe targets are defined at concurrency 1 and 64; a level missing from this run has no verdict.")
    lines += ["", "## Every round", ""]
    lines += [
        "| round | target | concurrency | requests/s | p50 ms | p99 ms | errors | gateway CPU ms/req |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for c in opts.concurrency:
        for name in opts.targets:
            for i, run in enumerate(runs[(name, c)], 1):
                r = run.load
                errs = ", ".join(f"{k} {v}" for k, v in r.errors.items() if v) or "0"
                lines.append(
                    f"| {i} | {name} | {c} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {errs} "
                    f"| {_ms(run.gateway_cpu_ms)} |"
                )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main
def parse_duration(text: str) -> int:
    """``10s``, ``1m``, ``10`` -> whole seconds (wrk takes whole seconds)."""
    match = re.fullmatch(r"\s*(\d+)\s*(s|m)?\s*", text)
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"not a duration in whole seconds: {text!r} (e.g. 10s, 1m)")
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def parse_concurrency(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be positive integers")
    return levels


def _cpus_or_none(text: str) -> str | None:
    return None if text.lower() in ("", "none", "off") else text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--concurrency", type=parse_concurrency, default=[1, 64], help="levels, e.g. 1,64")
    ap.add_argument("--duration", type=parse_duration, default=10, help="per measured run (default 10s)")
    ap.add_argument("--warmup", type=parse_duration, default=3, help="per target and level, discarded (default 3s)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the table shows medians (default 3)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 s runs, 1 s warm-up, 1 round, no files saved")
    ap.add_argument("--save", action="store_true", help="save the result files even with --quick")
    ap.add_argument("--label", default=None, help="names the run in the header and the file name")
    ap.add_argument("--ai-gateway", type=Path, default=None, help="AI Gateway config JSON to PUT before measuring")
    ap.add_argument("--gateway-cpus", type=_cpus_or_none, default="0", help="taskset CPUs for modelgate ('none')")
    ap.add_argument("--client-cpus", type=_cpus_or_none, default="1", help="CPUs for the upstream and load generator")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--python-loadgen", action="store_true", help="use the Python load generator even if wrk exists")
    ap.add_argument(
        "--floor", action="store_true", help="also measure bench/floor_proxy.py: uvicorn + pyreqwest and nothing else"
    )
    ap.add_argument(
        "--compare-ai-gateway",
        type=Path,
        default=None,
        help="also measure a second endpoint of the same modelgate with this AI Gateway config (issue 6's 15%% target)",
    )
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 3, 1, 1
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def _cpus_text(cpus: str | None) -> str:
    return f"CPU {cpus}" if cpus else "any CPU (not pinned)"


def _check_cpus(*specs: str | None) -> None:
    available = os.sched_getaffinity(0)
    for spec in specs:
        if spec is None:
            continue
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            wanted = set(range(int(lo), int(hi or lo) + 1))
            if not wanted <= available:
                sys.exit(f"CPU(s) {spec} not available here (this process may use {sorted(available)}); see --help")


def run_bench(opts: Options, ai_gateway: dict[str, Any] | None) -> Runs:
    """Start the fake upstream and modelgate (and the floor), configure the endpoint, probe the targets, measure."""
    admin_token = "dapi" + secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="modelgate-bench-") as tmp, ChildProcesses() as procs:
        work = Path(tmp)
        upstream = start_fake_upstream(procs, opts.client_cpus)
        upstream_pid = procs.procs[-1].pid  # taskset execs, so this is the server's own pid
        gateway = start_modelgate(procs, opts.gateway_cpus, work / "data", admin_token)
        gateways = {"modelgate": procs.procs[-1].pid}
        floor = None
        if "floor" in opts.targets:
            floor = start_floor(procs, opts.gateway_cpus, upstream)
            gateways["floor"] = procs.procs[-1].pid
        gateway_on = None
        if GATEWAY_ON in opts.targets:
            # A second endpoint on the same process, not a second process: two processes of the same build
            # differed by up to 9% in requests/s, more than what is being measured.
            gateway_on = gateway
            gateways[GATEWAY_ON] = gateways["modelgate"]
            configure_endpoint(gateway, admin_token, upstream, opts.compare_ai_gateway, GATEWAY_ENDPOINT)
        pids = Pids(gateways=gateways, upstream=upstream_pid)
        configure_endpoint(gateway, admin_token, upstream, ai_gateway)
        targets = make_targets(work, upstream, gateway, admin_token, floor, gateway_on)
        for target in targets.values():
            check_target(target)
        runs = run_rounds(targets, opts, pids)
        for name, c in (key for key, results in runs.items() if any(r.load.error_total for r in results)):
            print(f"ERROR: {name} c={c} had failed requests; one more now answers: {probe(targets[name])}",
                  file=sys.stderr)  # fmt: skip
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _check_cpus(args.gateway_cpus, args.client_cpus)
    pinning = shutil.which("taskset") is not None
    use_wrk = wrk_available() and not args.python_loadgen
    if not use_wrk:
        print(
            "NOTE: wrk not found (or --python-loadgen): using the Python load generator, which costs far more CPU per "
            "request on the client core; install wrk (apt-get install -y wrk) for the real numbers.",
            file=sys.stderr,
        )
    ai_gateway = json.loads(args.ai_gateway.read_text()) if args.ai_gateway else None
    targets = FLOOR_TARGETS if args.floor else TARGETS
    if args.compare_ai_gateway:
        targets = (*targets, GATEWAY_ON)
    opts = Options(
        args.concurrency, args.duration, args.warmup, args.rounds, args.threads, args.gateway_cpus, args.client_cpus,
        use_wrk, targets, json.loads(args.compare_ai_gateway.read_text()) if args.compare_ai_gateway else None,
    )  # fmt: skip
    header = {"label": args.label or "", **machine_facts()}
    header["load generator"] = (
        f"{wrk_version()} (-t{args.threads}, closed loop, one keep-alive connection per concurrent request)"
        if use_wrk
        else "Python aiohttp fallback (bench/loadgen.py) — wrk was not available; client-side cost is inflated"
    )
    gateway_on, client_on = _cpus_text(args.gateway_cpus), _cpus_text(args.client_cpus)
    header["pinning"] = (
        f"modelgate on {gateway_on}; fake upstream + load generator on {client_on}"
        if pinning
        else "none (taskset not found)"
    )
    header["ai_gateway"] = str(args.ai_gateway) if args.ai_gateway else "none"
    if args.compare_ai_gateway:
        header[GATEWAY_ON] = (
            f"the same modelgate process, endpoint {GATEWAY_ENDPOINT} with {args.compare_ai_gateway}; "
            "after its runs the writer's rows are flushed before the next target is timed"
        )
    header["load average before"] = load_average()
    with terminate_as_interrupt():
        runs = run_bench(opts, ai_gateway)
    header["load average after"] = load_average()
    text = render(runs, opts, header)
    print(text)
    if not args.quick or args.save:
        save_results(text, "proxy", args.out_dir, args.label)
    failed = [f"{name} c={c}" for (name, c), results in runs.items() if any(r.load.error_total for r in results)]
    if failed:
        print(f"ERROR: requests failed in: {', '.join(failed)} (see the errors column)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
