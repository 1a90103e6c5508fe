// api.js: the console's only door to the visionq HTTP API. Keeps the API key in this tab's
// sessionStorage (never localStorage, a cookie or a URL), sends it as a Bearer header on
// every call, turns the API's one error shape into ApiError, fetches images as blobs
// (an <img src> could not carry the header) and saves downloads.

const KEY = "visionq.key";

/** The signed-in key of this tab, or null. */
export function getKey() {
  return sessionStorage.getItem(KEY);
}

/** Keeps the key for this tab only (it dies with the tab). */
export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

/** Forgets the key and every blob fetched with it. */
export function clearKey() {
  sessionStorage.removeItem(KEY);
  releaseBlobUrls();
}

/** An answer in the API's error shape {"error": {"code", "message"}} (or a network failure). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

function authHeaders(extra) {
  const headers = new Headers(extra || {});
  const key = getKey();
  if (key) headers.set("Authorization", "Bearer " + key);
  return headers;
}

// JSON is read fresh each time (no-store); image bytes pass cache: "default" so the
// browser keeps them and revalidates with the route's ETag (a 304 reuses the copy).
async function send(path, options = {}) {
  const { method = "GET", json, form, headers, signal, cache = "no-store" } = options;
  const init = { method, headers: authHeaders(headers), signal, cache };
  if (json !== undefined) {
    init.headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form; // FormData: the browser writes the multipart boundary
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "The API did not answer: check the server and retry.");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let code = "http_" + response.status;
  let message = response.statusText || "Request failed";
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // Not JSON (a proxy's page): keep the status text.
  }
  if (response.status === 401) {
    clearKey();
    window.dispatchEvent(new CustomEvent("signed-out", { detail: { message } }));
  }
  return new ApiError(response.status, code, message);
}

/** Calls the API; resolves to the parsed JSON (null for an empty body); throws ApiError. */
export async function api(path, options = {}) {
  const response = await send(path, options);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

const blobs = new Map(); // path -> Promise<object URL>, for this page

/** An object URL of the bytes at path (fetched with the key once per page). */
export function blobUrl(path) {
  let url = blobs.get(path);
  if (!url) {
    url = send(path, { cache: "default" }).then(async (response) => URL.createObjectURL(await response.blob()));
    url.catch(() => blobs.delete(path)); // a failed fetch may be retried later
    blobs.set(path, url);
  }
  return url;
}

/** Frees every object URL made by blobUrl (on route change and sign-out). */
export function releaseBlobUrls() {
  for (const url of blobs.values()) {
    url.then((u) => URL.revokeObjectURL(u), () => {});
  }
  blobs.clear();
}

/** Downloads path as a file named filename (fetched with the key, saved from a blob). */
export async function download(path, filename) {
  const response = await send(path);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
