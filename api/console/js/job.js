// job.js: one job's page (#/jobs/<id>): status (live, polled every second while the job is
// queued or running), the input images with the result's boxes/masks drawn over them
// (overlay.js), the text answer, the attempts with their errors and retry delays, estimate
// versus actual tokens and cost, and the Retry and Cancel actions.

import { api, ApiError, blobUrl } from "./api.js";
import { announce, badge, duration, h, tokens, usd, when } from "./dom.js";
import { createOverlay } from "./overlay.js";
import { poll } from "./poll.js";
import { ACTIVE, newKey } from "./util.js";

const TEXT_TASKS = new Set(["caption", "ask", "compare", "classify", "custom"]);

function seconds(s) {
  const n = Number(s);
  return (n < 10 ? n.toFixed(2) : n.toFixed(0)) + " s";
}

function attemptItem(a) {
  const bits = ["Attempt " + a.number, a.outcome];
  if (a.http_status) bits.push("HTTP " + a.http_status);
  if (a.served_tier || a.requested_tier) bits.push("tier " + (a.served_tier || a.requested_tier));
  if (a.cost_usd) bits.push(usd(a.cost_usd));
  if (a.finished_at) bits.push(duration((Date.parse(a.finished_at) - Date.parse(a.started_at))
    / 1000));
  return h("li", {
    "data-testid": "attempt", "data-number": a.number, "data-outcome": a.outcome,
    "data-error-class": a.error_class || "", "data-http-status": a.http_status ?? "",
    "data-retry-delay-s": a.retry_delay_s ?? "", class: "attempt attempt-" + a.outcome,
  },
  h("div", null, bits.join(" · ")),
  a.error_class || a.error_message ? h("div", { class: "attempt-error" },
    a.error_class ? h("code", null, a.error_class) : null, a.error_class ? ": " : null,
    a.error_message || "") : null,
  a.retry_delay_s !== null && a.retry_delay_s !== undefined
    ? h("div", { class: "muted" }, "retried after " + seconds(a.retry_delay_s)) : null,
  h("div", { class: "muted" }, "started " + when(a.started_at)));
}

function costList(job) {
  const est = job.estimate || {};
  const range = est.cost_usd || {};
  const usage = job.usage || {};
  const estUsd = range.min === range.max ? usd(range.max)
    : usd(range.min) + " – " + usd(range.max);
  return [
    h("dt", null, "Input tokens, estimated"),
    h("dd", { "data-testid": "estimate-tokens", "data-tokens": est.input_tokens ?? "" },
      tokens(est.input_tokens)),
    h("dt", null, "Tokens, actual (input / output / total)"),
    h("dd", { "data-testid": "actual-tokens", "data-tokens": usage.prompt_tokens ?? "" },
      job.usage ? [tokens(usage.prompt_tokens), tokens(usage.candidates_tokens),
        tokens(usage.total_tokens)].join(" / ") : "–"),
    h("dt", null, "Cost, estimated"),
    h("dd", { "data-testid": "estimate-usd", "data-min": range.min ?? "",
      "data-max": range.max ?? "" }, range.max !== undefined ? estUsd : "–"),
    h("dt", null, "Cost, actual"),
    h("dd", { "data-testid": "actual-usd", "data-usd": job.cost_usd ?? "" },
      usd(job.cost_usd) + (job.cached_from ? " (cached)" : "")),
  ];
}

function resultText(job) {
  const r = job.result;
  if (!r || !TEXT_TASKS.has(job.task)) return null;
  let body;
  if (job.task === "classify") {
    // The model's words only when they say more than the label ("shapes — shapes" did not).
    const text = (r.text || "").trim();
    const same = text.toLowerCase() === String(r.label || "").trim().toLowerCase();
    body = [h("strong", null, r.label || "(no label)"), text && !same ? " — " + text : ""];
  }
  else if ("json" in r) body = h("pre", null, JSON.stringify(r.json, null, 2));
  else body = r.text;
  return h("section", { "aria-label": "Answer" }, h("h2", null, "Answer"),
    h("div", { "data-testid": "job-result-text", class: "result-text" }, body));
}

function details(job) {
  const rows = [
    ["Job id", h("code", null, job.id)], ["Task", job.task], ["Model", job.model],
    ["Tier", job.tier + (job.served_tier ? " (served " + job.served_tier + ")" : "")],
    ["Created", when(job.created_at)], ["Started", when(job.started_at)],
    ["Finished", when(job.finished_at)], ["Prompt", job.prompt || "–"],
  ];
  if (job.labels) rows.push(["Labels", job.labels.join(", ")]);
  // Collapsed: a schema can be long, and the answer above is what the page is about.
  if (job.response_schema) rows.push(["Schema", h("details", { "data-testid": "job-schema" },
    h("summary", null, "JSON Schema"),
    h("pre", { class: "schema" }, JSON.stringify(job.response_schema, null, 2)))]);
  if (job.batch_id) rows.push(["Batch", h("a", { href: "#/batches/" + job.batch_id },
    job.batch_id.slice(0, 8) + (job.batch_key ? " · " + job.batch_key : ""))]);
  if (job.cached_from) rows.push(["Cached from", h("a", { href: "#/jobs/" + job.cached_from },
    job.cached_from.slice(0, 8))]);
  return h("dl", { class: "details" }, rows.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

/** Renders the job page into root; returns cleanup. */
export function renderJob(root, { id }) {
  const controller = new AbortController();
  let poller = null;
  let overlay = null;
  let shownKey = "";
  let position = 0;
  // The job as last shown. The image tabs are built once, so their handler must read this,
  // not the job it was built with: a tab clicked after the job finished would otherwise
  // redraw from the queued copy (no result, so no boxes or masks) and never heal.
  let current = null;

  const page = h("article", { "data-testid": "job-page", class: "job-page",
    "data-job-id": id, "data-status": "" });
  const title = h("h1", { tabindex: "-1" }, "Job " + id.slice(0, 8));
  const status = h("span", { "data-testid": "job-status" });
  const retry = h("button", { type: "button", "data-testid": "job-retry", disabled: true,
    onclick: doRetry }, "Retry");
  const cancel = h("button", { type: "button", "data-testid": "job-cancel", disabled: true,
    onclick: doCancel }, "Cancel");
  const retryOf = h("p", { class: "muted" });
  const errorBox = h("div", { "data-testid": "job-error", class: "job-error", role: "alert",
    hidden: true });
  const tabs = h("div", { role: "tablist", "aria-label": "Input images", class: "tabs" });
  const viewer = h("div", { class: "viewer" });
  const textSlot = h("div");
  const attempts = h("ol", { "data-testid": "attempts", class: "attempts" });
  const cost = h("dl", { "data-testid": "cost", class: "cost" });
  const detailSlot = h("div");
  const warnings = h("ul", { class: "warnings" });

  // Until the job arrives only the title and "Loading…" show (aria-busy): no actions to
  // press and no empty sections. A job the key cannot see never shows them at all.
  const actions = h("div", { class: "actions", hidden: true }, retry, cancel);
  const loading = h("p", { "data-testid": "job-loading", class: "muted" }, "Loading…");
  const body = h("div", { hidden: true });
  page.setAttribute("aria-busy", "true");
  page.append(
    h("header", { class: "job-header" }, title, status, actions),
    loading, errorBox,
    body);
  body.append(retryOf, warnings,
    h("div", { class: "job-grid" },
      h("section", { class: "job-media", "aria-label": "Images" }, tabs, viewer),
      h("div", { class: "job-details" }, textSlot,
        h("section", { "aria-label": "Cost" }, h("h2", null, "Cost"), cost),
        h("section", { "aria-label": "Attempts" }, h("h2", null, "Attempts"), attempts),
        h("section", { "aria-label": "Details" }, h("h2", null, "Details"), detailSlot))));
  root.append(page);

  function show(job) {
    current = job;
    loading.remove();
    page.removeAttribute("aria-busy");
    actions.hidden = false;
    body.hidden = false;
    const previous = page.dataset.status;
    page.dataset.jobId = job.id;
    page.dataset.status = job.status;
    status.replaceChildren(badge(job.status));
    if (previous && previous !== job.status) announce("Job " + job.status + ".");
    retry.disabled = ACTIVE.has(job.status);
    cancel.disabled = !ACTIVE.has(job.status);
    retryOf.replaceChildren(...(job.retry_of ? ["Retry of ", h("a", {
      "data-testid": "retry-of", href: "#/jobs/" + job.retry_of }, job.retry_of.slice(0, 8))]
      : []));
    errorBox.hidden = !job.error;
    errorBox.replaceChildren(...(job.error ? [h("code", null, job.error.code), ": ",
      job.error.message] : []));
    if (job.error) errorBox.dataset.code = job.error.code;
    warnings.replaceChildren(...(job.warnings || []).map((w) => h("li", null,
      h("code", null, w.code), ": ", w.message)));
    textSlot.replaceChildren(resultText(job) || "");
    cost.replaceChildren(...costList(job));
    attempts.replaceChildren(...job.attempts.map(attemptItem));
    if (!job.attempts.length) attempts.append(h("li", { class: "muted" }, "No attempt yet."));
    detailSlot.replaceChildren(details(job));
    showImages(job);
  }

  function showImages(job) {
    const inputs = job.inputs || [];
    if (inputs.length > 1 && !tabs.children.length) {
      inputs.forEach((input) => tabs.append(h("button", {
        type: "button", role: "tab", "data-testid": "image-tab",
        "data-position": input.position, "aria-selected": String(input.position === position),
        onclick: () => {
          position = input.position;
          for (const t of tabs.children) {
            t.setAttribute("aria-selected", String(t.dataset.position === String(position)));
          }
          showImages(current);
        },
      }, "Image " + (input.position + 1))));
    }
    // Objects only when the result is there (detect/segment describe the first image).
    const objects = position === 0 && job.result && Array.isArray(job.result.objects)
      ? job.result.objects : [];
    const key = job.id + "/" + position + "/" + (job.status === "succeeded" ? "done" : "");
    if (key === shownKey || !inputs.length) return;
    shownKey = key;
    if (overlay) overlay.destroy();
    const input = inputs.find((i) => i.position === position) || inputs[0];
    const size = position === 0 && job.result && job.result.image ? job.result.image : input;
    const imageUrl = blobUrl(`/v1/jobs/${job.id}/images/${input.position}`);
    imageUrl.catch((err) => viewer.prepend(h("p", { class: "error" },
      "Image unavailable: " + err.message)));
    overlay = createOverlay(viewer, {
      imageUrl, width: size.width, height: size.height, objects,
      maskUrls: objects.map((o) => (o.mask_url ? blobUrl(o.mask_url) : null)),
      alt: "Input image " + (input.position + 1),
    });
  }

  async function load() {
    const job = await api("/v1/jobs/" + encodeURIComponent(id), { signal: controller.signal });
    show(job);
    return job;
  }

  function watch() {
    if (poller) poller.stop();
    poller = poll(load, { everyMs: 1000, until: (job) => !ACTIVE.has(job.status),
      signal: controller.signal });
  }

  // The actions below await a request; the user may have left the page meanwhile. Then
  // nothing more may happen here: no poller restarted (it would poll for good with the dead
  // signal), no toast, and no jump to the retry's page from whatever page is open now.
  const gone = () => controller.signal.aborted;

  async function doRetry() {
    retry.disabled = true;
    try {
      const job = await api(`/v1/jobs/${page.dataset.jobId}/retry`, { method: "POST",
        headers: { "Idempotency-Key": newKey() }, signal: controller.signal });
      if (gone()) return;
      announce("Retry submitted.");
      location.hash = "#/jobs/" + job.id;
    } catch (err) {
      if (gone()) return;
      announce("Retry refused: " + err.message);
      retry.disabled = false;
    }
  }

  async function doCancel() {
    cancel.disabled = true;
    try {
      const job = await api(`/v1/jobs/${page.dataset.jobId}/cancel`, { method: "POST",
        signal: controller.signal });
      if (gone()) return;
      show(job);
      announce("Job cancelled.");
      watch();
    } catch (err) {
      if (gone()) return;
      announce("Cancel refused: " + err.message);
      cancel.disabled = false;
    }
  }

  load().then((job) => {
    if (ACTIVE.has(job.status) && !gone()) watch();
  }, (err) => {
    if (err && err.name === "AbortError") return;
    page.dataset.status = "error";
    loading.remove();
    page.removeAttribute("aria-busy");
    const text = err instanceof ApiError && err.status === 404
      ? "No job " + id + " for this key: check the id, or go back to the jobs list."
      : "Could not load the job: " + err.message + " Reload the page to try again.";
    errorBox.hidden = false;
    errorBox.replaceChildren(h("p", null, text),
      h("p", null, h("a", { "data-testid": "job-back", href: "#/jobs" }, "Back to Jobs")));
  });

  return () => {
    controller.abort();
    if (poller) poller.stop();
    if (overlay) overlay.destroy();
  };
}
