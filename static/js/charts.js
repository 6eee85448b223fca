// Admin charts drawn with uPlot (vendored): time series built from the dashboard API's rows.
// Each chart is a <figure> with a caption and a text summary for screen readers.

import uPlot from "../vendor/uplot/uPlot.esm.js";

const PALETTE = ["#3157c8", "#d9534f", "#2e9e5b", "#e0a800", "#8e44ad", "#16a2b8", "#7f8c8d"];
const charts = new Map();

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

const seconds = (iso) => Date.parse(iso.length === 10 ? `${iso}T00:00:00Z` : iso) / 1000;

// Draw (or redraw) a chart in `holder`: x is a list of ISO times, series is a list of
// { label, values, scale?: "y" | "rate", format?: (v) => text }; `days` is the time range
// shown (so one point is not stretched over years); `yFormat` labels the left axis.
export function lineChart(holder, x, series, { yLabel = "", rateLabel = "", days = 7, yFormat = null } = {}) {
  charts.get(holder)?.destroy();
  holder.replaceChildren();
  if (!x.length) {
    holder.textContent = "No data in this range.";
    return;
  }
  const axisColour = css("--muted");
  const grid = { stroke: css("--border"), width: 1 };
  const axes = [
    { stroke: axisColour, grid },
    { stroke: axisColour, grid, label: yLabel, size: 70,
      values: yFormat ? (u, ticks) => ticks.map(yFormat) : undefined },
  ];
  const now = Date.now() / 1000;
  const scales = { x: { time: true, range: [now - days * 86400, now] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } };
  if (series.some((s) => s.scale === "rate")) {
    scales.rate = { range: [0, 1] };
    axes.push({ scale: "rate", side: 1, stroke: axisColour, grid: { show: false }, label: rateLabel,
      values: (u, ticks) => ticks.map((t) => `${Math.round(t * 100)}%`) });
  }
  const options = {
    width: Math.max(280, Math.min(holder.clientWidth || 720, 900)),
    height: 220,
    scales,
    axes,
    series: [{}, ...series.map((s, n) => ({
      label: s.label,
      scale: s.scale || "y",
      stroke: PALETTE[n % PALETTE.length],
      width: 2,
      points: { show: x.length < 40 },
      value: s.format ? (u, v) => (v === null || v === undefined ? "–" : s.format(v)) : undefined,
    }))],
    legend: { show: true },
  };
  const chart = new uPlot(options, [x.map(seconds), ...series.map((s) => s.values)], holder);
  charts.set(holder, chart);
}

// Rows keyed by time and a category, pivoted to one series per category.
export function pivot(rows, timeKey, categoryKey, valueKey) {
  const times = [...new Set(rows.map((r) => r[timeKey]))].sort();
  const categories = [...new Set(rows.map((r) => categoryKey(r)))].sort();
  const index = new Map(times.map((t, i) => [t, i]));
  const series = categories.map((label) => ({ label, values: times.map(() => 0) }));
  for (const r of rows) {
    const s = series[categories.indexOf(categoryKey(r))];
    s.values[index.get(r[timeKey])] += Number(r[valueKey]);
  }
  return { times, series };
}
