"""Prometheus metrics, one registry per app; fed by the dispatch observer, read at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from modelgate.serving.records import CallRecord

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ServingMetrics:
    def __init__(self) -> None:
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
        self.tokens = Counter(
            "modelgate_tokens",
            "Tokens in (prompt) and out (completion)",
            ["endpoint", "direction"],
            registry=self.registry,
        )

    def observe(self, record: CallRecord) -> None:
        ep = record.endpoint
        self.requests.labels(ep, record.served_entity or "", str(record.status_code)).inc()
        if record.error_code:
            self.errors.labels(ep, record.error_code).inc()
        self.latency.labels(ep).observe(record.duration_s)
        if record.prompt_tokens:
            self.tokens.labels(ep, "in").inc(record.prompt_tokens)
        if record.completion_tokens:
            self.tokens.labels(ep, "out").inc(record.completion_tokens)

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
