// charts.js — the console's two hand-drawn SVG charts (no library, no canvas):
// stackedBars (one bar per day, one stacked segment per series) and hBars (one horizontal
// bar per row). Every bar is an SVG <rect class="chart-bar"> with data-* attributes, so
// tests and screen readers read the numbers straight from the DOM; the figure carries
// role=img and an aria-label summary (the page puts the data table beside it).
// CSP: geometry goes in SVG attributes (presentation attributes), never in style="".

const SVG = "http://www.w3.org/2000/svg";

/** Twelve distinguishable colours; series i gets COLORS[i % 12]. */
export const COLORS = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a",
];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// The drawing itself is hidden from assistive technology: the figure's summary and the
// table below it carry the values.
function chartSvg(width, height) {
  return svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart-svg",
    preserveAspectRatio: "xMidYMid meet",
    "aria-hidden": "true",
    focusable: "false",
  });
}

function html(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A "nice" axis maximum (1, 2, 2.5 or 5 times a power of ten) at or above `value`. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function formatValue(value, unit, minDigits = 0) {
  if (unit === "USD") {
    const digits = Math.max(minDigits, value !== 0 && Math.abs(value) < 0.01 ? 4 : 2);
    return "$" + value.toFixed(digits);
  }
  if (unit === "%") return value.toFixed(Math.max(1, minDigits)) + " %";
  return String(Math.round(value * 100) / 100) + (unit ? " " + unit : "");
}

/** Decimals that write every multiple of step exactly (0.0125 -> 4), at most 6: an axis
 * of $0.05 in quarters must read $0.0125, $0.025, not the rounded $0.01, $0.03. */
function stepDigits(step) {
  let digits = 0;
  while (digits < 6 && Math.abs(step * 10 ** digits - Math.round(step * 10 ** digits)) > 1e-9) {
    digits += 1;
  }
  return digits;
}

/** The attribute a bar's exact value goes in: data-usd for money, else data-value. */
function valueAttr(unit) {
  return unit === "USD" ? "data-usd" : "data-value";
}

function resetFigure(figure, title, summary) {
  figure.replaceChildren();
  figure.classList.add("chart");
  figure.setAttribute("role", "img");
  figure.setAttribute("aria-label", `${title}. ${summary}`);
}

function legend(series) {
  const list = html("ul", "chart-legend");
  list.setAttribute("aria-hidden", "true");
  for (const item of series) {
    const entry = html("li", "chart-legend-item");
    const swatch = svg("svg", { width: 12, height: 12, viewBox: "0 0 12 12", class: "swatch" });
    swatch.append(svg("rect", { width: 12, height: 12, fill: item.color }));
    entry.append(swatch, document.createTextNode(item.label));
    list.append(entry);
  }
  return list;
}

/**
 * Stacked bars: x = days (strings "YYYY-MM-DD"), one segment per series whose value is
 * `value(day, key)` (a number or a decimal string; 0/empty draws nothing).
 * Each segment: <rect class="chart-bar" data-testid="chart-bar" data-day data-series
 * data-usd|data-value> with a <title> tooltip.
 */
export function stackedBars(figure, { days, series, value, unit = "", title = "" }) {
  const width = 800;
  const height = 260;
  const pad = { left: 64, right: 8, top: 10, bottom: 36 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const totals = days.map((day) =>
    series.reduce((sum, s) => sum + (Number(value(day, s.key)) || 0), 0),
  );
  const grand = totals.reduce((a, b) => a + b, 0);
  const top = niceMax(Math.max(0, ...totals));
  const busiest = totals.length ? days[totals.indexOf(Math.max(...totals))] : "";
  resetFigure(
    figure,
    title,
    days.length
      ? `${days.length} days from ${days[0]} to ${days[days.length - 1]}, total ` +
          `${formatValue(grand, unit)}` +
          (grand > 0 ? `, highest on ${busiest}` : "") +
          `; ${series.length} series. The table below lists every value.`
      : "No data.",
  );
  const chart = chartSvg(width, height);
  // Horizontal grid lines with their values, at quarters of the axis maximum.
  const digits = stepDigits(top / 4);
  for (let i = 0; i <= 4; i += 1) {
    const y = pad.top + plotH - (plotH * i) / 4;
    chart.append(
      svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "chart-grid" }),
      svg("text", { x: pad.left - 6, y: y + 4, class: "chart-tick", "text-anchor": "end" },
        formatValue((top * i) / 4, unit, digits)),
    );
  }
  const slot = days.length ? plotW / days.length : plotW;
  const barW = Math.max(1, slot * 0.7);
  const labelEvery = Math.max(1, Math.ceil(days.length / 10));
  days.forEach((day, d) => {
    const x = pad.left + d * slot + (slot - barW) / 2;
    let base = pad.top + plotH;
    series.forEach((s) => {
      const raw = value(day, s.key);
      const amount = Number(raw) || 0;
      if (amount <= 0) return;
      const h = (plotH * amount) / top;
      base -= h;
      chart.append(
        svg(
          "rect",
          {
            x: x.toFixed(2), y: base.toFixed(2), width: barW.toFixed(2),
            height: Math.max(0.5, h).toFixed(2), fill: s.color, class: "chart-bar",
            "data-testid": "chart-bar", "data-day": day, "data-series": s.key,
            [valueAttr(unit)]: String(raw),
          },
          svg("title", {}, `${day} · ${s.label}: ${formatValue(amount, unit)}`),
        ),
      );
    });
    if (d % labelEvery === 0) {
      chart.append(
        svg("text", { x: (x + barW / 2).toFixed(2), y: height - pad.bottom + 16,
          class: "chart-tick", "text-anchor": "middle" }, day.slice(5)),
      );
    }
  });
  chart.append(
    svg("line", { x1: pad.left, x2: width - pad.right, y1: pad.top + plotH,
      y2: pad.top + plotH, class: "chart-axis" }),
  );
  // Its own scroller (phone widths, pages.css) so the legend stays in view; spending.js
  // scrolls it to the newest days once shown.
  const scroller = html("div", "chart-scroll");
  scroller.append(chart);
  figure.append(scroller, legend(series));
  if (title) figure.append(html("figcaption", "chart-caption", title));
}

/** Scrolls every day-chart scroller inside `root` to its right end (the newest days). */
export function showNewest(root) {
  for (const scroller of root.querySelectorAll(".chart-scroll")) {
    scroller.scrollLeft = scroller.scrollWidth;
  }
}

/**
 * Horizontal bars: one per row {label, value, attrs?}; `attrs` (optional) adds data-*
 * attributes to the bar (e.g. data-model). Each bar: <rect class="chart-bar"
 * data-testid="chart-bar" data-label data-value|data-usd>.
 */
export function hBars(figure, { rows, unit = "", title = "" }) {
  const width = 800;
  const rowH = 28;
  const pad = { left: 200, right: 90, top: 6, bottom: 6 };
  const height = pad.top + pad.bottom + Math.max(1, rows.length) * rowH;
  const plotW = width - pad.left - pad.right;
  const top = niceMax(Math.max(0, ...rows.map((r) => Number(r.value) || 0)));
  resetFigure(
    figure,
    title,
    rows.length
      ? rows.map((r) => `${r.label}: ${formatValue(Number(r.value) || 0, unit)}`).join("; ")
      : "No data.",
  );
  const chart = chartSvg(width, height);
  rows.forEach((row, i) => {
    const amount = Number(row.value) || 0;
    const y = pad.top + i * rowH;
    const w = (plotW * Math.max(0, amount)) / top;
    const label = row.label.length > 28 ? row.label.slice(0, 27) + "…" : row.label;
    const attrs = {
      x: pad.left, y: y + 4, width: Math.max(0.5, w).toFixed(2), height: rowH - 8,
      fill: COLORS[i % COLORS.length], class: "chart-bar", "data-testid": "chart-bar",
      "data-label": row.label, [valueAttr(unit)]: String(row.value),
    };
    for (const [name, value] of Object.entries(row.attrs || {})) attrs[name] = value;
    chart.append(
      svg("text", { x: pad.left - 8, y: y + rowH / 2 + 4, class: "chart-tick",
        "text-anchor": "end" }, label),
      svg("rect", attrs, svg("title", {}, `${row.label}: ${formatValue(amount, unit)}`)),
      svg("text", { x: pad.left + w + 6, y: y + rowH / 2 + 4, class: "chart-tick" },
        formatValue(amount, unit)),
    );
  });
  chart.append(
    svg("line", { x1: pad.left, x2: pad.left, y1: pad.top, y2: height - pad.bottom,
      class: "chart-axis" }),
  );
  figure.append(chart);
  if (title) figure.append(html("figcaption", "chart-caption", title));
}

/**
 * A data table (the accessible, testable form of a chart) inside a scrolling wrapper so a
 * wide table never widens the page. `rows` are arrays of cell texts or {text, attrs}.
 */
export function dataTable(testid, caption, headers, rows) {
  const table = html("table", "data-table");
  table.setAttribute("data-testid", testid);
  table.append(html("caption", "", caption));
  const head = html("tr");
  for (const name of headers) {
    const th = html("th", "", name);
    th.setAttribute("scope", "col");
    head.append(th);
  }
  table.append(html("thead"));
  table.tHead.append(head);
  const body = html("tbody");
  for (const cells of rows) {
    const tr = html("tr");
    cells.forEach((cell, i) => {
      const td = html("td", "", typeof cell === "object" && cell !== null ? cell.text : cell);
      td.setAttribute("data-label", headers[i]);
      for (const [name, value] of Object.entries(cell?.attrs || {})) td.setAttribute(name, value);
      tr.append(td);
    });
    body.append(tr);
  }
  table.append(body);
  const wrap = html("div", "table-scroll");
  wrap.append(table);
  return wrap;
}
