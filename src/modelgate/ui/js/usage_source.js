// THE SEAM for usage data. The Usage page reads only `view()` of a source made by `createUsageSource`.
//
// Today the source samples the endpoint's Prometheus counters (GET /api/2.0/serving-endpoints/{name}/metrics)
// every few seconds while the page is open and turns the differences into per-interval points. When the
// AI Gateway usage tables get an API, add a `UsageTableSource` here with the same `poll()`/`view()` shape
// (history from the table instead of from sampling, and `topRequesters` filled) and return it from
// `createUsageSource`; nothing else in the UI has to change.

import { endpointsApi } from "./api.js";
import { histogramQuantile, parsePrometheus, sum } from "./prometheus.js";

const MAX_POINTS = 120;

function snapshot(text, endpoint) {
  const samples = parsePrometheus(text).filter((s) => s.labels.endpoint === endpoint);
  const requests = samples.filter((s) => s.name === "modelgate_requests_total");
  const buckets = samples
    .filter((s) => s.name === "modelgate_request_latency_seconds_bucket")
    .map((s) => ({ le: s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), count: s.value }));
  return {
    at: Date.now(),
    requests: requests.reduce((a, s) => a + s.value, 0),
    errors: requests.filter((s) => !s.labels.status.startsWith("2")).reduce((a, s) => a + s.value, 0),
    byEntity: requests.map((s) => ({ servedEntity: s.labels.served_entity, status: s.labels.status, count: s.value })),
    tokensIn: sum(samples, "modelgate_tokens_total", { direction: "in" }),
    tokensOut: sum(samples, "modelgate_tokens_total", { direction: "out" }),
    latencySum: sum(samples, "modelgate_request_latency_seconds_sum"),
    latencyCount: sum(samples, "modelgate_request_latency_seconds_count"),
    buckets,
  };
}

function bucketDelta(now, before) {
  return now.buckets.map((b) => ({ le: b.le, count: b.count - (before.buckets.find((x) => x.le === b.le)?.count || 0) }));
}

export class MetricsUsageSource {
  constructor(endpoint) {
    this.endpoint = endpoint;
    this.snapshots = [];
    this.points = [];
    this.kind = "metrics";
    this.requesters = null;
    this.history = [];
  }

  /** Take one sample; after the second one there is a point per interval. */
  async poll() {
    const now = snapshot(await endpointsApi.metrics(this.endpoint), this.endpoint);
    try {
      // Who called comes from the usage table (usage tracking on, and CAN_MANAGE to read it).
      const report = await endpointsApi.usage(this.endpoint);
      this.requesters = report.top_requesters;
      this.history = report.buckets.map((b) => ({
        t: b.start_time,
        requests: b.requests,
        errors: b.errors,
        tokensIn: b.input_tokens,
        tokensOut: b.output_tokens,
      }));
    } catch {
      this.requesters = null;
      this.history = [];
    }
    const before = this.snapshots[this.snapshots.length - 1];
    this.snapshots = [before, now].filter(Boolean);
    if (before) {
      // A server restart resets counters; a negative difference means "start again from here".
      const requests = Math.max(0, now.requests - before.requests);
      const count = now.latencyCount - before.latencyCount;
      this.points.push({
        t: now.at,
        requests,
        errors: Math.max(0, now.errors - before.errors),
        tokensIn: Math.max(0, now.tokensIn - before.tokensIn),
        tokensOut: Math.max(0, now.tokensOut - before.tokensOut),
        latencyMeanMs: count > 0 ? ((now.latencySum - before.latencySum) / count) * 1000 : null,
        latencyP95Ms: count > 0 ? (histogramQuantile(0.95, bucketDelta(now, before)) ?? 0) * 1000 : null,
      });
      if (this.points.length > MAX_POINTS) this.points.shift();
    }
    return this.view();
  }

  view() {
    const last = this.snapshots[this.snapshots.length - 1];
    return {
      kind: this.kind,
      points: this.points,
      totals: last
        ? {
            requests: last.requests,
            errors: last.errors,
            tokensIn: last.tokensIn,
            tokensOut: last.tokensOut,
            latencyMeanMs: last.latencyCount ? (last.latencySum / last.latencyCount) * 1000 : null,
            latencyP95Ms: last.latencyCount ? histogramQuantile(0.95, last.buckets) * 1000 : null,
          }
        : null,
      byEntity: last ? last.byEntity : [],
      // From the usage table; the metrics have no requester label.
      topRequesters: this.requesters && this.requesters.length ? this.requesters : null,
      // Five-minute buckets of the last 24 hours from the usage table (empty without usage tracking).
      history: this.history,
    };
  }
}

export function createUsageSource(endpoint) {
  return new MetricsUsageSource(endpoint);
}
