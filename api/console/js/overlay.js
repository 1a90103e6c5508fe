// overlay.js: the job page's image viewer. Shows an input image with the result's boxes,
// masks and labels drawn by an SVG laid over it in IMAGE PIXEL coordinates (viewBox 0 0 W H,
// so a box [x0,y0,x1,y1] is drawn as given, no maths here), strokes that stay 3 CSS px at
// any zoom (vector-effect), per-object and per-layer toggles, and zoom (buttons and the
// + - 0 keys; Fit by default) inside a scrolling viewport for panning.

import { h, svg } from "./dom.js";

/** Fixed colours: object i gets PALETTE[i % 12]. */
export const PALETTE = [
  "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
  "#f032e6", "#bfef45", "#469990", "#9a6324", "#800000", "#000075",
];

const MIN_ZOOM = 0.25; // the zoom-out floor, lowered to the Fit scale for large photos
const MAX_ZOOM = 8;
const VIEW_HEIGHT = 0.75; // the viewport's max-height (console.css: 75vh)
const LABEL_PX = 13; // label font size in CSS px from 50 % zoom up
const LABEL_MIN_PX = 10; // below 50 % the font shrinks with the zoom, down to this
const LABEL_MAX_EM = 14; // a chip is at most this many ems wide: longer labels end in "…"
let overlays = 0; // mask ids must be unique in the document

function layerToggle(name, text, onChange) {
  const input = h("input", {
    type: "checkbox", checked: true, "data-testid": "layer-" + name,
    onchange: (e) => onChange(name, e.target.checked),
  });
  return h("label", { class: "toggle" }, input, " ", text);
}

/**
 * Builds the viewer in container. objects: result.objects ({label, box, mask_url?});
 * maskUrls: per object an object URL (or a promise of one) of its mask, or null.
 * Returns {fit(), zoomBy(f), setVisible(i, on), setLayer(name, on), destroy()}.
 */
export function createOverlay(container, options) {
  const { imageUrl, width, height, objects = [], maskUrls = [], alt = "Input image 1" } = options;
  const uid = "ov" + ++overlays;
  let scale = 1;
  let fitMode = true;
  // Set by destroy(). The page's blob URLs are revoked on route change, possibly while one is
  // still being fetched: a late URL must not reach this (detached) viewer, or the browser
  // loads a revoked URL and logs ERR_FILE_NOT_FOUND.
  let destroyed = false;

  const img = h("img", { "data-testid": "overlay-image", alt, draggable: "false" });
  const layer = svg("svg", {
    "data-testid": "overlay-svg", class: "overlay-svg", viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none", "aria-hidden": "true",
  });
  const defs = svg("defs");
  // Label widths are measured on this text (font-size 100, the labels' font): it is never
  // hidden, unlike a label whose object or layer is switched off.
  const ruler = svg("text", { class: "ruler", "font-size": "100", visibility: "hidden" });
  layer.append(defs, ruler);
  const widths = new Map(); // text -> its width at font-size 100
  const maskNodes = []; // object index -> its mask's <image> (kept by drawObject)
  const groups = objects.map((obj, i) => drawObject(obj, i));
  // Image and drawing stay hidden until the image has loaded: no broken-image glyph while
  // the bytes are on their way, no boxes over an empty frame (console.css: .overlay.loading).
  const wait = h("p", { class: "overlay-wait" }, "Loading image…");
  const wrapper = h("div", {
    class: "overlay loading", "data-testid": "overlay", "data-image-width": width,
    "data-image-height": height, "data-ready": "false", "aria-busy": "true",
  }, img, layer, wait);
  const viewport = h("div", {
    class: "overlay-viewport", tabindex: "0", role: "group",
    "aria-label": "Image viewer: + and - zoom, 0 fits",
  }, wrapper);

  const level = h("output", { "data-testid": "zoom-level", "aria-live": "off" }, "100%");
  const toolbar = h("div", { class: "overlay-toolbar" },
    h("div", { class: "zoom", role: "group", "aria-label": "Zoom" },
      h("button", { type: "button", "data-testid": "zoom-out", "aria-label": "Zoom out",
        onclick: () => zoomBy(1 / Math.SQRT2) }, "−"),
      h("button", { type: "button", "data-testid": "zoom-fit",
        "aria-label": "Fit the whole image",
        onclick: () => fit() }, "Fit"),
      h("button", { type: "button", "data-testid": "zoom-in", "aria-label": "Zoom in",
        onclick: () => zoomBy(Math.SQRT2) }, "+"),
      level),
    objects.length ? h("div", { class: "layers", role: "group", "aria-label": "Layers" },
      layerToggle("boxes", "Boxes", setLayer),
      objects.some((o) => o.mask_url) ? layerToggle("masks", "Masks", setLayer) : null,
      layerToggle("labels", "Labels", setLayer)) : null);

  const checks = objects.map((obj, i) => h("input", {
    type: "checkbox", checked: true, "data-testid": "object-toggle", "data-index": i,
    onchange: (e) => setVisible(i, e.target.checked),
  }));
  const objectList = objects.length ? h("fieldset", { class: "objects" },
    h("legend", null, "Objects (" + objects.length + ")"),
    h("div", { class: "objects-buttons" },
      h("button", { type: "button", "data-testid": "objects-all",
        onclick: () => objects.forEach((_, i) => setVisible(i, true)) }, "All"),
      h("button", { type: "button", "data-testid": "objects-none",
        onclick: () => objects.forEach((_, i) => setVisible(i, false)) }, "None")),
    h("ul", { class: "object-list" }, objects.map((obj, i) => h("li", null,
      h("label", null, checks[i], " ",
        h("span", { class: "swatch", "data-color": PALETTE[i % 12] }),
        h("span", { class: "visually-hidden" }, `Show ${obj.label} #${i + 1}`),
        h("span", { "aria-hidden": "true" }, `${obj.label} #${i + 1}`)))))) : null;

  for (const swatch of objectList ? objectList.querySelectorAll(".swatch") : []) {
    swatch.style.background = swatch.dataset.color; // CSSOM: allowed by the CSP
  }
  container.append(toolbar, viewport, objectList || "");

  function drawObject(obj, i) {
    const color = PALETTE[i % 12];
    const [x0, y0, x1, y1] = obj.box;
    const g = svg("g", {
      "data-testid": "overlay-object", "data-index": i, "data-label": obj.label,
      "data-box": obj.box.join(","), "data-color": color, "data-visible": "true",
    });
    if (obj.mask_url) {
      const maskId = `${uid}-m${i}`;
      maskNodes[i] = svg("image", { class: "mask-image", x: x0, y: y0, width: x1 - x0,
        height: y1 - y0, preserveAspectRatio: "none" });
      defs.append(svg("mask", { id: maskId, maskUnits: "userSpaceOnUse", x: x0, y: y0,
        width: x1 - x0, height: y1 - y0 }, maskNodes[i]));
      g.append(svg("rect", { class: "mask", x: x0, y: y0, width: x1 - x0, height: y1 - y0,
        fill: color, "fill-opacity": "0.45", mask: `url(#${maskId})` }));
    }
    g.append(svg("rect", { class: "box", x: x0, y: y0, width: x1 - x0, height: y1 - y0,
      fill: "none", stroke: color, "stroke-width": "3", "vector-effect": "non-scaling-stroke" }));
    // The full label as a tooltip: the chip may show it cut short (placeLabels).
    g.prepend(svg("title", null, `${obj.label} #${i + 1}`));
    const text = svg("text", { class: "label", fill: "#ffffff" }, `${obj.label} #${i + 1}`);
    g.append(svg("rect", { class: "label-bg", fill: color }), text);
    layer.append(g);
    return g;
  }

  /** The width of text in image px at font size `size` (measured once per text). */
  function measure(text, size) {
    if (!widths.has(text)) {
      ruler.textContent = text;
      // 0 when the viewer is not laid out yet: then an estimate, measured again next time.
      const w = ruler.getComputedTextLength();
      if (w > 0) widths.set(text, w);
      else return text.length * 0.62 * size;
    }
    return (widths.get(text) * size) / 100;
  }

  /** The label as it fits in maxW: whole, or cut with "…" before its " #n". */
  function fitText(label, n, size, maxW) {
    const whole = `${label} #${n}`;
    if (measure(whole, size) <= maxW) return whole;
    const chars = Array.from(label);
    let lo = 0;
    let hi = chars.length - 1;
    while (lo < hi) { // the longest prefix that fits
      const mid = Math.ceil((lo + hi) / 2);
      if (measure(`${chars.slice(0, mid).join("").trimEnd()}… #${n}`, size) <= maxW) lo = mid;
      else hi = mid - 1;
    }
    return `${chars.slice(0, lo).join("").trimEnd()}… #${n}`;
  }

  /**
   * Sizes each label's chip from its measured text and places it on the image: above the
   * box's top-left corner, else inside, below or at the box's bottom, left or right aligned,
   * the first of these that overlaps no chip placed before. A chip with no free place is
   * left out (the legend and the chip's tooltip name every object); zooming in frees room.
   */
  function placeLabels() {
    const px = scale >= 0.5 ? LABEL_PX : Math.max(LABEL_MIN_PX, (LABEL_PX * scale) / 0.5);
    const size = px / scale;
    const pad = 3 / scale;
    const gap = 1 / scale;
    const chipH = size + 2 * pad;
    const maxW = Math.min(width, LABEL_MAX_EM * size);
    const placed = [];
    const free = (x, y, w) => placed.every(([px0, py0, pw]) => x + w + gap <= px0
      || px0 + pw + gap <= x || y + chipH + gap <= py0 || py0 + chipH + gap <= y);
    const clampX = (x, w) => Math.max(0, Math.min(x, width - w));
    const clampY = (y) => Math.max(0, Math.min(y, height - chipH));
    objects.forEach((obj, i) => {
      const [x0, y0, x1, y1] = obj.box;
      const g = groups[i];
      const text = g.querySelector("text.label");
      const bg = g.querySelector("rect.label-bg");
      text.textContent = fitText(obj.label, i + 1, size, maxW - 2 * pad);
      const chipW = measure(text.textContent, size) + 2 * pad;
      let spot = null;
      if (g.dataset.visible === "true") {
        const tops = [y0 >= chipH ? y0 - chipH : y0, y0, y1, y1 - chipH].map(clampY);
        const lefts = [clampX(x0, chipW), clampX(x1 - chipW, chipW)];
        for (const top of tops) {
          spot = spot || lefts.map((left) => [left, top]).find(([x, y]) => free(x, y, chipW));
        }
      }
      g.classList.toggle("label-off", !spot);
      g.dataset.labelShown = spot ? "true" : "false";
      if (!spot) return;
      const [left, top] = spot;
      placed.push([left, top, chipW]);
      text.setAttribute("font-size", String(size));
      text.setAttribute("x", String(left + pad));
      text.setAttribute("y", String(top + pad + size * 0.85));
      bg.setAttribute("x", String(left));
      bg.setAttribute("y", String(top));
      bg.setAttribute("width", String(chipW));
      bg.setAttribute("height", String(chipH));
    });
  }

  function apply(next, keepCenter = true) {
    const old = scale;
    // A 4000 px photo fits a phone only below 25 %: the floor follows the Fit scale, so Fit
    // and "-" always reach the whole image.
    scale = Math.min(MAX_ZOOM, Math.max(Math.min(MIN_ZOOM, fitScale()), next));
    // Enlarged pixels stay square and sharp (a tiny image's boxes are about its pixels).
    img.style.imageRendering = scale >= 2 ? "pixelated" : "";
    const cx = (viewport.scrollLeft + viewport.clientWidth / 2) / old;
    const cy = (viewport.scrollTop + viewport.clientHeight / 2) / old;
    wrapper.style.width = width * scale + "px";
    wrapper.style.height = height * scale + "px";
    wrapper.dataset.scale = String(scale);
    wrapper.dataset.zoom = String(scale);
    level.textContent = Math.round(scale * 100) + "%";
    placeLabels();
    if (keepCenter) {
      viewport.scrollLeft = cx * scale - viewport.clientWidth / 2;
      viewport.scrollTop = cy * scale - viewport.clientHeight / 2;
    }
  }

  /**
   * The scale that shows the whole image: width and height within the column and the
   * viewport's height. Never enlarged for an image that merely fits; one at least twice too
   * small is enlarged by a whole factor (up to MAX_ZOOM), so a 16 px image is not a dot.
   */
  function fitScale() {
    // The container, not the viewport: the viewport shrinks to the image it shows.
    const availW = container.clientWidth || width;
    const availH = Math.max(100, window.innerHeight * VIEW_HEIGHT - 2);
    const s = Math.min(availW / width, availH / height);
    return s >= 2 ? Math.min(MAX_ZOOM, Math.floor(s)) : Math.min(1, s);
  }

  /** Fit: the whole image in view (see fitScale). */
  function fit() {
    fitMode = true;
    apply(fitScale(), false);
  }

  function zoomBy(f) {
    fitMode = false;
    apply(scale * f);
  }

  function setVisible(i, on) {
    const g = groups[i];
    if (!g) return;
    g.dataset.visible = on ? "true" : "false";
    if (on) g.removeAttribute("display");
    else g.setAttribute("display", "none");
    checks[i].checked = on;
    placeLabels(); // a hidden object's chip frees its place for another
  }

  function setLayer(name, on) {
    layer.classList.toggle("hide-" + name, !on);
    if (name === "labels" && on) placeLabels();
    const box = toolbar.querySelector(`[data-testid=layer-${name}]`);
    if (box) box.checked = on;
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || !wrapper.isConnected) return;
    const tag = e.target && e.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    if (e.key === "+" || e.key === "=") zoomBy(Math.SQRT2);
    else if (e.key === "-" || e.key === "_") zoomBy(1 / Math.SQRT2);
    else if (e.key === "0") fit();
    else return;
    e.preventDefault();
  }

  const resize = new ResizeObserver(() => {
    if (fitMode) fit();
  });

  function onWindowResize() {
    if (fitMode) fit(); // the height Fit uses is the window's
  }

  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", onWindowResize);
  resize.observe(container);
  fit();

  const failed = () => {
    wait.textContent = alt + " could not be loaded: reload the page to try again.";
    wrapper.removeAttribute("aria-busy");
  };
  const loaded = [new Promise((resolve) => {
    img.addEventListener("load", () => {
      wrapper.classList.remove("loading");
      wait.remove();
      wrapper.removeAttribute("aria-busy");
      resolve();
    }, { once: true });
    img.addEventListener("error", () => {
      if (!destroyed) failed();
      resolve();
    }, { once: true });
  })];
  Promise.resolve(imageUrl).then((url) => {
    if (!destroyed) img.src = url;
  }, failed);
  maskNodes.forEach((node, i) => {
    loaded.push(Promise.resolve(maskUrls[i]).then((url) => new Promise((resolve) => {
      if (!url || destroyed) return resolve();
      node.addEventListener("load", resolve, { once: true });
      node.addEventListener("error", resolve, { once: true });
      node.setAttribute("href", url);
    }), () => {}));
  });
  Promise.all(loaded).then(() => {
    if (fitMode) fit();
    wrapper.dataset.ready = "true";
  });

  return {
    fit, zoomBy, setVisible, setLayer,
    destroy() {
      destroyed = true;
      // Drop the URLs (a load in flight stops) before the router revokes them.
      img.removeAttribute("src");
      maskNodes.forEach((node) => node.removeAttribute("href"));
      document.removeEventListener("keydown", onKey);
      window.removeEventListener("resize", onWindowResize);
      resize.disconnect();
      toolbar.remove();
      viewport.remove();
      if (objectList) objectList.remove();
    },
  };
}
