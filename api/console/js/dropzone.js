// dropzone.js — the Submit page's file picking (split from submit.js): a drop zone that
// takes files and whole folders (webkitGetAsEntry, read recursively; dataTransfer.files as
// fallback), Enter/Space or click to choose files, a "Choose folder" picker
// (webkitdirectory), and the list of accepted images with thumbnails and remove buttons.

import { announce, h } from "./dom.js";

const EXTENSIONS = /\.(png|jpe?g|webp|heic|heif|gif|bmp|tiff?)$/i;
const THUMBNAILS = /^image\/(png|jpeg|webp|gif|bmp)$/; // what a browser can draw

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
 * fileDrop(onChange) -> {element, files, destroy()}: `files` is the live list of
 * {file, path, url} (path = the relative path in a dropped folder, else the name);
 * onChange() runs after every addition or removal.
 */
export function fileDrop(onChange) {
  const files = [];
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
      files.splice(0).forEach(release);
      changed();
    } }, "Remove all files");

  function release(entry) {
    if (entry.url) URL.revokeObjectURL(entry.url);
  }

  function changed() {
    list.replaceChildren(
      ...files.map((entry, i) =>
        h("li", { class: "file-item", "data-testid": "file-item", "data-name": entry.path },
          entry.url
            ? h("img", { src: entry.url, alt: "", class: "thumb", width: "48", height: "48" })
            : h("span", { class: "thumb thumb-none", "aria-hidden": "true" }, "IMG"),
          h("span", { class: "file-name" }, entry.path),
          h("span", { class: "muted file-size" }, `${(entry.file.size / 1024).toFixed(1)} KB`),
          h("button", { type: "button", class: "secondary small",
            "aria-label": `Remove ${entry.path}`,
            onclick: () => {
              release(files.splice(i, 1)[0]);
              changed();
            } }, "Remove"))),
    );
    count.textContent = files.length
      ? `${files.length} file${files.length === 1 ? "" : "s"}` : "No files yet.";
    clear.hidden = !files.length;
    onChange();
  }

  function add(found) {
    let skipped = 0;
    for (const { file, path } of found) {
      if (!accepted(file)) {
        skipped += 1;
        continue;
      }
      if (files.some((f) => f.path === path && f.file.size === file.size)) continue;
      const url = THUMBNAILS.test(file.type) ? URL.createObjectURL(file) : null;
      files.push({ file, path, url });
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
  return { element, files, destroy: () => files.forEach(release) };
}
