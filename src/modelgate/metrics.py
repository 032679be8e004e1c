"""Prometheus metrics, one registry per app; fed by the dispatch observer, read at /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelgate.gateway.writer import GatewayWriter
from modelgate.serving.records import CallRecord

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ServingMetrics:
    def __init__(self) -> None:
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._endpoint_children: dict[str, tuple[Any, Any, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelgate_requests",
            "Queries served, by endpoint, served entity and HTTP status",
            ["endpoint", "served_entity", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "modelgate_errors",
            "Failed queries by endpoint and Databricks error code",
            ["endpoint", "error_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelgate_request_latency_seconds",
            "Time to the full answer (streams: to the last chunk)",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "modelgate_rate_limit_rejections",
            "Queries refused by the endpoint's AI Gateway rate limits",
            ["endpoint"],
            registry=self.registry,
        )
        self.guardrail_blocks = Counter(
            "modelgate_guardrail_blocks",
            "Queries refused by an AI Gateway guardrail, by side (input/output)",
            ["endpoint", "side"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "modelgate_tokens",
            "Tokens in (prompt) and out (completion)",
            ["endpoint", "direction"],
            registry=self.registry,
        )

    def observe(self, record: CallRecord) -> None:
        ep = record.endpoint
        key = (ep, record.served_entity or "", record.status_code)
        counter = self._request_children.get(key)
        if counter is None:  # labels() takes a lock and builds a key each call; reuse the child
            counter = self._request_children[key] = self.requests.labels(key[0], key[1], str(key[2]))
        counter.inc()
        if record.error_code:
            self.errors.labels(ep, record.error_code).inc()
        if record.guardrail_blocked:
            self.guardrail_blocks.labels(ep, record.guardrail_blocked).inc()
        if record.rate_limited:
            self.rate_limited.labels(ep).inc()
        children = self._endpoint_children.get(ep)
        if children is None:
            children = self._endpoint_children[ep] = (
                self.latency.labels(ep),
                self.tokens.labels(ep, "in"),
                self.tokens.labels(ep, "out"),
            )
        latency, tokens_in, tokens_out = children
        latency.observe(record.duration_s)
        if record.prompt_tokens:
            tokens_in.inc(record.prompt_tokens)
        if record.completion_tokens:
            tokens_out.inc(record.completion_tokens)

    def watch_writer(self, writer: GatewayWriter) -> None:
        """Export the gateway writer's queue depth and its written, dropped and failed row counts."""
        self.registry.register(_WriterCollector(writer))

    def exposition(self, endpoint: str | None = None) -> bytes:
        text = generate_latest(self.registry)
        if endpoint is None:
            return text
        return filter_exposition(text, endpoint)


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
