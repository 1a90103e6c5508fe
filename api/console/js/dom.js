// dom.js: small DOM builders and formatters every page shares: h() (HTML elements) and svg()
// (SVG elements) without innerHTML, money/token/duration/time formatting, the status badge,
// and announce() for the one role=status region (screen readers hear status changes).

const SVG_NS = "http://www.w3.org/2000/svg";
const PROPS = new Set(["value", "checked", "disabled", "selected", "hidden", "indeterminate"]);

function fill(el, attrs, children, isSvg) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (!isSvg && PROPS.has(name)) {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** An HTML element: h("a", {href: "#/jobs", class: "x", onclick: fn}, "text", node, [..]). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children, false);
}

/** An SVG element, same arguments as h(). */
export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children, true);
}

/** A table cell with its caption for the narrow-screen card layout (console.css). */
export function cell(caption, ...content) {
  return h("td", null, h("span", { class: "cell-label", "aria-hidden": "true" }, caption),
    ...content);
}

/** Money as the API gives it (a decimal string) to "$0.0123"; "–" when unknown. */
export function usd(str) {
  if (str === null || str === undefined || str === "") return "–";
  const n = Number(str);
  if (!Number.isFinite(n)) return String(str);
  if (n === 0) return "$0";
  const digits = Math.abs(n) >= 1 ? 2 : Math.abs(n) >= 0.01 ? 4 : 6;
  return "$" + n.toFixed(digits);
}

/** A token count with thousands separators; "–" when unknown. */
export function tokens(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US");
}

/** Seconds to "0.4 s", "12 s", "3 min 5 s", "2 h 10 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "–";
  const s = Number(seconds);
  // Round once, to the smallest unit shown, BEFORE splitting into units: rounding each part
  // on its own turned 119.6 s into "1 min 60 s" and 3599.7 s into "59 min 60 s".
  const tenths = Math.round(s * 10) / 10;
  if (tenths < 10) return tenths.toString() + " s";
  const whole = Math.round(s);
  if (whole < 60) return whole + " s";
  if (whole < 3600) return Math.floor(whole / 60) + " min " + (whole % 60) + " s";
  const minutes = Math.round(s / 60);
  return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
}

/** An ISO time as "2026-12-05 15:04:05 UTC" (UTC: the API's and the filters' zone). */
export function when(iso) {
  if (!iso) return "–";
  const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z");
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

/** A status badge: <span class="badge badge-succeeded">succeeded</span>. */
export function badge(status) {
  return h("span", { class: "badge badge-" + String(status) }, String(status));
}

const SHOWN_MS = 6000; // the status line is a passing message: it must not sit over content
let hideTimer = null;

/** Says text in the page's role=status region (data-testid=toast); it hides after 6 s. */
export function announce(text) {
  const region = document.querySelector("[data-testid=toast]");
  if (!region) return;
  region.textContent = "";
  clearTimeout(hideTimer);
  // A fresh text node after clearing makes screen readers repeat an identical message.
  setTimeout(() => {
    region.textContent = text;
    clearTimeout(hideTimer);
    hideTimer = setTimeout(() => {
      if (region.textContent === text) region.textContent = "";
    }, SHOWN_MS);
  }, 30);
}

/** Empties the status line (on route change: an old page's message is not about this one;
 * a message announced just before the change still shows, it is set 30 ms later). */
export function clearAnnouncement() {
  const region = document.querySelector("[data-testid=toast]");
  if (region) region.textContent = "";
}
