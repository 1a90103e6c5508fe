// batchsend.js — the Submit page's "Send as a batch" (split from submit.js): creates the
// batch, adds its items 50 files a call, closes it and opens its page. When a step fails
// after the batch exists, the page says what was created (the batch, how many items are in
// it, which were refused and why) and offers to open the batch, add the missing items (an
// item is keyed by its files' relative paths, so adding one again is harmless: the API
// answers "exists"), close it as it is, or cancel it. An open batch is never left silently.

import { api, ApiError } from "./api.js";
import { announce, h } from "./dom.js";

const BATCH_CHUNK = 50; // files per POST /v1/batches/{id}/items

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Adds state.groups[state.next..] as items; state.next only moves past answered calls. */
async function addItems(state, signal) {
  while (state.next < state.groups.length) {
    const chunk = [];
    let size = 0;
    for (let i = state.next; i < state.groups.length; i += 1) {
      const group = state.groups[i];
      if (chunk.length && size + group.length > BATCH_CHUNK) break;
      chunk.push(group);
      size += group.length;
    }
    const form = new FormData();
    let part = 0;
    const items = chunk.map((group) => ({ key: group.map((f) => f.path).join("+"),
      images: group.map(() => ({ part: part++ })) }));
    form.append("items", JSON.stringify({ items }));
    for (const group of chunk) for (const f of group) form.append("image", f.file, f.path);
    const added = await api(`/v1/batches/${state.batch.id}/items`, { method: "POST", form,
      signal });
    for (const item of added.items || []) {
      if (item.outcome === "rejected") {
        state.refused.push({ key: item.key, message: item.error ? item.error.message : "" });
      }
    }
    state.next += chunk.length;
  }
}

function refusedList(state) {
  if (!state.refused.length) return null;
  return h("ul", { "data-testid": "outcome-refused", class: "outcome-refused" },
    state.refused.map((r) => h("li", { "data-key": r.key }, h("code", {}, r.key), ": ",
      r.message || "refused")));
}

function batchLink(batch) {
  return h("a", { href: `#/batches/${batch.id}`, "data-testid": "outcome-batch" },
    `Open batch ${batch.name}`);
}

/** Adds the items and closes the batch; on a failure, fills `notice` with the choices. */
async function finish(state, signal, notice) {
  try {
    await addItems(state, signal);
    await api(`/v1/batches/${state.batch.id}/close`, { method: "POST", signal });
  } catch (err) {
    if (signal.aborted) throw err;
    incomplete(state, err, signal, notice);
    return;
  }
  const { batch, groups, refused } = state;
  if (refused.length) {
    // Stay here: the refused files and their reasons would be lost on the batch's page.
    const text = `Batch ${batch.name} sent with ${plural(groups.length - refused.length,
      "item")}; ${plural(refused.length, "item")} refused:`;
    notice.replaceChildren(h("div", {}, h("p", {}, text), refusedList(state), batchLink(batch)));
    notice.hidden = false;
    announce(`${text} ${refused.map((r) => r.key).join(", ")}.`);
    return;
  }
  announce(`Batch ${batch.name} sent.`);
  location.hash = `#/batches/${batch.id}`;
}

function incomplete(state, err, signal, notice) {
  const { batch, groups, next } = state;
  const missing = groups.length - next;
  const name = `${batch.name} (${batch.id.slice(0, 8)})`;
  const text = missing
    ? `Batch ${name} is open with ${next} of ${plural(groups.length, "item")} sent from here: ` +
      `adding the other ${missing} failed (${err.message}).`
    : `All ${plural(groups.length, "item")} were added to batch ${name}, but closing it ` +
      `failed (${err.message}); it is still open.`;
  const status = h("p", { class: "error", role: "alert" });
  const buttons = [];
  const action = (testid, label, fn) => {
    const button = h("button", { type: "button", "data-testid": testid, onclick: async () => {
      buttons.forEach((b) => { b.disabled = true; });
      status.textContent = "";
      try {
        await fn();
      } catch (failure) {
        if (signal.aborted) return;
        status.textContent = `${label} failed: ${failure.message}`;
        buttons.forEach((b) => { b.disabled = false; });
      }
    } }, label);
    buttons.push(button);
    return button;
  };
  const after = (what) => async () => {
    await api(`/v1/batches/${batch.id}/${what}`, { method: "POST", signal });
    if (signal.aborted) return;
    announce(what === "close" ? `Batch ${batch.name} closed with ${plural(next, "item")}.`
      : `Batch ${batch.name} cancelled.`);
    location.hash = `#/batches/${batch.id}`;
  };
  notice.replaceChildren(h("div", {},
    h("p", {}, text),
    refusedList(state),
    h("div", { class: "actions" }, batchLink(batch),
      missing ? action("outcome-resume", `Add the ${missing} missing`, () =>
        finish(state, signal, notice)) : null,
      action("outcome-close", missing ? `Close it with ${plural(next, "item")}` : "Close it",
        after("close")),
      action("outcome-cancel", "Cancel the batch", after("cancel"))),
    status));
  notice.hidden = false;
  announce(text);
}

/**
 * Sends `groups` (lists of {file, path}) as one new batch made from `spec` (the fields of
 * POST /v1/batches). A failure before the batch exists throws (nothing was created); one
 * after it is shown in `notice` with the choices above.
 */
export async function sendAsBatch({ spec, groups, signal, notice }) {
  notice.hidden = true;
  notice.replaceChildren();
  const batch = await api("/v1/batches", { method: "POST",
    json: { ...spec, expected_items: groups.length }, signal });
  if (batch.state !== "open") {
    // The name is an existing batch's (POST answers it as is), and that one takes no items.
    throw new ApiError(409, `batch_${batch.state}`, `A batch named ${batch.name} already ` +
      `exists and is ${batch.state}: it takes no more items.`);
  }
  await finish({ batch, groups, next: 0, refused: [] }, signal, notice);
}
