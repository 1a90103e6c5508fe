// spending.js — the Spending page (#/spending?days=N): the tenant's cost per day by
// model/tier (stacked bars) and the estimate accuracy per model (horizontal bars), each
// with its data table, from GET /v1/spending (the same numbers any API client gets).

import { api } from "./api.js";
import { h, usd, tokens, announce } from "./dom.js";
import { COLORS, dataTable, hBars, showNewest, stackedBars } from "./charts.js";
import { param } from "./util.js";

const PERIODS = [7, 30, 90];

/** Every day from `since` to `until` (inclusive, "YYYY-MM-DD", UTC). */
function dayRange(since, until) {
  const days = [];
  const end = Date.parse(until + "T00:00:00Z");
  for (let t = Date.parse(since + "T00:00:00Z"); t <= end; t += 86400000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

// The report's "tier" also holds two non-tiers; say what they mean (keys stay the API's).
const TIER_NAMES = { cached: "cache hit", unknown: "no tier (failed)" };
const tierName = (tier) => TIER_NAMES[tier] || tier;

function pct(value) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(1)} %`;
}

function costChart(report) {
  const keys = [];
  const cells = new Map();
  for (const row of report.rows) {
    const key = `${row.model}/${row.tier}`;
    if (!keys.includes(key)) keys.push(key);
    cells.set(`${row.day}|${key}`, row.cost_usd);
  }
  keys.sort();
  const series = keys.map((key, i) => {
    const cut = key.lastIndexOf("/");
    const [model, tier] = [key.slice(0, cut), key.slice(cut + 1)];
    return { key, label: `${model}/${tierName(tier)}`, color: COLORS[i % COLORS.length] };
  });
  const figure = h("figure", { "data-testid": "chart-cost" });
  stackedBars(figure, {
    days: dayRange(report.since, report.until),
    series,
    value: (day, key) => cells.get(`${day}|${key}`) ?? 0,
    unit: "USD",
    title: "Cost per day by model and tier",
  });
  return figure;
}

function spendingTable(report) {
  const rows = report.rows.map((row) => [
    row.day, row.model, tierName(row.tier), String(row.jobs), String(row.cached),
    tokens(row.prompt_tokens), tokens(row.output_tokens),
    { text: usd(row.cost_usd), attrs: { "data-usd": row.cost_usd } },
    { text: usd(row.standard_usd), attrs: { "data-usd": row.standard_usd } },
  ]);
  return dataTable(
    "spending-table",
    "Cost per day, model and tier",
    ["Day", "Model", "Tier", "Jobs", "Cached", "Prompt tokens", "Output tokens", "Cost",
      "At standard price"],
    rows,
  );
}

function accuracyChart(report) {
  const figure = h("figure", { "data-testid": "chart-accuracy" });
  hBars(figure, {
    rows: report.estimation.map((row) => ({
      label: row.model,
      value: row.mean_abs_pct,
      attrs: { "data-model": row.model, "data-mean-pct": String(row.mean_abs_pct) },
    })),
    unit: "%",
    title: "Input-token estimate error per model (mean absolute %)",
  });
  return figure;
}

function accuracyTable(report) {
  return dataTable(
    "accuracy-table",
    "Input-token estimate error per model",
    ["Model", "Jobs", "Mean error", "Worst error"],
    report.estimation.map((row) => [
      { text: row.model, attrs: { "data-model": row.model } },
      String(row.jobs), pct(row.mean_abs_pct), pct(row.worst_abs_pct),
    ]),
  );
}

function totalLine(report) {
  const t = report.totals;
  const saved =
    t.saved_pct === null || t.saved_pct === undefined
      ? ""
      : `; saved ${usd(t.saved_usd)} (${Number(t.saved_pct).toFixed(1)} %) against standard prices`;
  return h(
    "p",
    { "data-testid": "spending-total", "data-usd": t.cost_usd, class: "spending-total" },
    `${usd(t.cost_usd)} for ${t.jobs} jobs from ${report.since} to ${report.until}${saved}.`,
  );
}

/** Render the Spending page into `root`; returns the cleanup the router calls. */
export function renderSpending(root, query) {
  const asked = Number(param(query, "days"));
  const days = PERIODS.includes(asked) ? asked : 30;
  const controller = new AbortController();
  const select = h("select", { id: "spending-days", "data-testid": "spending-days" });
  for (const n of PERIODS) {
    const option = h("option", { value: String(n) }, `Last ${n} days`);
    if (n === days) option.selected = true;
    select.append(option);
  }
  select.addEventListener("change", () => {
    location.hash = `#/spending?days=${select.value}`;
  });
  const body = h("div", { class: "spending-body", "aria-busy": "true" }, h("p", {}, "Loading…"));
  const heading = h("h1", { tabindex: "-1" }, "Spending");
  root.replaceChildren(
    h(
      "section",
      { class: "page spending-page", "data-testid": "spending-page" },
      heading,
      h("div", { class: "toolbar" },
        h("label", { for: "spending-days" }, "Period"), select),
      body,
    ),
  );
  api(`/v1/spending?days=${days}`, { signal: controller.signal })
    .then((report) => {
      body.replaceChildren(
        totalLine(report),
        h("h2", {}, "Cost per day"),
        costChart(report),
        spendingTable(report),
        h("h2", {}, "Estimate accuracy"),
        report.estimation.length
          ? accuracyChart(report)
          : h("p", { class: "muted" }, "No finished job with an input-token estimate yet."),
        accuracyTable(report),
      );
      body.setAttribute("aria-busy", "false");
      showNewest(body); // a phone shows part of the 30 days: the latest, not the oldest
    })
    .catch((error) => {
      if (controller.signal.aborted) return;
      body.setAttribute("aria-busy", "false");
      body.replaceChildren(
        h("p", { role: "alert", class: "error" }, `Cannot load spending: ${error.message}`),
      );
      announce(`Cannot load spending: ${error.message}`);
    });
  return () => controller.abort();
}
