// A small SVG line chart: time on x, one or more series on y, gridlines, legend and per-point tooltips.

import { h, svg } from "./dom.js";

const W = 560;
const H = 200;
const PAD = { left: 48, right: 12, top: 12, bottom: 26 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

/** The y axis: four equal steps from 0 to a round maximum at or above `value`. Counts (`integer`) step by
 * whole numbers (1, 2, 5, 10, 20, 25, 50, ...), so no tick reads 1.3 requests. */
export function yAxis(value, integer = false) {
  if (!integer) {
    const max = niceMax(value);
    return { max, step: max / 4 };
  }
  const need = Math.max(value, 1) / 4;
  const power = 10 ** Math.max(0, Math.floor(Math.log10(need)));
  const step = [1, 2, 2.5, 5, 10].map((s) => s * power).find((s) => Number.isInteger(s) && s >= need);
  return { max: step * 4, step };
}

function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (value >= 1000) return `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)}k`;
  return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(value < 1 ? 2 : 1)));
}

function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/**
 * series: [{key, label, values: [{t, v}]}] (v may be null: a gap); integer: the values are counts, so the y
 * axis ticks are whole numbers. Returns a <figure> with the chart.
 * The figure's aria-label sums the data up for screen readers; each point has a <title> tooltip.
 */
export function lineChart({ id, title, unit, series, integer = false }) {
  const all = series.flatMap((s) => s.values).filter((p) => p.v !== null);
  const ts = series.flatMap((s) => s.values.map((p) => p.t));
  const t0 = Math.min(...ts);
  const t1 = Math.max(...ts);
  const axis = yAxis(Math.max(0, ...all.map((p) => p.v)), integer);
  const yMax = axis.max;
  const x = (t) => PAD.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right) : (W - PAD.left - PAD.right) / 2);
  const y = (v) => H - PAD.bottom - (v / yMax) * (H - PAD.top - PAD.bottom);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", "aria-hidden": "true", "data-chart": id });
  for (let i = 0; i <= 4; i++) {
    const v = axis.step * i;
    chart.append(
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid-line" }),
      svg("text", { x: PAD.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmt(v)),
    );
  }
  if (ts.length) {
    chart.append(
      svg("text", { x: PAD.left, y: H - 6, class: "axis" }, clock(t0)),
      svg("text", { x: W - PAD.right, y: H - 6, class: "axis", "text-anchor": "end" }, clock(t1)),
    );
  }
  series.forEach((s, i) => {
    let d = "";
    let pen = false;
    for (const p of s.values) {
      if (p.v === null) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      pen = true;
    }
    chart.append(svg("path", { d, class: `series s${i}`, "data-series": s.key, fill: "none" }));
    for (const p of s.values) {
      if (p.v === null) continue;
      chart.append(
        svg("circle", { cx: x(p.t), cy: y(p.v), r: 3, class: `dot s${i}` }, svg("title", {}, `${s.label} at ${clock(p.t)}: ${fmt(p.v)} ${unit}`)),
      );
    }
  });
  const summary = series
    .map((s) => {
      const values = s.values.map((p) => p.v).filter((v) => v !== null);
      return `${s.label}: latest ${fmt(values[values.length - 1])}, max ${fmt(Math.max(0, ...values))} ${unit}`;
    })
    .join("; ");
  return h(
    "figure",
    { class: "chart-card", "aria-label": `${title}. ${summary}`, role: "group" },
    h("figcaption", {}, title),
    chart,
    h(
      "ul",
      { class: "legend" },
      series.map((s, i) => h("li", {}, h("span", { class: `swatch s${i}`, "aria-hidden": "true" }), s.label)),
    ),
  );
}
