// util.js: the small non-DOM helpers and vocabularies every page shares (one copy each):
// the API's task/tier/status names, reading a route's query, fresh Idempotency-Keys, and
// running async work over a list with bounded concurrency.

/** The tasks of POST /v1/jobs, in the order the console lists them. */
export const TASKS = ["caption", "ask", "classify", "detect", "segment", "compare", "custom"];
/** Service tiers a job may ask for. */
export const TIERS = ["standard", "flex", "priority", "batch", "auto"];
/** A job's statuses. */
export const JOB_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
/** Statuses in which a job can still change (the pollers watch these). */
export const ACTIVE = new Set(["queued", "running"]);

/** query.get(name) for URLSearchParams, query[name] for a plain object; null when absent. */
export function param(query, name) {
  if (!query) return null;
  if (typeof query.get === "function") return query.get(name);
  return query[name] ?? null;
}

/** A fresh Idempotency-Key. crypto.randomUUID exists only in secure contexts (HTTPS,
 * localhost); a console served over plain HTTP on a LAN address still needs a unique key. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs fn(item, i) over items with at most `limit` at a time; resolves to the results in
 * order, or rejects with the first error (the other workers stop taking new items). */
export async function mapLimited(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  let failed = false;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failed) {
      const i = next;
      next += 1;
      try {
        results[i] = await fn(items[i], i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  });
  await Promise.all(workers);
  return results;
}
