// batches.js — the Batches list (#/batches) and one batch's page (#/batches/<id>): a
// progressbar with counts per status, ETA, cost so far against the estimate, exports
// (JSONL/CSV), re-run failed items, close and cancel. Progress is live by polling
// GET /v1/batches/{id} (the list has no progress, so each unfinished row reads its batch).

import { api, download } from "./api.js";
import { announce, badge, cell, duration, h, tokens, usd, when } from "./dom.js";
import { poll } from "./poll.js";
import { mapLimited, param } from "./util.js";

const STATES = ["open", "closed", "cancelled"];
// Item statuses in the bar's order: ended ones first (left, as a bar fills), then the rest.
const STATUSES = ["succeeded", "failed", "cancelled", "expired", "running", "queued"];

/** A batch is finished when no more items can come and every item's job ended. */
export function finished(batch) {
  const p = batch.progress;
  return batch.state !== "open" && p !== null && p !== undefined && p.done >= p.items;
}

/** The progressbar element (data-testid=batch-progress); fill it with updateProgress. */
function progressBar(label) {
  const track = h("div", { class: "progress-track" });
  const bar = h(
    "div",
    {
      class: "batch-progress",
      role: "progressbar",
      "data-testid": "batch-progress",
      "aria-label": label,
      "aria-valuemin": "0",
    },
    track,
    h("span", { class: "progress-text" }, "…"),
  );
  return bar;
}

/** Sets the bar's ARIA values, data-* counts, segments (widths by CSSOM) and text. */
function updateProgress(bar, batch) {
  const p = batch.progress;
  const items = p ? p.items : batch.item_count;
  const done = p ? p.done : 0;
  bar.setAttribute("aria-valuemax", String(items));
  bar.setAttribute("aria-valuenow", String(done));
  bar.setAttribute("data-items", String(items));
  const counts = p ? p.counts : {};
  for (const status of STATUSES) bar.setAttribute(`data-${status}`, String(counts[status] ?? 0));
  const track = bar.querySelector(".progress-track");
  track.replaceChildren();
  for (const status of STATUSES) {
    const n = counts[status] ?? 0;
    if (!n || !items) continue;
    const segment = h("span", { class: `progress-segment seg-${status}` });
    segment.style.width = `${(100 * n) / items}%`;
    track.append(segment);
  }
  const parts = STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  const expected = p && p.expected_items && p.expected_items > items
    ? ` (${p.expected_items} expected)` : "";
  bar.querySelector(".progress-text").textContent = p
    ? `${done} of ${items} done${expected}` + (parts.length ? `: ${parts.join(", ")}` : "")
    : `${items} items`;
  bar.setAttribute("aria-valuetext", bar.querySelector(".progress-text").textContent);
}

function etaText(batch) {
  const p = batch.progress;
  if (!p) return "–";
  if (finished(batch)) return "Finished";
  if (batch.state === "open" && p.items === 0) return "Waiting for items";
  // An open batch whose items have all ended has nothing to estimate ("About 0 s" said
  // nothing): it waits for more items or for its close.
  if (batch.state === "open" && p.done >= p.items && !p.eta_not_added) {
    return "All added items done; waiting for more or for the close";
  }
  if (p.eta_s === null || p.eta_s === undefined) return "Not known yet";
  const basis = p.eta_basis === "quota" ? " (from the rate limits)" : "";
  return `About ${duration(p.eta_s)}, at ${when(p.eta_at)}${basis}`;
}

function costText(batch) {
  const p = batch.progress;
  if (!p) return "–";
  const range = p.estimate_usd;
  const estimate = range ? `; whole batch estimated ${usd(range.min)} – ${usd(range.max)}` : "";
  return `${usd(p.cost_usd)} so far${estimate}`;
}

/** The Batches list; `query` may carry state=open|closed|cancelled. */
export function renderBatches(root, query) {
  const state = STATES.includes(param(query, "state")) ? param(query, "state") : "";
  const controller = new AbortController();
  const rows = new Map(); // id -> {batch, tr, bar}
  let poller = null;
  let cursor = null;
  const tbody = h("tbody");
  const empty = h("p", { "data-testid": "batches-empty", class: "muted", hidden: true },
    "No batches yet. Send files as a batch from the Submit page.");
  const more = h("button", { type: "button", "data-testid": "batches-more", hidden: true,
    onclick: () => load() }, "Load more");
  const filter = h("select", { id: "batches-state", "data-testid": "batches-state",
    onchange: () => {
      location.hash = "#/batches" + (filter.value ? `?state=${filter.value}` : "");
    } },
  h("option", { value: "" }, "All states"),
  STATES.map((s) => h("option", { value: s, selected: s === state }, s)));

  function row(batch) {
    const bar = progressBar(`Progress of batch ${batch.name}`);
    updateProgress(bar, batch);
    const tr = h("tr", { "data-testid": "batch-row", "data-batch-id": batch.id,
      "data-state": batch.state },
    cell("Batch", h("a", { href: `#/batches/${batch.id}` }, batch.name)),
    cell("State", h("span", { class: "cell-state" }, badge(batch.state))),
    cell("Task", batch.task),
    cell("Progress", bar),
    cell("Cost so far", h("span", { class: "cell-cost" }, "–")),
    cell("Created", when(batch.created_at)));
    rows.set(batch.id, { batch, tr, bar });
    return tr;
  }

  function refresh(batch) {
    const entry = rows.get(batch.id);
    if (!entry) return;
    entry.batch = batch;
    entry.tr.setAttribute("data-state", batch.state);
    entry.tr.querySelector(".cell-state").replaceChildren(badge(batch.state));
    updateProgress(entry.bar, batch);
    entry.tr.querySelector(".cell-cost").textContent = batch.progress
      ? usd(batch.progress.cost_usd) : "–";
  }

  // Reads every unfinished row's batch (concurrency 4); true when all are finished.
  async function refreshAll() {
    const pending = [...rows.values()].filter((e) => !e.batch.progress || !finished(e.batch));
    await mapLimited(pending, 4, async (entry) => {
      refresh(await api(`/v1/batches/${entry.batch.id}`, { signal: controller.signal }));
    });
    return [...rows.values()].every((e) => finished(e.batch));
  }

  async function load() {
    more.disabled = true;
    const params = new URLSearchParams({ limit: "20" });
    if (state) params.set("state", state);
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await api(`/v1/batches?${params}`, { signal: controller.signal });
      if (controller.signal.aborted) return;
      for (const batch of page.batches) tbody.append(row(batch));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = rows.size > 0;
      if (poller) poller.stop();
      poller = poll(refreshAll, { everyMs: 5000, until: (allDone) => allDone,
        signal: controller.signal });
    } catch (error) {
      if (!controller.signal.aborted) announce(`Cannot list batches: ${error.message}`);
    } finally {
      more.disabled = false;
    }
  }

  root.replaceChildren(
    h("section", { class: "page batches-page" },
      h("h1", { tabindex: "-1" }, "Batches"),
      h("div", { class: "toolbar" }, h("label", { for: "batches-state" }, "State"), filter),
      h("div", { class: "table-wrap" },
        h("table", { "data-testid": "batches-table", class: "batches-table cards" },
          h("caption", { class: "visually-hidden" }, "Batches, newest first"),
          h("thead", {}, h("tr", {}, ["Batch", "State", "Task", "Progress", "Cost so far",
            "Created"].map((name) => h("th", { scope: "col" }, name)))),
          tbody)),
      empty, more),
  );
  load();
  return () => {
    controller.abort();
    if (poller) poller.stop();
  };
}

/** One batch's page: progress, ETA, cost, exports and actions, live until finished. */
export function renderBatch(root, { id }) {
  const controller = new AbortController();
  let poller = null;
  let batch = null;
  const bar = progressBar("Batch progress");
  const title = h("h1", { tabindex: "-1" }, "Batch");
  const stateBadge = h("span", { class: "batch-state" });
  const eta = h("dd", { "data-testid": "batch-eta" }, "–");
  const cost = h("dd", { "data-testid": "batch-cost" }, "–");
  const tokenCount = h("dd", { "data-testid": "batch-tokens" }, "–");
  const created = h("dd", {}, "–");
  const error = h("p", { role: "alert", class: "error", "data-testid": "batch-error" });
  const button = (testid, text, onclick) =>
    h("button", { type: "button", "data-testid": testid, disabled: true, onclick }, text);
  // The id's first 8 characters tell apart two batches whose names clean up alike.
  const exportName = (ext) =>
    `${(batch?.name || "batch").replace(/[^\w.-]+/g, "_")}-${id.slice(0, 8)}.${ext}`;
  // An action's request may answer after the user left the page: `gone` stops it there (no
  // show, no toast, no poller restarted with the page's aborted signal).
  const gone = () => controller.signal.aborted;
  const act = (what, fn) => async () => {
    error.textContent = "";
    try {
      await fn();
    } catch (err) {
      if (controller.signal.aborted) return;
      error.textContent = `${what} failed: ${err.message}`;
      announce(error.textContent);
    }
  };
  const exportJsonl = button("batch-export-jsonl", "Export JSONL", act("Export", () =>
    download(`/v1/batches/${id}/results?format=jsonl`, exportName("jsonl"))));
  const exportCsv = button("batch-export-csv", "Export CSV", act("Export", () =>
    download(`/v1/batches/${id}/results?format=csv`, exportName("csv"))));
  const rerun = button("batch-rerun", "Re-run failed", act("Re-run", async () => {
    rerun.disabled = true;
    const result = await api(`/v1/batches/${id}/rerun`, { method: "POST", json: {},
      signal: controller.signal });
    if (gone()) return;
    announce(`Re-running ${result.rerun} failed item${result.rerun === 1 ? "" : "s"}.`);
    show(result.batch);
    watch();
  }));
  // Close and Cancel: POST /v1/batches/{id}/{path}, then show the batch it answers.
  const post = (what, path, done) => act(what, async () => {
    const next = await api(`/v1/batches/${id}/${path}`, { method: "POST",
      signal: controller.signal });
    if (gone()) return;
    show(next);
    announce(done);
    watch();
  });
  const close = button("batch-close", "Close batch",
    post("Close", "close", "Batch closed: no more items can be added."));
  // Cancel cannot be undone: a first press asks, a second button ("Really cancel ...") does
  // it; "Keep it" or Escape takes the question back. Focus moves with the question.
  const confirmText = h("span", { "data-testid": "batch-cancel-question" });
  const keep = h("button", { type: "button", "data-testid": "batch-cancel-keep",
    onclick: () => ask(false) }, "Keep it");
  const really = h("button", { type: "button", class: "danger",
    "data-testid": "batch-cancel-confirm", onclick: async () => {
      really.disabled = true;
      await post("Cancel", "cancel", "Batch cancelled.")();
      if (!gone()) ask(false);
    } }, "Yes, cancel");
  const confirm = h("div", { class: "confirm", role: "group", hidden: true,
    "aria-label": "Confirm cancel", "data-testid": "batch-cancel-ask",
    onkeydown: (e) => { if (e.key === "Escape") ask(false); } },
  confirmText, " ", really, keep);
  const cancel = button("batch-cancel", "Cancel batch", () => ask(true));
  function ask(on) {
    if (on) {
      const queued = batch?.progress ? batch.progress.counts.queued : null;
      confirmText.textContent = queued ? `Really cancel ${queued} queued item${
        queued === 1 ? "" : "s"}?` : "Really cancel this batch? It takes no more items.";
      really.disabled = false;
    }
    confirm.hidden = !on;
    (on ? really : cancel).focus();
  }
  const page = h("section", { class: "page batch-page", "data-testid": "batch-page",
    "data-batch-id": id, "aria-busy": "true" },
  title,
  h("p", { class: "batch-meta" }, stateBadge, " ",
    h("a", { href: `#/jobs?batch=${encodeURIComponent(id)}`, "data-testid": "batch-jobs" },
      "Jobs of this batch")),
  bar,
  h("dl", { class: "batch-facts" },
    h("dt", {}, "Estimated time left"), eta,
    h("dt", {}, "Cost"), cost,
    h("dt", {}, "Tokens"), tokenCount,
    h("dt", {}, "Created"), created),
  h("div", { class: "actions", role: "group", "aria-label": "Batch actions" },
    exportJsonl, exportCsv, rerun, close, cancel),
  confirm,
  error);
  root.replaceChildren(page);

  function show(next) {
    batch = next;
    const p = batch.progress;
    page.setAttribute("data-state", batch.state);
    page.setAttribute("aria-busy", "false");
    title.textContent = `Batch ${batch.name}`;
    stateBadge.replaceChildren(badge(batch.state), ` ${batch.task}`);
    updateProgress(bar, batch);
    eta.textContent = etaText(batch);
    cost.textContent = costText(batch);
    cost.setAttribute("data-usd", p ? p.cost_usd : "");
    tokenCount.textContent = p ? tokens(p.tokens.total) : "–";
    created.textContent = when(batch.created_at);
    exportJsonl.disabled = !batch.item_count;
    exportCsv.disabled = !batch.item_count;
    rerun.disabled = !p || !p.counts.failed;
    close.disabled = batch.state !== "open";
    cancel.disabled = batch.state === "cancelled" || finished(batch);
    if (cancel.disabled) confirm.hidden = true;
  }

  // A batch that is not there (or not this tenant's) stops the page: null ends polling.
  async function read() {
    try {
      return await api(`/v1/batches/${id}`, { signal: controller.signal });
    } catch (err) {
      if (err.status !== 404 && err.status !== 422) throw err;
      page.setAttribute("aria-busy", "false");
      error.textContent = `${err.message} Open the Batches page to see yours.`;
      return null;
    }
  }

  function watch() {
    if (poller) poller.stop();
    poller = poll(read, {
      everyMs: 2000,
      signal: controller.signal,
      until: (next) => {
        if (next === null) return true;
        show(next);
        return finished(next);
      },
    });
  }

  watch();
  return () => {
    controller.abort();
    if (poller) poller.stop();
  };
}
