"""Prometheus metrics, one set per app; fed by the dispatch observer, read at /metrics.

The request path only adds to plain dicts (observers run on the event loop thread); the Prometheus
families are built from them when /metrics is scraped. prometheus_client's own Counter and Histogram
take a lock and check the metric's state on every increment, which cost a request five lock round trips.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from modelgate.gateway.writer import GatewayWriter
from modelgate.serving.records import CallRecord

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _Latency:
    """One endpoint's latency histogram: a count per bucket (not cumulative), the sum and the total."""

    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*map(floatToGoString, _LATENCY_BUCKETS), "+Inf"), self.buckets, strict=True):
            running += n
            out.append((bound, running))
        return out


class ServingMetrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.rate_limited: defaultdict[str, int] = defaultdict(int)
        self.guardrail_blocks: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, _Latency] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_ServingCollector(self))

    def observe(self, record: CallRecord) -> None:
        ep = record.endpoint
        self.requests[ep, record.served_entity or "", str(record.status_code)] += 1
        if record.error_code:
            self.errors[ep, record.error_code] += 1
        if record.guardrail_blocked:
            self.guardrail_blocks[ep, record.guardrail_blocked] += 1
        if record.rate_limited:
            self.rate_limited[ep] += 1
        latency = self.latency.get(ep)
        if latency is None:
            latency = self.latency[ep] = _Latency()
        latency.observe(record.duration_s)
        if record.prompt_tokens:
            self.tokens[ep, "in"] += record.prompt_tokens
        if record.completion_tokens:
            self.tokens[ep, "out"] += record.completion_tokens

    def watch_writer(self, writer: GatewayWriter) -> None:
        """Export the gateway writer's queue depth and its written, dropped and failed row counts."""
        self.registry.register(_WriterCollector(writer))

    def exposition(self, endpoint: str | None = None) -> bytes:
        text = generate_latest(self.registry)
        if endpoint is None:
            return text
        return filter_exposition(text, endpoint)


def _counter(
    name: str, doc: str, labels: list[str], values: Iterable[tuple[tuple[str, ...], int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in list(values):
        family.add_metric(list(key), value)
    return family


class _ServingCollector(Collector):
    def __init__(self, metrics: ServingMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        yield _counter(
            "modelgate_requests",
            "Queries served, by endpoint, served entity and HTTP status",
            ["endpoint", "served_entity", "status"],
            m.requests.items(),
        )
        yield _counter(
            "modelgate_errors",
            "Failed queries by endpoint and Databricks error code",
            ["endpoint", "error_code"],
            m.errors.items(),
        )
        latency = HistogramMetricFamily(
            "modelgate_request_latency_seconds",
            "Time to the full answer (streams: to the last chunk)",
            labels=["endpoint"],
        )
        for ep, hist in list(m.latency.items()):
            latency.add_metric([ep], hist.cumulative(), hist.sum)
        yield latency
        yield _counter(
            "modelgate_rate_limit_rejections",
            "Queries refused by the endpoint's AI Gateway rate limits",
            ["endpoint"],
            (((ep,), n) for ep, n in list(m.rate_limited.items())),
        )
        yield _counter(
            "modelgate_guardrail_blocks",
            "Queries refused by an AI Gateway guardrail, by side (input/output)",
            ["endpoint", "side"],
            m.guardrail_blocks.items(),
        )
        yield _counter(
            "modelgate_tokens", "Tokens in (prompt) and out (completion)", ["endpoint", "direction"], m.tokens.items()
        )


def filter_exposition(text: bytes, endpoint: str) -> bytes:
    """Keep only the samples labelled with this endpoint (and the HELP/TYPE lines of their families)."""
    marker = f'endpoint="{endpoint}"'.encode()
    out: list[bytes] = []
    header: list[bytes] = []
    for line in text.splitlines():
        if line.startswith(b"#"):
            if line.startswith(b"# HELP"):
                header = [line]
            else:
                header.append(line)
            continue
        if marker in line:
            out.extend(header)
            header = []
            out.append(line)
    return b"\n".join(out) + (b"\n" if out else b"")


class _WriterCollector(Collector):
    def __init__(self, writer: GatewayWriter) -> None:
        self.writer = writer

    def collect(self) -> Iterator[Metric]:
        w = self.writer
        yield GaugeMetricFamily(
            "modelgate_gateway_rows_pending",
            "Finished queries whose usage/inference rows are waiting to be written",
            w.pending,
        )
        yield CounterMetricFamily("modelgate_gateway_rows_written", "Usage/inference rows written", w.written)
        yield CounterMetricFamily(
            "modelgate_gateway_rows_dropped",
            "Finished queries whose rows were dropped because the buffer was full",
            w.dropped,
        )
        yield CounterMetricFamily(
            "modelgate_gateway_rows_failed", "Usage/inference rows the database refused", w.failed
        )
