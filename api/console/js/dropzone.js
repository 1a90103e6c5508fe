// dropzone.js — the Submit page's file picking (split from submit.js): a drop zone that
// takes files and whole folders (webkitGetAsEntry, read recursively; dataTransfer.files as
// fallback), Enter/Space or click to choose files, a "Choose folder" picker
// (webkitdirectory), and the list of accepted images with thumbnails and remove buttons.
// Thumbnails stay cheap for a folder of hundreds of photos: the list is updated row by row
// (never rebuilt), and a thumbnail is decoded only when its row scrolls into view, downscaled
// to a small bitmap drawn on a <canvas> (no full-size <img> and no object URL to leak), at
// most THUMB_JOBS at a time.

import { announce, h } from "./dom.js";

const EXTENSIONS = /\.(png|jpe?g|webp|heic|heif|gif|bmp|tiff?)$/i;
const THUMBNAILS = /^image\/(png|jpeg|webp|gif|bmp)$/; // what a browser can draw
const THUMB_PX = 144; // bitmap width: a 3rem (48 CSS px) square at 3x device pixels
const THUMB_JOBS = 2; // decodes at a time (each briefly holds the full-size image)

function accepted(file) {
  return (file.type && file.type.startsWith("image/")) || EXTENSIONS.test(file.name);
}

/** Every file under a FileSystemEntry (directories read until readEntries is empty). */
async function filesOf(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: entry.fullPath.replace(/^\//, "") }];
  }
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const child of batch) found.push(...(await filesOf(child)));
  }
  return found;
}

/**
 * Small thumbnails drawn lazily: observe(canvas, file) decodes file into canvas once the
 * canvas is near the visible part of root; forget(canvas) drops a pending one; stop() ends.
 */
function thumbnailer(root) {
  const waiting = new Map(); // canvas -> file, seen but not decoded yet (in order)
  const watched = new Map(); // canvas -> file, not seen yet
  let busy = 0;
  let stopped = false;
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((records) => {
      for (const record of records) {
        if (!record.isIntersecting || !watched.has(record.target)) continue;
        observer.unobserve(record.target);
        waiting.set(record.target, watched.get(record.target));
        watched.delete(record.target);
      }
      pump();
    }, { root, rootMargin: "96px" })
    : null;

  function pump() {
    while (!stopped && busy < THUMB_JOBS && waiting.size) {
      const [canvas, file] = waiting.entries().next().value;
      waiting.delete(canvas);
      busy += 1;
      draw(canvas, file).finally(() => {
        busy -= 1;
        pump();
      });
    }
  }

  async function draw(canvas, file) {
    let bitmap = null;
    try {
      // resizeWidth alone keeps the aspect ratio; the browser decodes and drops the full
      // size at once, so only a few KB stay per row.
      bitmap = await createImageBitmap(file, { resizeWidth: THUMB_PX, resizeQuality: "medium" });
      if (stopped || !canvas.isConnected) return;
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      canvas.dataset.drawn = "true";
    } catch {
      canvas.dataset.drawn = "false"; // not decodable here: the grey square stays
    } finally {
      if (bitmap) bitmap.close();
    }
  }

  return {
    observe(canvas, file) {
      if (!observer || typeof createImageBitmap !== "function") return;
      watched.set(canvas, file);
      observer.observe(canvas);
    },
    forget(canvas) {
      if (observer) observer.unobserve(canvas);
      watched.delete(canvas);
      waiting.delete(canvas);
    },
    stop() {
      stopped = true;
      if (observer) observer.disconnect();
      watched.clear();
      waiting.clear();
    },
  };
}

/**
 * fileDrop(onChange) -> {element, files, retain(entries), destroy()}: `files` is the live
 * list of {file, path} (path = the relative path in a dropped folder, else the name);
 * retain(entries) keeps only those entries (a Set); onChange() runs after every change.
 */
export function fileDrop(onChange) {
  const files = [];
  const rows = new Map(); // entry -> {li, thumb}
  const known = new Set(); // path + size of every entry, to skip a file added twice
  const fileInput = h("input", { type: "file", multiple: true, class: "visually-hidden",
    "data-testid": "file-input", "aria-label": "Choose image files", tabindex: "-1",
    accept: "image/*,.heic,.heif" });
  const folderInput = h("input", { type: "file", multiple: true, class: "visually-hidden",
    "data-testid": "folder-input", "aria-label": "Choose a folder of images", tabindex: "-1" });
  folderInput.webkitdirectory = true;
  const zone = h("div", { class: "drop-zone", role: "button", tabindex: "0",
    "data-testid": "drop-zone",
    "aria-label": "Drop images or a folder, or press Enter to choose files" },
  h("p", { class: "drop-title" }, "Drop images or a folder here"),
  h("p", { class: "muted" }, "or press Enter to choose files"));
  const list = h("ul", { class: "file-list", "data-testid": "file-list",
    "aria-label": "Files to send" });
  const count = h("p", { class: "muted file-count" }, "No files yet.");
  const clear = h("button", { type: "button", class: "secondary", hidden: true,
    onclick: () => {
      files.splice(0);
      changed();
    } }, "Remove all files");
  const thumbs = thumbnailer(list);

  const keyOf = (file, path) => `${path}\u0000${file.size}`;

  function row(entry) {
    const thumb = THUMBNAILS.test(entry.file.type)
      ? h("canvas", { class: "thumb", width: "1", height: "1", "aria-hidden": "true" })
      : h("span", { class: "thumb thumb-none", "aria-hidden": "true" }, "IMG");
    const li = h("li", { class: "file-item", "data-testid": "file-item", "data-name": entry.path },
      thumb,
      h("span", { class: "file-name" }, entry.path),
      h("span", { class: "muted file-size" }, `${(entry.file.size / 1024).toFixed(1)} KB`),
      h("button", { type: "button", class: "secondary small",
        "aria-label": `Remove ${entry.path}`,
        onclick: () => {
          const at = files.indexOf(entry);
          if (at >= 0) files.splice(at, 1);
          changed();
        } }, "Remove"));
    return { li, thumb };
  }

  /** Brings the list in line with `files`: drops removed rows, appends new ones. */
  function changed() {
    const present = new Set(files);
    for (const [entry, { li, thumb }] of rows) {
      if (present.has(entry)) continue;
      thumbs.forget(thumb);
      li.remove();
      rows.delete(entry);
      known.delete(keyOf(entry.file, entry.path));
    }
    for (const entry of files) {
      if (rows.has(entry)) continue;
      const made = row(entry);
      rows.set(entry, made);
      list.append(made.li); // files only grow at the end, so the order holds
      if (made.thumb.tagName === "CANVAS") thumbs.observe(made.thumb, entry.file);
    }
    count.textContent = files.length
      ? `${files.length} file${files.length === 1 ? "" : "s"}` : "No files yet.";
    clear.hidden = !files.length;
    onChange();
  }

  function add(found) {
    let skipped = 0;
    // A folder is read in whatever order the file system gives: sort by path (img2 before
    // img10) so a file is easy to find, and batch items follow the same order.
    const sorted = [...found].sort((a, b) =>
      a.path.localeCompare(b.path, undefined, { numeric: true }));
    for (const { file, path } of sorted) {
      if (!accepted(file)) {
        skipped += 1;
        continue;
      }
      if (known.has(keyOf(file, path))) continue;
      known.add(keyOf(file, path));
      files.push({ file, path });
    }
    if (skipped) {
      announce(`${skipped} file${skipped === 1 ? " is" : "s are"} not an image: skipped.`);
    }
    changed();
  }

  zone.addEventListener("click", () => fileInput.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      fileInput.click();
    }
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const transfer = event.dataTransfer;
    // Entries must be taken now: a real drop's items are emptied once the handler returns.
    const taken = [...(transfer.items || [])]
      .filter((item) => item.kind === "file")
      .map((item) => ({ entry: item.webkitGetAsEntry ? item.webkitGetAsEntry() : null,
        file: item.getAsFile() }));
    const fallback = taken.length ? [] : [...(transfer.files || [])];
    Promise.all([
      ...taken.map(async ({ entry, file }) =>
        entry && entry.isDirectory ? filesOf(entry) : file ? [{ file, path: file.name }] : []),
      ...fallback.map(async (file) => [{ file, path: file.name }]),
    ]).then((lists) => add(lists.flat()), (err) => {
      announce(`Cannot read the dropped files: ${err.message}`);
    });
  });
  for (const input of [fileInput, folderInput]) {
    input.addEventListener("change", () => {
      add([...input.files].map((file) => ({ file,
        path: file.webkitRelativePath || file.name })));
      input.value = "";
    });
  }

  const element = h("div", { class: "submit-files" },
    zone, fileInput, folderInput,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => folderInput.click() },
        "Choose folder"),
      clear),
    count, list);
  function retain(entries) {
    const kept = files.filter((entry) => entries.has(entry));
    files.splice(0, files.length, ...kept);
    changed();
  }

  return { element, files, retain, destroy: () => thumbs.stop() };
}
