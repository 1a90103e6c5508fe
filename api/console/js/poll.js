// poll.js: the console's live status. Calls an async function on an interval until a
// condition holds; pauses while the tab is hidden (no work for nobody), backs off x2 up to
// 30 s on errors and says so in the status line, and stops for good on stop(), when its
// page's AbortSignal fires, or when fn fails with an AbortError (its request was cancelled
// because the page is gone: retrying that would back off forever and toast on other pages).

import { announce } from "./dom.js";

const MAX_BACKOFF_MS = 30000;

/**
 * poll(fn, {everyMs, until, signal}) -> {stop()}: runs fn now and every everyMs until
 * until(result). signal (optional): the page's AbortSignal; once aborted nothing runs again
 * (a poller started after the page's cleanup never starts at all).
 */
export function poll(fn, { everyMs = 2000, until = () => false, signal = null } = {}) {
  let stopped = false;
  let timer = null;
  let delay = everyMs;
  let failing = false;
  let running = false;

  async function tick() {
    timer = null;
    if (stopped) return;
    if (signal && signal.aborted) {
      stop();
      return;
    }
    if (document.hidden) return; // resumed by the visibilitychange listener
    running = true;
    try {
      const result = await fn();
      if (stopped) return;
      if (failing) announce("Connection restored.");
      failing = false;
      delay = everyMs;
      if (until(result)) {
        stop();
        return;
      }
    } catch (err) {
      if (stopped) return;
      if (err && (err.status === 401 || err.name === "AbortError")) {
        stop(); // signed out (main.js shows the sign-in form), or the page is gone
        return;
      }
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      failing = true;
      announce("Refresh failed (" + (err && err.message) + "); retrying in " +
        Math.round(delay / 1000) + " s.");
    } finally {
      running = false;
    }
    schedule();
  }

  function schedule() {
    if (!stopped && !timer && !document.hidden) timer = setTimeout(tick, delay);
  }

  function onVisibility() {
    if (!document.hidden && !timer && !running && !stopped) {
      timer = setTimeout(tick, 0);
    }
  }

  function stop() {
    stopped = true;
    if (timer) clearTimeout(timer);
    timer = null;
    document.removeEventListener("visibilitychange", onVisibility);
    if (signal) signal.removeEventListener("abort", stop);
  }

  if (signal && signal.aborted) {
    stopped = true; // the page is gone already: never start
    return { stop };
  }
  if (signal) signal.addEventListener("abort", stop, { once: true });
  document.addEventListener("visibilitychange", onVisibility);
  timer = setTimeout(tick, 0);
  return { stop };
}
