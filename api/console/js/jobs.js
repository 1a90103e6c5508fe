// jobs.js: the jobs list (#/jobs?status=&task=&model=&tier=&batch=&created_after=
// &created_before=&limit=). Filters live in the hash (reload and back keep them) and use the
// API's own query names, so the page shows exactly GET /v1/jobs with the same query. Rows
// refresh live: the rows in view through ?ids= while any is active, the first page for new
// jobs. jobRow() is shared with the submit page.

import { api } from "./api.js";
import { badge, cell, h, usd, when } from "./dom.js";
import { poll } from "./poll.js";
import { ACTIVE, JOB_STATUSES, TASKS, TIERS } from "./util.js";

const FILTERS = ["status", "task", "model", "tier", "batch", "created_after", "created_before"];
const IDS_PER_CALL = 100;
const RETRY_MS = [2000, 30000]; // a failed first page is asked again after 2 s, doubling to 30 s
const COLUMNS = ["Job", "Status", "Task", "Model", "Tier", "Created", "Cost", "Batch"];

/** The header row of a table of jobRow()s (the jobs list and the Submit page's); `file`
 * adds the Submit page's File column first. */
export function jobsHead({ file = false } = {}) {
  const names = file ? ["File", ...COLUMNS] : COLUMNS;
  return h("thead", null, h("tr", null, names.map((t) => h("th", { scope: "col" }, t))));
}

/** One job as a table row (data-* attributes carry the job's fields for tests and tools).
 * `file` (the Submit page's): the name(s) of the file(s) the job was sent with, known only
 * to the page that sent it, shown in a first File column. */
export function jobRow(job, { file = null } = {}) {
  const cells = [
    cell("Job", h("a", { href: "#/jobs/" + job.id, class: "mono",
      "aria-label": "Job " + job.id.slice(0, 8) + ", " + job.task + ", " + job.status },
    job.id.slice(0, 8))),
    cell("Status", badge(job.status)),
    cell("Task", job.task),
    cell("Model", job.model),
    cell("Tier", job.served_tier && job.served_tier !== job.tier
      ? job.tier + " → " + job.served_tier : job.tier),
    cell("Created", h("time", { datetime: job.created_at }, when(job.created_at))),
    cell("Cost", usd(job.cost_usd)),
    // A batch item's key (its file's relative path) is the only name of the image a job has.
    cell("Batch", job.batch_id
      ? [h("a", { href: "#/batches/" + job.batch_id, class: "mono",
        "aria-label": "Batch " + job.batch_id.slice(0, 8) }, job.batch_id.slice(0, 8)),
      job.batch_key ? h("span", { class: "muted batch-key" }, " · " + job.batch_key) : null]
      : "–"),
  ];
  // data-col names each cell for the compact phone cards (pages.css), whatever the columns.
  COLUMNS.forEach((name, i) => cells[i].setAttribute("data-col", name.toLowerCase()));
  if (!job.batch_id) cells[7].setAttribute("data-empty", "true");
  if (file !== null) {
    const named = cell("File", h("span", { class: "file-name" }, file));
    named.setAttribute("data-col", "file");
    cells.unshift(named);
  }
  return h("tr", {
    "data-testid": "job-row", "data-job-id": job.id, "data-status": job.status,
    "data-task": job.task, "data-model": job.model, "data-tier": job.tier,
    "data-batch-id": job.batch_id || "", "data-created-at": job.created_at,
    ...(file !== null ? { "data-file": file } : {}),
  }, ...cells);
}

function options(values, all) {
  return [h("option", { value: "" }, all), ...values.map((v) => h("option", { value: v }, v))];
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", null, label), control);
}

function selectOf(testid, label, values, all) {
  return field(label, h("select", { "data-testid": testid, name: testid }, options(values, all)));
}

/** Renders the jobs list into root; query: URLSearchParams of the hash. Returns cleanup. */
export function renderJobs(root, query) {
  const params = new URLSearchParams(query);
  const limit = params.get("limit") || "";
  const controller = new AbortController(); // the page's: aborted by the route's cleanup
  const pollers = [];
  let cursor = null;
  // The current reload's own AbortController. Every request made for one filter (its first
  // page, "Load more", the live pollers) carries its signal and checks stale() after each
  // await: a filter change aborts it, so an answer for the old filter (a poll already in
  // flight, a slow Load more) can never add its rows or its cursor to the new list.
  let run = null;

  const form = h("form", { "data-testid": "job-filters", class: "filters",
    "aria-label": "Filter jobs", onsubmit: (e) => e.preventDefault() },
  selectOf("filter-status", "Status", JOB_STATUSES, "Any status"),
  selectOf("filter-task", "Task", TASKS, "Any task"),
  selectOf("filter-model", "Model", [], "Any model"),
  selectOf("filter-tier", "Tier", TIERS, "Any tier"),
  field("Batch id", h("input", { type: "text", "data-testid": "filter-batch", name: "batch",
    placeholder: "batch id", autocomplete: "off", spellcheck: "false" })),
  h("button", { type: "button", "data-testid": "filter-clear", onclick: clear }, "Clear"),
  // The time fields come last, after a way past them: each is several Tab stops (one per
  // date/time segment). step=60: minutes only (no seconds/milliseconds segments).
  h("button", { type: "button", class: "skip-results", "data-testid": "skip-results",
    onclick: skipToResults }, "Skip to results"),
  field("Created from (UTC)", h("input", { type: "datetime-local", step: "60",
    "data-testid": "filter-from", name: "created_after" })),
  field("Created before (UTC)", h("input", { type: "datetime-local", step: "60",
    "data-testid": "filter-to", name: "created_before" })));

  const controls = {
    status: form.querySelector("[data-testid=filter-status]"),
    task: form.querySelector("[data-testid=filter-task]"),
    model: form.querySelector("[data-testid=filter-model]"),
    tier: form.querySelector("[data-testid=filter-tier]"),
    batch: form.querySelector("[data-testid=filter-batch]"),
    created_after: form.querySelector("[data-testid=filter-from]"),
    created_before: form.querySelector("[data-testid=filter-to]"),
  };
  const modelSelect = controls.model;
  const wanted = params.get("model");
  if (wanted) modelSelect.append(h("option", { value: wanted }, wanted));
  for (const name of FILTERS) {
    const value = params.get(name);
    if (value) controls[name].value = name.startsWith("created_") ? value.replace(/Z$/, "") : value;
    controls[name].addEventListener("change", changed);
  }

  const tbody = h("tbody");
  const table = h("table", { "data-testid": "jobs-table", class: "jobs-table cards",
    tabindex: "-1" },
    h("caption", { class: "visually-hidden" }, "Jobs, newest first"),
    jobsHead(), tbody);
  const empty = h("p", { "data-testid": "jobs-empty", class: "empty", hidden: true,
    tabindex: "-1" },
    "No jobs match these filters.");
  const more = h("button", { type: "button", "data-testid": "jobs-more", hidden: true,
    onclick: loadMore }, "Load more");
  // A failed first page is retried by itself (backing off) and by the Retry button, so the
  // list comes back after an outage without reloading the page.
  const errorText = h("span");
  const error = h("div", { class: "error", role: "alert", hidden: true }, errorText, " ",
    h("button", { type: "button", "data-testid": "jobs-retry", onclick: () => reload() },
      "Retry now"));
  let retryTimer = null;
  let retryMs = RETRY_MS[0];
  root.append(h("h1", { tabindex: "-1" }, "Jobs"), form, error, table, empty, more);

  api("/v1/models", { signal: controller.signal }).then((body) => {
    // Usable models first; retired/closed ones (old jobs may carry them) in their own group.
    // A catalogue wildcard ("gemini-1.5-*") is never a job's model: nothing to filter by.
    const models = (body.models || []).filter((m) => !m.id.includes("*") && m.id !== wanted);
    const retired = models.filter((m) => !m.usable);
    modelSelect.append(...models.filter((m) => m.usable)
      .map((m) => h("option", { value: m.id }, m.id)));
    if (retired.length) {
      modelSelect.append(h("optgroup", { label: "Retired (for old jobs)" },
        retired.map((m) => h("option", { value: m.id }, m.id))));
    }
  }, () => {});

  function skipToResults() {
    const first = tbody.querySelector("a");
    if (first) first.focus();
    else (empty.hidden ? table : empty).focus();
  }

  function filterQuery() {
    const q = new URLSearchParams();
    for (const name of FILTERS) {
      const value = controls[name].value.trim();
      if (value) q.set(name, value);
    }
    return q;
  }

  function listPath(extra) {
    const q = filterQuery();
    if (limit) q.set("limit", limit);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return "/v1/jobs?" + q.toString();
  }

  function changed() {
    const q = filterQuery();
    if (limit) q.set("limit", limit);
    const text = q.toString();
    history.replaceState(null, "", "#/jobs" + (text ? "?" + text : ""));
    reload();
  }

  function clear() {
    for (const name of FILTERS) controls[name].value = "";
    changed();
  }

  function showError(err, retryIn) {
    if (err && err.name === "AbortError") return;
    errorText.textContent = "Could not load jobs: " + (err && err.message) +
      (retryIn ? ` Retrying in ${Math.round(retryIn / 1000)} s.` : "");
    error.hidden = false;
  }

  function rowsInView() {
    return [...tbody.querySelectorAll("tr[data-job-id]")];
  }

  function put(jobs, { append = true } = {}) {
    for (const job of jobs) {
      const row = jobRow(job);
      const old = tbody.querySelector(`tr[data-job-id="${job.id}"]`);
      if (old) old.replaceWith(row);
      else if (append) tbody.append(row);
      else tbody.prepend(row);
    }
    empty.hidden = tbody.children.length > 0;
  }

  /** True when mine is no longer the list's current reload (or the page is gone). */
  function stale(mine) {
    return mine !== run || mine.signal.aborted || controller.signal.aborted;
  }

  async function reload() {
    for (const p of pollers.splice(0)) p.stop();
    if (run) run.abort();
    const mine = new AbortController();
    run = mine;
    cursor = null; // the old filter's cursor must not page the new filter
    clearTimeout(retryTimer);
    try {
      const page = await api(listPath(), { signal: mine.signal });
      if (stale(mine)) return;
      error.hidden = true;
      retryMs = RETRY_MS[0];
      tbody.replaceChildren();
      put(page.jobs);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      more.disabled = false;
      table.dataset.loaded = "true";
      live(mine);
    } catch (err) {
      if (stale(mine) || (err && err.name === "AbortError") || (err && err.status === 401)) return;
      showError(err, retryMs);
      retryTimer = setTimeout(reload, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MS[1]);
    }
  }

  async function loadMore() {
    const mine = run;
    if (!cursor || !mine) return;
    more.disabled = true;
    try {
      const page = await api(listPath({ cursor }), { signal: mine.signal });
      if (stale(mine)) return;
      put(page.jobs);
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      if (!stale(mine)) showError(err);
    } finally {
      if (!stale(mine)) more.disabled = false;
    }
  }

  function live(mine) {
    // Rows in view that are still active: refresh them every 2 s (filters applied, so a job
    // that left the filter, e.g. status=running -> succeeded, leaves the list).
    pollers.push(poll(async () => {
      const active = rowsInView().filter((r) => ACTIVE.has(r.dataset.status))
        .map((r) => r.dataset.jobId);
      for (let i = 0; i < active.length; i += IDS_PER_CALL) {
        const ids = active.slice(i, i + IDS_PER_CALL);
        const q = filterQuery();
        q.set("ids", ids.join(","));
        const page = await api("/v1/jobs?" + q.toString(), { signal: mine.signal });
        if (stale(mine)) return;
        put(page.jobs);
        for (const id of page.missing || []) {
          const row = tbody.querySelector(`tr[data-job-id="${id}"]`);
          if (row) row.remove();
        }
        const seen = new Set(page.jobs.map((j) => j.id));
        for (const id of ids) {
          if (!seen.has(id)) tbody.querySelector(`tr[data-job-id="${id}"]`)?.remove();
        }
      }
      empty.hidden = tbody.children.length > 0;
    }, { everyMs: 2000, signal: mine.signal }));
    // New jobs: the first page every 5 s; the ones not on screen go on top.
    pollers.push(poll(async () => {
      const page = await api(listPath(), { signal: mine.signal });
      if (stale(mine)) return;
      const newest = rowsInView()[0];
      const fresh = page.jobs.filter((j) => !tbody.querySelector(`tr[data-job-id="${j.id}"]`)
        && (!newest || j.created_at >= newest.dataset.createdAt));
      put(fresh.reverse(), { append: false });
    }, { everyMs: 5000, signal: mine.signal }));
  }

  reload();
  return () => {
    controller.abort();
    clearTimeout(retryTimer);
    if (run) run.abort();
    for (const p of pollers.splice(0)) p.stop();
  };
}
