"""Local-engine benchmark: tokens/s of modelgate's transformers engine beside a plain generate() loop.

Issue 5's "Done when": on the same random-weight Llama, in the same run, alternately,

* ``generate() loop``  a plain transformers ``model.generate()`` in a process of its own (bench/generate_loop.py):
  one prompt, greedy, ``max_new_tokens=M`` -> tokens/s; a padded batch of 8 copies -> aggregate tokens/s;
* ``modelgate``        ``python -m modelgate serve`` with the model in its config file's ``models:``, queried with
  the openai client over HTTP: one streaming request at a time -> completion_tokens / wall time; 8 streaming
  requests sent at once -> aggregate tokens/s.

Both processes are pinned to the same CPUs (``--cpus``) and measured one after the other, never at once. The
table shows medians over the rounds and the issue's targets: modelgate's single stream within 10% of the
plain loop (ratio >= 0.9), and modelgate at 8 concurrent >= 3x its single stream. See bench/README.md.

    .venv/bin/python bench/local_tokens_bench.py [--size medium|small] [--max-tokens 128] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
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
from typing import Any

import httpx
from bench_model import SIZES, build_model, describe
from loadgen import pin_prefix
from proxy_bench import (
    ChildProcesses,
    _check_cpus,
    _free_port,
    cpu_seconds,
    load_average,
    machine_facts,
    terminate_as_interrupt,
)
from results_files import REPO, RESULTS, run_main, save_results

MODEL = "bench-llama"
ENDPOINT = "databricks-bench-llama"
LOOP, GATE = "generate() loop", "modelgate"
TARGETS = (LOOP, GATE)
TARGET_SINGLE_RATIO = 0.9  # modelgate single stream / generate() loop single stream
TARGET_SCALING = 3.0  # modelgate at 8 concurrent / modelgate single stream
PROMPT = (
    "Write a Python function that reads a configuration file, checks every value against a schema, fills in "
    "defaults for missing keys and raises a clear error that names the key and the expected type for each bad "
    "value. Explain the design in a few sentences first."
)
MESSAGES: Any = [{"role": "user", "content": PROMPT}]  # Any: the openai client types messages strictly


@dataclass
class Sample:
    """One measured run: `tokens` new tokens in all, `seconds` of wall time, TTFTs of its requests or rows."""

    tokens: int
    seconds: float
    ttft_s: list[float]
    cpu_s: float | None  # CPU time the serving process (all threads) used during the run

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_token(self) -> float | None:
        return None if self.cpu_s is None or not self.tokens else self.cpu_s * 1000 / self.tokens


class BenchError(RuntimeError):
    """A run that did not produce what it should (wrong token count, HTTP error): no result."""


# ------------------------------------------------------------------------------------------- baseline
class GenerateLoop:
    """The baseline child process: one line `<batch>` in, one `RESULT {...}` line out."""

    def __init__(
        self, procs: ChildProcesses, cpus: str | None, model: Path, max_tokens: int, dtype: str, threads: str
    ) -> None:
        cmd = [
            *pin_prefix(cpus), sys.executable, str(REPO / "bench" / "generate_loop.py"),
            "--model", str(model), "--messages", json.dumps(MESSAGES), "--max-tokens", str(max_tokens),
            "--dtype", dtype,
        ]  # fmt: skip
        env = {**child_env(threads), "PYTHONPATH": _pythonpath()}
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        procs.procs.append(self.proc)  # type: ignore[arg-type]  # stopped with the others
        self.max_tokens = max_tokens
        self.info: dict[str, Any] = {}

    def wait_ready(self) -> None:
        line = self._line()
        if not line.startswith("READY "):
            raise BenchError(f"the generate() loop did not start: {line!r}")
        self.info = json.loads(line.split(" ", 1)[1])

    def _line(self) -> str:
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            if line.startswith(("READY ", "RESULT ")):
                return line.strip()
        raise BenchError(f"the generate() loop exited with {self.proc.wait()}")

    def run(self, batch: int) -> Sample:
        assert self.proc.stdin is not None
        cpu0 = cpu_seconds(self.proc.pid)
        self.proc.stdin.write(f"{batch}\n")
        self.proc.stdin.flush()
        result = json.loads(self._line().split(" ", 1)[1])
        cpu1 = cpu_seconds(self.proc.pid)
        if result["tokens"] != batch * self.max_tokens:
            raise BenchError(f"generate() made {result['tokens']} tokens, expected {batch} x {self.max_tokens}")
        cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        return Sample(result["tokens"], result["seconds"], [result["ttft_s"]], cpu)


def child_env(threads: str) -> dict[str, str]:
    """The environment of both measured processes: torch's intra-op threads set alike (unless "auto")."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    if threads != "auto":
        env["OMP_NUM_THREADS"] = threads
    return env


def _pythonpath() -> str:
    """The baseline imports modelgate's device choice from the same place the served modelgate comes from."""
    return os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)


# ------------------------------------------------------------------------------------------ modelgate
class Modelgate:
    """`modelgate serve` with the model in its config file, and an openai client for streaming requests."""

    def __init__(
        self, procs: ChildProcesses, cpus: str | None, model: Path, max_tokens: int, work: Path, threads: str
    ) -> None:
        from openai import AsyncOpenAI

        self.max_tokens = max_tokens
        admin_token = "dapi" + secrets.token_hex(16)
        config = work / "modelgate.json"  # JSON is YAML
        entry = {"name": MODEL, "task": "llm/v1/chat", "engine": "transformers", "path": str(model),
                 "endpoint": ENDPOINT, "dtype": "auto"}  # fmt: skip
        config.write_text(json.dumps({"models": [entry]}))
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**child_env(threads), "MODELGATE_ADMIN_TOKEN": admin_token, "MODELGATE_EXPOSE_DEFAULT_MODELS": "0"}
        env.pop("MODELGATE_DATABASE_URL", None)
        self.log_path = work / "server.log"
        cmd = [
            *pin_prefix(cpus), sys.executable, "-m", "modelgate", "serve", "--port", str(port),
            "--data-dir", str(work / "data"), "--config", str(config), "--log-level", "warning",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = procs.start(cmd, env=env, stdout=log)
        self.admin_token = admin_token
        self.client = AsyncOpenAI(base_url=f"{self.url}/serving-endpoints", api_key=admin_token, max_retries=0,
                                  timeout=600)  # fmt: skip

    def wait_ready(self, timeout: float = 300) -> None:
        """Until the server answers and the model's endpoint is DEPLOYMENT_READY (the model loaded)."""
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"modelgate exited with {self.proc.returncode}:\n{self._log_tail()}")
            try:
                resp = httpx.get(f"{self.url}/api/2.0/serving-endpoints/{ENDPOINT}", headers=headers, timeout=2)
                if resp.status_code == 200:
                    state = resp.json()["config"]["served_entities"][0]["state"]
                    if state["deployment"] == "DEPLOYMENT_READY":
                        return
                    if state["deployment"] == "DEPLOYMENT_FAILED":
                        raise BenchError(f"the model failed to load in modelgate: {state}")
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise BenchError(f"modelgate did not load the model in {timeout:.0f} s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    async def _stream(self) -> tuple[int, float, float, float]:
        """One streaming chat request: (completion tokens, start, first chunk, end), times from perf_counter."""
        start = time.perf_counter()
        stream = await self.client.chat.completions.create(
            model=ENDPOINT, messages=MESSAGES, max_tokens=self.max_tokens, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        first, tokens, finish = None, None, None
        async for chunk in stream:
            if chunk.choices:
                first = first or time.perf_counter()
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        end = time.perf_counter()
        if tokens != self.max_tokens or finish != "length" or first is None:
            raise BenchError(f"modelgate answered {tokens} tokens (finish {finish!r}), expected {self.max_tokens}")
        return tokens, start, first, end

    async def _burst(self, concurrency: int) -> Sample:
        cpu0 = cpu_seconds(self.proc.pid)
        try:
            results = await asyncio.gather(*(self._stream() for _ in range(concurrency)))
        except Exception as exc:
            if isinstance(exc, BenchError):
                raise
            raise BenchError(f"a request to modelgate failed: {type(exc).__name__}: {exc}") from exc
        cpu1 = cpu_seconds(self.proc.pid)
        start, end = min(r[1] for r in results), max(r[3] for r in results)
        cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        return Sample(sum(r[0] for r in results), end - start, [r[2] - r[1] for r in results], cpu)

    def run(self, runner: asyncio.Runner, concurrency: int) -> Sample:
        return runner.run(self._burst(concurrency))


# ------------------------------------------------------------------------------------------ measuring
Runs = dict[tuple[str, int], list[Sample]]


def measure(loop: GenerateLoop, gate: Modelgate, levels: list[int], rounds: int, warmup: bool) -> Runs:
    def one(runner: asyncio.Runner, name: str, level: int) -> Sample:
        return loop.run(level) if name == LOOP else gate.run(runner, level)

    runs: Runs = {(name, c): [] for name in TARGETS for c in levels}
    with asyncio.Runner() as runner:
        if warmup:  # first calls: lazy imports, allocator growth, connection pools; thrown away
            for c in levels:
                for name in TARGETS:
                    one(runner, name, c)
        for r in range(rounds):
            order = TARGETS if r % 2 == 0 else TARGETS[::-1]
            for c in levels:
                for name in order:
                    sample = one(runner, name, c)
                    runs[(name, c)].append(sample)
                    print(
                        f"  round {r + 1}/{rounds} c={c:<2} {name:<15} {sample.tokens_per_s:8.1f} tok/s  "
                        f"TTFT min/p50/max {_ttfts(sample)} ms  "
                        f"CPU {_num(sample.cpu_ms_per_token, 2)} ms/token  load {os.getloadavg()[0]:.2f}",
                        file=sys.stderr,
                        flush=True,
                    )
    return runs


# ------------------------------------------------------------------------------------------ reporting
def _ttfts(sample: Sample) -> str:
    ms = [t * 1000 for t in sample.ttft_s]
    return f"{min(ms):.0f}/{statistics.median(ms):.0f}/{max(ms):.0f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _tps(runs: Runs, name: str, c: int) -> float:
    return statistics.median(s.tokens_per_s for s in runs[(name, c)])


def render(runs: Runs, levels: list[int], rounds: int, header: dict[str, str]) -> str:
    lines = ["# modelgate local-engine tokens/s benchmark", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += ["", f"## Medians of {rounds} round(s)", ""]
    lines += [
        "| target | concurrency | tokens/s | TTFT min ms | TTFT p50 ms | TTFT max ms | CPU ms/token |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for c in levels:
        for name in TARGETS:
            samples = runs[(name, c)]
            lines.append(
                f"| {name} | {c} | {_tps(runs, name, c):.1f} "
                f"| {statistics.median(min(s.ttft_s) for s in samples) * 1000:.1f} "
                f"| {statistics.median(statistics.median(s.ttft_s) for s in samples) * 1000:.1f} "
                f"| {statistics.median(max(s.ttft_s) for s in samples) * 1000:.1f} "
                f"| {_num(_median([s.cpu_ms_per_token for s in samples]), 2)} |"
            )
    lines += ["", "## The issue's targets", ""]
    lines += ["| metric | value | target | result |", "|---|--:|---|---|"]
    if 1 in levels:
        ratio = _tps(runs, GATE, 1) / _tps(runs, LOOP, 1)
        lines.append(
            f"| modelgate single stream / generate() loop single stream | {ratio:.2f} | ≥ {TARGET_SINGLE_RATIO} "
            f"| {_verdict(ratio >= TARGET_SINGLE_RATIO)} |"
        )
    if 1 in levels and 8 in levels:
        scaling = _tps(runs, GATE, 8) / _tps(runs, GATE, 1)
        lines.append(
            f"| modelgate 8 concurrent / modelgate single stream | {scaling:.2f} | ≥ {TARGET_SCALING} "
            f"| {_verdict(scaling >= TARGET_SCALING)} |"
        )
        loop_scaling = _tps(runs, LOOP, 8) / _tps(runs, LOOP, 1)
        lines.append(f"| generate() loop batch 8 / batch 1 (what the model allows) | {loop_scaling:.2f} |  |  |")
    for c in levels:
        lines.append(f"| modelgate / generate() loop at {c} | {_tps(runs, GATE, c) / _tps(runs, LOOP, c):.2f} |  |  |")
    if not {1, 8} <= set(levels):
        lines.append("\nThe targets are defined at concurrency 1 and 8; a level missing from this run has no verdict.")
    lines += ["", "## Every round", ""]
    lines += ["| round | target | concurrency | tokens/s | TTFT min ms | TTFT p50 ms | TTFT max ms | CPU ms/token |",
              "|--:|---|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    for c in levels:
        for name in TARGETS:
            for i, s in enumerate(runs[(name, c)], 1):
                lines.append(
                    f"| {i} | {name} | {c} | {s.tokens_per_s:.1f} | {min(s.ttft_s) * 1000:.1f} "
                    f"| {statistics.median(s.ttft_s) * 1000:.1f} "
                    f"| {max(s.ttft_s) * 1000:.1f} | {_num(s.cpu_ms_per_token, 2)} |"
                )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main
def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be positive integers")
    return levels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", choices=sorted(SIZES), default=None, help="default medium; tiny with --quick")
    ap.add_argument("--model", type=Path, default=None, help="use this Hugging Face chat model folder instead")
    ap.add_argument("--max-tokens", type=int, default=128, help="new tokens per request / row (default 128)")
    ap.add_argument("--concurrency", type=parse_levels, default=[1, 8], help="levels, e.g. 1,8 (default)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds; the table shows medians (default 5)")
    ap.add_argument("--cpus", default="0-1", help="taskset CPUs for both modelgate and the loop ('none': no pinning)")
    ap.add_argument("--threads", default="1", help="torch threads of both processes (OMP_NUM_THREADS), or 'auto' "
                    "for torch's default (default 1: see bench/README.md)")  # fmt: skip
    ap.add_argument("--dtype", default="auto", help="auto (as the engine picks), float32 or bfloat16")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny model, 16 tokens, 1 round, nothing saved")
    ap.add_argument("--save", action="store_true", help="save the result files even with --quick")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.size = args.size or "tiny"
        args.max_tokens, args.rounds = 16, 1
    args.size = args.size or "medium"
    if args.rounds < 1 or args.max_tokens < 1:
        ap.error("--rounds and --max-tokens must be at least 1")
    if args.threads != "auto" and not (args.threads.isdigit() and int(args.threads) > 0):
        ap.error("--threads takes a positive integer or 'auto'")
    args.cpus = None if args.cpus.lower() in ("", "none", "off") else args.cpus
    return args


def run_bench(args: argparse.Namespace, header: dict[str, str]) -> Runs:
    with tempfile.TemporaryDirectory(prefix="modelgate-tokens-bench-") as tmp, ChildProcesses() as procs:
        work = Path(tmp)
        model = args.model
        if model is None:
            started = time.perf_counter()
            model = build_model(work / "model", args.size)
            print(f"built the {args.size} model in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        header["model"] = f"{args.size if args.model is None else args.model}: {describe(model)}"
        loop = GenerateLoop(procs, args.cpus, model, args.max_tokens, args.dtype, args.threads)
        gate = Modelgate(procs, args.cpus, model, args.max_tokens, work, args.threads)
        loop.wait_ready()  # both start at once (imports, loading); nothing is measured before both are ready
        gate.wait_ready()
        header["dtype / device / torch threads"] = (
            f"{loop.info['dtype']} / {loop.info['device']} / {loop.info['threads']} "
            f"(engine dtype setting: {args.dtype}; --threads {args.threads})"
        )
        header["request"] = (
            f"chat, {loop.info['prompt_tokens']} prompt tokens, greedy (temperature 0), max_tokens {args.max_tokens} "
            "(EOS never wins, so every request generates all of them); modelgate: streaming, openai client"
        )
        return measure(loop, gate, args.concurrency, args.rounds, warmup=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _check_cpus(args.cpus)
    header = machine_facts()
    pinned = args.cpus and shutil.which("taskset")
    header["pinning"] = (
        f"modelgate and the generate() loop each on CPU {args.cpus} (one after the other); the client is not pinned"
        if pinned
        else "none"
    )
    header["load average before"] = load_average()
    with terminate_as_interrupt():
        try:
            runs = run_bench(args, header)
        except BenchError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 1
    header["load average after"] = load_average()
    note = "above the number of cores: other work competed for the CPUs, numbers are noisy" if os.getloadavg()[
        0
    ] > (os.cpu_count() or 1) else "not above the number of cores"  # fmt: skip
    header["load average after"] += f" ({note})"
    text = render(runs, args.concurrency, args.rounds, header)
    print(text)
    if not args.quick or args.save:
        save_results(text, "local-tokens", args.out_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
