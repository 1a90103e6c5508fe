// submit.js — the Submit page (#/submit): the file picker (dropzone.js: files and folders,
// the file list), task/model/tier/prompt/labels, an estimate before sending (POST
// /v1/estimate, debounced, data-state), then send as jobs (POST /v1/jobs, one
// Idempotency-Key per job) or as one batch (batchsend.js), and watch the submitted jobs
// live (GET /v1/jobs?ids=). A partial failure is never silent: the page lists what was
// sent and what was not, and why.

import { api } from "./api.js";
import { announce, h, tokens, usd } from "./dom.js";
import { poll } from "./poll.js";
import { jobRow, jobsHead } from "./jobs.js";
import { fileDrop } from "./dropzone.js";
import { sendAsBatch } from "./batchsend.js";
import { ACTIVE, mapLimited, newKey, TASKS, TIERS } from "./util.js";

const MULTI = new Set(["ask", "compare", "custom"]); // one job holds all the files
const NEEDS_PROMPT = new Set(["ask", "compare", "custom"]);
const ESTIMATE_MAX = 20; // estimates asked per change; beyond, extrapolated by the mean

/** A batch name nobody used yet: "console-" and the time to the second. */
function freshName() {
  return "console-" + new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
}

/** Renders the Submit page into `root`; returns the cleanup the router calls. */
export function renderSubmit(root) {
  const pollers = [];
  let models = [];
  let timer = null;
  let estimating = null; // AbortController of the running estimate
  let sending = false;
  const gone = new AbortController();

  const picker = fileDrop(() => changed());
  const files = picker.files;

  const task = h("select", { id: "submit-task", "data-testid": "submit-task" },
    TASKS.map((t) => h("option", { value: t, selected: t === "caption" }, t)));
  const model = h("select", { id: "submit-model", "data-testid": "submit-model" },
    h("option", { value: "" }, "Server default"));
  const tier = h("select", { id: "submit-tier", "data-testid": "submit-tier" },
    h("option", { value: "" }, "Server default"),
    TIERS.map((t) => h("option", { value: t }, t)));
  const prompt = h("textarea", { id: "submit-prompt", "data-testid": "submit-prompt",
    rows: "3", maxlength: "20000" });
  const promptHint = h("span", { class: "hint", id: "submit-prompt-hint" }, "Optional.");
  prompt.setAttribute("aria-describedby", "submit-prompt-hint");
  const labels = h("input", { id: "submit-labels", "data-testid": "submit-labels",
    type: "text", placeholder: "cat, dog, bird", autocomplete: "off" });
  const labelsField = h("div", { class: "field", hidden: true },
    h("label", { for: "submit-labels" }, "Labels (comma separated)"), labels);
  const asBatch = h("input", { id: "submit-as-batch", "data-testid": "submit-as-batch",
    type: "checkbox" });
  const batchName = h("input", { id: "submit-batch-name", "data-testid": "submit-batch-name",
    type: "text", disabled: true, autocomplete: "off", maxlength: "200",
    value: freshName() });

  const estTokens = h("span", { "data-testid": "estimate-tokens", "data-tokens": "" }, "–");
  const estUsd = h("span", { "data-testid": "estimate-usd", "data-min": "", "data-max": "" },
    "–");
  const estNote = h("span", { class: "hint" }, "Add files to see the estimate.");
  const estimate = h("div", { class: "estimate", "data-testid": "estimate",
    "data-state": "idle", "aria-live": "polite" },
  h("span", {}, "Estimate: "), estTokens, " input tokens, ", estUsd, ". ", estNote);
  const send = h("button", { type: "submit", "data-testid": "submit-send", disabled: true },
    "Send");
  const error = h("p", { role: "alert", class: "error", "data-testid": "submit-error" });
  // What a partly failed send created and what it did not (filled by sendJobs/batchsend.js).
  const outcome = h("div", { class: "outcome", "data-testid": "submit-outcome", hidden: true });
  const submittedBody = h("tbody");
  const submitted = h("section", { class: "submitted", hidden: true },
    h("h2", {}, "Submitted"),
    h("div", { class: "table-scroll" },
      h("table", { "data-testid": "submitted", class: "jobs-table cards" },
        h("caption", { class: "visually-hidden" }, "Jobs sent from this page"),
        jobsHead({ file: true }), submittedBody)));

  const form = h("form", { class: "submit-form", "aria-label": "Submit jobs", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "submit-task" }, "Task"), task),
    h("div", { class: "field" }, h("label", { for: "submit-model" }, "Model"), model),
    h("div", { class: "field" }, h("label", { for: "submit-tier" }, "Tier"), tier),
    h("div", { class: "field field-wide" }, h("label", { for: "submit-prompt" }, "Prompt"),
      prompt, promptHint),
    labelsField,
    h("div", { class: "field field-wide batch-fields" },
      h("label", { class: "check" }, asBatch, " Send as a batch"),
      h("label", { for: "submit-batch-name" }, "Batch name"), batchName),
    h("div", { class: "field-wide" }, estimate),
    h("div", { class: "actions field-wide" }, send),
    error, outcome);

  root.replaceChildren(
    h("section", { class: "page submit-page", "data-testid": "submit-page" },
      h("h1", { tabindex: "-1" }, "Submit"),
      picker.element, form, submitted),
  );

  // ---- form state -------------------------------------------------------------------
  function labelList() {
    return labels.value.split(",").map((s) => s.trim()).filter(Boolean);
  }

  /** Why the form cannot be sent yet, or "" when it can. */
  function problem() {
    const kind = task.value;
    if (!files.length) return "Add files to see the estimate.";
    if (kind === "compare" && files.length < 2) return "Compare needs at least two images.";
    if (NEEDS_PROMPT.has(kind) && !prompt.value.trim()) return "Write the prompt.";
    if (kind === "classify" && !labelList().length) return "Give the labels.";
    if (asBatch.checked && !batchName.value.trim()) return "Name the batch.";
    return "";
  }

  /** The jobs to send: one per file, or one with every file (multi-image tasks). */
  function groups() {
    return MULTI.has(task.value) ? [files] : files.map((f) => [f]);
  }

  function fieldsOf(form, group) {
    for (const entry of group) form.append("image", entry.file, entry.path);
    form.append("task", task.value);
    if (prompt.value.trim()) form.append("prompt", prompt.value);
    if (model.value) form.append("model", model.value);
    if (task.value === "classify") form.append("labels", JSON.stringify(labelList()));
    if (tier.value) form.append("options", JSON.stringify({ tier: tier.value }));
    return form;
  }

  function fillModels() {
    const chosen = model.value;
    const usable = models.filter((m) => m.usable && m.tasks.includes(task.value));
    // Spread: the DOM's replaceChildren does not flatten an array (it would become one text
    // node, "[object HTMLOptionElement],...", leaving only "Server default" to pick).
    model.replaceChildren(h("option", { value: "" }, "Server default"),
      ...usable.map((m) => h("option", { value: m.id, selected: m.id === chosen },
        m.default_for.length ? `${m.id} (default)` : m.id)));
  }

  function changed() {
    labelsField.hidden = task.value !== "classify";
    promptHint.textContent = NEEDS_PROMPT.has(task.value) ? "Required for this task."
      : "Optional.";
    batchName.disabled = !asBatch.checked;
    const count = groups().length;
    send.textContent = asBatch.checked ? "Send as a batch"
      : count ? `Send ${count} job${count === 1 ? "" : "s"}` : "Send";
    send.disabled = sending || Boolean(problem());
    clearTimeout(timer);
    if (estimating) estimating.abort();
    estimating = null;
    const why = problem();
    if (why) {
      setEstimate("idle", null, why);
      return;
    }
    setEstimate("loading", null, "Estimating…");
    timer = setTimeout(runEstimate, 400);
  }

  function setEstimate(state, found, note) {
    estimate.setAttribute("data-state", state);
    estNote.textContent = note;
    if (state !== "ready" || !found) {
      if (state !== "loading") {
        estTokens.textContent = "–";
        estTokens.setAttribute("data-tokens", "");
        estUsd.textContent = "–";
        estUsd.setAttribute("data-min", "");
        estUsd.setAttribute("data-max", "");
      }
      return;
    }
    estTokens.textContent = (found.approx ? "≈ " : "") + tokens(found.tokens);
    estTokens.setAttribute("data-tokens", String(found.tokens));
    estUsd.textContent = found.known ? `${usd(found.min)} – ${usd(found.max)}` : "price unknown";
    estUsd.setAttribute("data-min", found.known ? found.min : "");
    estUsd.setAttribute("data-max", found.known ? found.max : "");
  }

  async function runEstimate() {
    const controller = new AbortController();
    estimating = controller;
    const all = groups();
    const asked = all.slice(0, ESTIMATE_MAX);
    try {
      const answers = await mapLimited(asked, 3, (group) =>
        api("/v1/estimate", { method: "POST", form: fieldsOf(new FormData(), group),
          signal: controller.signal }));
      if (controller.signal.aborted) return;
      const scale = all.length / asked.length;
      const sum = (pick) => answers.reduce((total, a) => total + Number(pick(a) || 0), 0);
      const known = answers.every((a) => a.known && a.cost_usd);
      const found = {
        tokens: Math.round(sum((a) => a.input_tokens) * scale),
        min: (sum((a) => a.cost_usd && a.cost_usd.min) * scale).toFixed(6),
        max: (sum((a) => a.cost_usd && a.cost_usd.max) * scale).toFixed(6),
        known,
        approx: scale !== 1,
      };
      const warnings = answers.flatMap((a) => a.warnings || []).map((w) => w.message);
      const note = (found.approx ? `(from ${asked.length} of ${all.length} jobs) ` : "") +
        (known ? "" : `${answers.find((a) => !a.known)?.reason || "No price known."} `) +
        [...new Set(warnings)].join(" ");
      const count = `${all.length} job${all.length === 1 ? "" : "s"}.`;
      setEstimate("ready", found, note.trim() || count);
    } catch (err) {
      if (controller.signal.aborted) return;
      setEstimate("error", null, `Cannot estimate: ${err.message}`);
    } finally {
      if (estimating === controller) estimating = null;
    }
  }

  for (const control of [task, model, tier, prompt, labels, asBatch, batchName]) {
    control.addEventListener(control.tagName === "SELECT" || control.type === "checkbox"
      ? "change" : "input", () => {
      if (control === task) fillModels();
      changed();
    });
  }

  // ---- send -------------------------------------------------------------------------
  // Which file(s) each sent job was made from: only this page knows it (the API keeps no
  // file name for a job outside a batch), so it is kept for the page's life.
  const fileOf = new Map();

  function watch(ids) {
    if (gone.signal.aborted) return; // sent, but the page is gone: nothing to show it in
    const poller = poll(async () => {
      const page = await api(`/v1/jobs?ids=${ids.join(",")}`, { signal: gone.signal });
      for (const job of page.jobs) {
        const old = submittedBody.querySelector(`tr[data-job-id="${job.id}"]`);
        if (old) old.replaceWith(jobRow(job, { file: fileOf.get(job.id) ?? "" }));
      }
      return page.jobs.every((job) => !ACTIVE.has(job.status));
    }, { everyMs: 2000, until: (allEnded) => allEnded, signal: gone.signal });
    pollers.push(poller);
  }

  async function sendJobs() {
    const all = groups();
    const ids = [];
    const failed = []; // [group, message]: every one listed, none only in a passing toast
    outcome.hidden = true;
    submitted.hidden = false;
    // This send's rows, by file order (answers arrive in any order): a row goes before the
    // next one of this send already shown, else last (earlier sends' rows stay above).
    const rows = new Array(all.length);
    await mapLimited(all, 4, async (group, index) => {
      try {
        const job = await api("/v1/jobs", { method: "POST", form: fieldsOf(new FormData(), group),
          headers: { "Idempotency-Key": newKey() }, signal: gone.signal });
        fileOf.set(job.id, group.map((f) => f.path).join(", "));
        rows[index] = jobRow(job, { file: fileOf.get(job.id) });
        const after = rows.slice(index + 1).find(Boolean);
        if (after) after.before(rows[index]);
        else submittedBody.append(rows[index]);
        ids.push(job.id);
      } catch (err) {
        if (gone.signal.aborted) throw err;
        failed.push([group, err.message]);
      }
    });
    if (gone.signal.aborted) return;
    const sent = `${ids.length} of ${all.length} job${all.length === 1 ? "" : "s"} sent`;
    announce(failed.length ? `${sent}; ${failed.length} not sent.` : `${sent}.`);
    for (let i = 0; i < ids.length; i += 100) watch(ids.slice(i, i + 100));
    if (failed.length) showUnsent(sent, failed);
  }

  // Lists the jobs not sent and offers to keep only their files: a second Send then sends
  // just those (sending all again would duplicate the jobs that were created).
  function showUnsent(sent, failed) {
    const unsent = new Set(failed.flatMap(([group]) => group));
    const keep = h("button", { type: "button", "data-testid": "outcome-keep-unsent",
      onclick: () => {
        picker.retain(unsent);
        outcome.hidden = true;
      } }, `Keep only the ${unsent.size} unsent file${unsent.size === 1 ? "" : "s"}`);
    outcome.replaceChildren(
      h("p", {}, `${sent}; these were not:`),
      h("ul", { "data-testid": "outcome-unsent" }, failed.map(([group, message]) =>
        h("li", { "data-key": group.map((f) => f.path).join("+") },
          h("code", {}, group.map((f) => f.path).join(", ")), ": ", message))),
      h("div", { class: "actions" }, keep));
    outcome.hidden = false;
  }

  function sendBatch() {
    return sendAsBatch({
      spec: {
        name: batchName.value.trim(), task: task.value,
        prompt: prompt.value.trim() ? prompt.value : null, model: model.value || null,
        labels: task.value === "classify" ? labelList() : null,
        options: tier.value ? { tier: tier.value } : {},
      },
      groups: groups(), signal: gone.signal, notice: outcome,
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending || problem()) return;
    sending = true;
    send.disabled = true;
    error.textContent = "";
    try {
      await (asBatch.checked ? sendBatch() : sendJobs());
    } catch (err) {
      if (gone.signal.aborted) return;
      error.textContent = `Not sent: ${err.message}`;
      if (asBatch.checked && (err.code === "batch_closed" || err.code === "batch_cancelled")) {
        // The name belongs to a batch that takes no more items: offer a fresh one at once.
        batchName.value = freshName();
        error.textContent += ` The name is now ${batchName.value}: press Send again to use it.`;
      }
    } finally {
      sending = false;
      if (!gone.signal.aborted) changed();
    }
  });

  api("/v1/models", { signal: gone.signal }).then((answer) => {
    models = answer.models;
    fillModels();
  }, (err) => {
    if (!gone.signal.aborted) error.textContent = `Cannot list models: ${err.message}`;
  });
  changed();

  return () => {
    gone.abort();
    clearTimeout(timer);
    if (estimating) estimating.abort();
    pollers.forEach((p) => p.stop());
    picker.destroy();
  };
}
