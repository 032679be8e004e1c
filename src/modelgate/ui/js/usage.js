// Usage: requests, tokens and latency over time for one endpoint, from the usage source (see usage_source.js).

import { endpointsApi } from "./api.js";
import { lineChart } from "./charts.js";
import { clear, field, h, notify, scrollable } from "./dom.js";
import { createUsageSource } from "./usage_source.js";

let timer = null;
let active = null; // the source being sampled; a poll that returns after navigation away is dropped

export function stopUsage() {
  if (timer) clearTimeout(timer);
  timer = null;
  active = null;
}

function number(value, digits = 0) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

function totalsCards(totals) {
  const cards = [
    ["Requests", number(totals?.requests)],
    ["Errors", number(totals?.errors)],
    ["Tokens in", number(totals?.tokensIn)],
    ["Tokens out", number(totals?.tokensOut)],
    ["Mean latency", totals?.latencyMeanMs == null ? "—" : `${number(totals.latencyMeanMs)} ms`],
    ["p95 latency", totals?.latencyP95Ms == null ? "—" : `≤ ${number(totals.latencyP95Ms)} ms`],
  ];
  return h(
    "dl",
    { class: "stats", "aria-label": "Totals since the server started" },
    cards.map(([k, v]) => h("div", { class: "stat", dataset: { stat: k } }, h("dt", {}, k), h("dd", {}, v))),
  );
}

function render(area, view, intervalS) {
  clear(area);
  area.append(h("h2", {}, "Since the server started"), totalsCards(view.totals));
  if (view.byEntity.length) {
    area.append(
      scrollable(h(
        "table",
        { class: "grid compact" },
        h("caption", {}, "Requests by served entity and status"),
        h("thead", {}, h("tr", {}, ["Served entity", "Status", "Requests"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, view.byEntity.map((r) => h("tr", {}, h("td", {}, r.servedEntity || "—"), h("td", {}, r.status), h("td", {}, String(r.count))))),
      ), "Requests by served entity and status"),
    );
  }
  area.append(h("h2", {}, `Over time (every ${intervalS} s while this page is open)`));
  if (view.points.length < 1) {
    area.append(h("p", { class: "hint", id: "usage-wait" }, `Collecting the first interval… the charts appear in ${intervalS} s.`));
  } else {
    const pts = view.points;
    area.append(
      h(
        "div",
        { class: "charts" },
        lineChart({
          id: "requests",
          title: "Requests per interval",
          unit: "requests",
          integer: true,
          series: [
            { key: "requests", label: "All requests", values: pts.map((p) => ({ t: p.t, v: p.requests })) },
            { key: "errors", label: "Errors", values: pts.map((p) => ({ t: p.t, v: p.errors })) },
          ],
        }),
        lineChart({
          id: "tokens",
          title: "Tokens per interval",
          unit: "tokens",
          integer: true,
          series: [
            { key: "tokens-in", label: "Input tokens", values: pts.map((p) => ({ t: p.t, v: p.tokensIn })) },
            { key: "tokens-out", label: "Output tokens", values: pts.map((p) => ({ t: p.t, v: p.tokensOut })) },
          ],
        }),
        lineChart({
          id: "latency",
          title: "Latency (ms)",
          unit: "ms",
          series: [
            { key: "latency-mean", label: "Mean", values: pts.map((p) => ({ t: p.t, v: p.latencyMeanMs })) },
            { key: "latency-p95", label: "p95 (bucket estimate)", values: pts.map((p) => ({ t: p.t, v: p.latencyP95Ms })) },
          ],
        }),
      ),
    );
  }
  if (view.history && view.history.length) {
    const hist = view.history;
    area.append(
      h("h2", {}, "Last 24 hours, from the usage table (5-minute buckets)"),
      h(
        "div",
        { class: "charts" },
        lineChart({
          id: "history-requests",
          title: "Requests",
          unit: "requests",
          integer: true,
          series: [
            { key: "requests", label: "All requests", values: hist.map((p) => ({ t: p.t, v: p.requests })) },
            { key: "errors", label: "Errors", values: hist.map((p) => ({ t: p.t, v: p.errors })) },
          ],
        }),
        lineChart({
          id: "history-tokens",
          title: "Tokens",
          unit: "tokens",
          integer: true,
          series: [
            { key: "tokens-in", label: "Input tokens", values: hist.map((p) => ({ t: p.t, v: p.tokensIn })) },
            { key: "tokens-out", label: "Output tokens", values: hist.map((p) => ({ t: p.t, v: p.tokensOut })) },
          ],
        }),
      ),
    );
  }
  area.append(
    h("h2", {}, "Top requesters"),
    view.topRequesters
      ? h("ol", {}, view.topRequesters.map((r) => h("li", {}, `${r.requester}: ${r.requests} requests, ${r.tokens} tokens`)))
      : h("p", { class: "hint" }, "Who called the endpoint comes from the AI Gateway usage table: turn on usage tracking for this endpoint (reading it needs CAN_MANAGE)."),
  );
}

export async function renderUsage(root, ctx, preselect) {
  stopUsage();
  root.append(h("h1", {}, "Usage"));
  let endpoints = [];
  try {
    endpoints = await endpointsApi.list();
  } catch (err) {
    notify(err.message, "error");
    return;
  }
  if (!endpoints.length) {
    root.append(h("p", {}, "No endpoints yet."));
    return;
  }
  const names = endpoints.map((e) => e.name);
  const picker = h("select", { name: "endpoint" }, names.map((n) => h("option", { value: n, selected: n === preselect }, n)));
  const interval = h(
    "select",
    { name: "interval" },
    [1, 5, 15, 60].map((s) => h("option", { value: String(s), selected: s === 5 }, `${s} s`)),
  );
  const area = h("div", { class: "usage", "aria-live": "polite" });
  root.append(h("div", { class: "row" }, field("Endpoint", picker), field("Sample every", interval)), area);

  const tick = async () => {
    const source = active;
    if (!source) return;
    const intervalS = Number(interval.value);
    let view;
    try {
      view = await source.poll();
    } catch (err) {
      if (active === source) notify(err.message, "error");
      return;
    }
    if (active !== source) return;
    render(area, view, intervalS);
    timer = setTimeout(tick, intervalS * 1000);
  };
  const restart = () => {
    stopUsage();
    active = createUsageSource(picker.value);
    tick();
  };
  picker.addEventListener("change", restart);
  interval.addEventListener("change", restart);
  restart();
}
