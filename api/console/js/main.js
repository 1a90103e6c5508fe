// main.js: the console's boot. Shows the sign-in form until this tab holds a key (checked
// with GET /v1/models), then routes the hash (#/jobs, #/jobs/<id>, #/submit, #/batches,
// #/batches/<id>, #/spending) to the page modules, running the previous page's cleanup
// first and moving focus to the new page's heading. Also: sign-out, the skip link, the "/"
// key (first filter), and the way back to sign-in when any call answers 401.

import { api, clearKey, getKey, releaseBlobUrls, setKey } from "./api.js";
import { announce, clearAnnouncement, h } from "./dom.js";
import { renderJob } from "./job.js";
import { renderJobs } from "./jobs.js";
import { renderBatch, renderBatches } from "./batches.js";
import { renderSpending } from "./spending.js";
import { renderSubmit } from "./submit.js";

const view = document.getElementById("view");
const nav = document.querySelector("nav[aria-label=Console]");
const signout = document.querySelector("[data-testid=signout]");
let cleanup = null;
let checking = false; // a sign-in attempt's 401 is the form's error, not a sign-out

const ROUTES = [
  [/^jobs$/, (root, m, q) => renderJobs(root, q)],
  [/^jobs\/([^/]+)$/, (root, m) => renderJob(root, { id: decodeURIComponent(m[1]) })],
  [/^submit$/, (root) => renderSubmit(root)],
  [/^batches$/, (root, m, q) => renderBatches(root, q)],
  [/^batches\/([^/]+)$/, (root, m) => renderBatch(root, { id: decodeURIComponent(m[1]) })],
  [/^spending$/, (root, m, q) => renderSpending(root, q)],
];

function leave() {
  if (typeof cleanup === "function") {
    try {
      cleanup();
    } catch (err) {
      console.warn("cleanup failed", err); // never let one page block navigation
    }
  }
  cleanup = null;
  releaseBlobUrls();
  clearAnnouncement();
  view.replaceChildren();
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?", 2);
  return { path: path.replace(/\/+$/, ""), query: new URLSearchParams(search) };
}

function route() {
  if (!getKey()) {
    showSignIn();
    return;
  }
  const { path, query } = parseHash();
  const found = ROUTES.map(([re, render]) => [re.exec(path), render]).find(([m]) => m);
  if (!found) {
    location.replace("#/jobs");
    return;
  }
  leave();
  nav.hidden = false;
  signout.hidden = false;
  const section = path.split("/")[0];
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.route === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const [match, render] = found;
  cleanup = render(view, match, query);
  const heading = view.querySelector("h1");
  if (heading) {
    if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  const label = heading ? heading.textContent : "visionq";
  document.title = label + " · visionq console";
}

function showSignIn(message) {
  leave();
  nav.hidden = true;
  signout.hidden = true;
  document.title = "Sign in · visionq console";
  // The key must stay in this tab's session only, so it must not reach a password manager
  // (persistent, maybe synced). Chrome ignores autocomplete="off" (and unknown tokens) on a
  // type=password field and still offers to save it; "new-password" even offers to generate
  // one. What Chrome honours is the field's type: with no type=password field on the page
  // its password manager has no credential to save. So: a text field, masked by CSS
  // (-webkit-text-security, class "secret"), autocomplete="off" (which Chrome does honour for
  // a text field's form history), and no spellcheck (enhanced spellcheck sends text away).
  // data-1p-ignore / data-lpignore ask the common manager extensions to leave it too.
  const key = h("input", { type: "text", id: "signin-key", "data-testid": "signin-key",
    class: "secret", name: "visionq-api-key", autocomplete: "off", autocapitalize: "off",
    spellcheck: "false", required: true, "data-1p-ignore": "true", "data-lpignore": "true" });
  const error = h("p", { "data-testid": "signin-error", role: "alert", class: "error",
    hidden: !message }, message || "");
  const button = h("button", { type: "submit", "data-testid": "signin-submit" }, "Sign in");
  const form = h("form", { "data-testid": "signin-form", role: "form", "aria-label": "Sign in",
    class: "signin", onsubmit: submit },
  h("h1", { tabindex: "-1" }, "Sign in"),
  h("p", null, "Enter a visionq API key. It stays in this browser tab only and is sent as a " +
    "Bearer header to this server."),
  h("label", { for: "signin-key" }, "API key"), key, button, error);
  view.append(form);
  key.focus();

  async function submit(e) {
    e.preventDefault();
    const value = key.value.trim();
    if (!value) {
      error.textContent = "Enter an API key (visionq keys create makes one).";
      error.hidden = false;
      return;
    }
    button.disabled = true;
    checking = true;
    setKey(value);
    try {
      await api("/v1/models");
      announce("Signed in.");
      if (parseHash().path) route();
      else location.replace("#/jobs"); // hashchange routes
    } catch (err) {
      clearKey();
      error.textContent = err.status === 401
        ? "This key was refused: check it (or ask for a new one) and try again."
        : "Could not check the key: " + err.message;
      error.hidden = false;
      key.focus();
    } finally {
      checking = false;
      button.disabled = false;
    }
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("signed-out", () => {
  if (!checking) showSignIn("Your key was refused: sign in again.");
});
signout.addEventListener("click", () => {
  clearKey();
  showSignIn();
  announce("Signed out.");
});
document.querySelector(".skip-link").addEventListener("click", (e) => {
  e.preventDefault(); // "#view" is not a route: move focus without touching the hash
  const target = view.querySelector("h1") || view;
  if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
  target.focus();
});
document.addEventListener("keydown", (e) => {
  const tag = e.target && e.target.tagName;
  if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") {
    if (e.key === "Escape") {
      const error = view.querySelector("[data-testid=signin-error]");
      if (error) error.hidden = true;
    }
    return;
  }
  if (e.key === "Escape") {
    const error = view.querySelector("[data-testid=signin-error]");
    if (error) error.hidden = true;
  } else if (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey) {
    const first = view.querySelector("form select, form input, form textarea");
    if (first) {
      e.preventDefault();
      first.focus();
    }
  }
});

route();
