"""One webhook delivery attempt: load the claimed delivery, freeze its payload, sign, POST
through models/netguard.py (the SSRF check again, DNS now, the connection pinned to the checked
address, no redirects, one deadline for the whole request), and record the outcome in one
transaction fenced by the claim (models/webhook_deliveries.record_attempt).

Outcomes (``AttemptResult.outcome``; the label of visionq_webhook_deliveries_total):
``succeeded`` (2xx), ``gone`` (410: the receiver asks to stop), ``http_error`` (any other
status, 3xx included: redirects are not followed), ``timeout``, ``network_error``
(connection refused, reset, TLS...), ``refused`` (the URL failed the SSRF check now).
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from visionq.models import metrics, netguard
from visionq.models.netguard import IPNetwork, Resolver, UrlRefused
from visionq.models.settings import Settings
from visionq.models.table_base import utcnow
from visionq.models.tables import WEBHOOK_DELIVERIES
from visionq.models.webhook_deliveries import (
    AttemptResult,
    DeliveryJob,
    DeliveryState,
    freeze_payload,
    record_attempt,
    start_claimed,
)
from visionq.models.webhook_endpoints import live_secrets
from visionq.worker.webhook_payload import body_bytes, build_payload, for_endpoint
from visionq.worker.webhook_relay import started_claim_s
from visionq.worker.webhook_schedule import next_time
from visionq.worker.webhook_sign import webhook_headers

log = logging.getLogger(__name__)

# A receiver's answer is read this far (the log keeps the first ERROR_CHARS characters).
MAX_ANSWER_BYTES = 4096
ERROR_CHARS = 500
# Retry-After beyond this is treated as this (the retry window caps it again).
MAX_RETRY_AFTER_S = 86400.0


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    networks: tuple[IPNetwork, ...],
    require_https: bool,
    resolve: Resolver | None = None,
) -> AttemptResult:
    """POST ``body`` to ``url`` once, within ``timeout_s`` overall; never raises for what the
    network or the receiver does (the outcome says it)."""
    started = time.monotonic()
    deadline = started + timeout_s

    def result(
        outcome: str, status: int | None, error: str | None, retry_after: float | None = None
    ) -> AttemptResult:
        latency_ms = int((time.monotonic() - started) * 1000)
        cut = None if error is None else error[:ERROR_CHARS]
        return AttemptResult(outcome, status, latency_ms, cut, retry_after)

    try:
        target = netguard.check_url(
            url, networks=networks, resolve=resolve, require_https=require_https
        )
    except UrlRefused as exc:
        return result("refused", None, f"refused: {exc.message}")
    try:
        with netguard.guarded_client() as client:
            response = netguard.send_to_target(
                client, target, method="POST", headers=headers, content=body,
                deadline=deadline, stream=True,
            )  # fmt: skip
            try:
                answer = _read_some(response, deadline)
            finally:
                response.close()
    except httpx.HTTPError as exc:
        # Past the deadline the watchdog cut the connection; the error then is a timeout.
        if isinstance(exc, httpx.TimeoutException) or time.monotonic() >= deadline:
            return result("timeout", None, f"no answer within {timeout_s:g} s")
        return result("network_error", None, _network_error(exc))
    status = response.status_code
    if 200 <= status < 300:
        return result("succeeded", status, None)
    text = answer.decode("utf-8", "replace").strip()
    error = f"HTTP {status}" + (f": {text}" if text else "")
    if status == 410:
        return result("gone", status, error)
    return result("http_error", status, error, _retry_after(response.headers.get("retry-after")))


def _read_some(response: httpx.Response, deadline: float) -> bytes:
    """The first MAX_ANSWER_BYTES of the answer (the rest is not waited for)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ANSWER_BYTES or time.monotonic() >= deadline:
            break
    return b"".join(chunks)[:MAX_ANSWER_BYTES]


def _network_error(exc: httpx.HTTPError) -> str:
    """A connection failure in a few words (what the tenant reads in the delivery log)."""
    cause: BaseException | None = exc
    for _ in range(10):  # the chain httpx -> httpcore -> OSError is a few links long
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    detail = str(exc) or type(exc).__name__
    if "refused" in detail.lower():
        return "connection refused"
    return f"{type(exc).__name__}: {detail}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds) or seconds < 0:  # unreadable, or a date in the past
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def deliver(
    sessions: sessionmaker[Session],
    settings: Settings,
    delivery_id: int,
    claim: str,
    *,
    resolve: Resolver | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> str:
    """Send one claimed delivery once and record the outcome; the delivery's new state
    (``succeeded``, ``pending`` = will retry, ``failed``, ``skipped``), or ``stale`` when
    the claim is no longer this message's (another sender took over or it was recorded).

    Starting extends the claim to this attempt's deadline (a message that waited in the
    queue keeps its delivery). A delivery whose retry window ended while it waited (behind
    a failing endpoint's one probe) ends ``failed`` unsent, unless it was the window's last
    scheduled try. When visionq cannot prepare the request, the attempt is recorded as
    ``internal_error`` and retried on the schedule."""
    started = clock() + timedelta(seconds=started_claim_s(settings))
    with sessions.begin() as session:
        job = start_claimed(session, delivery_id, claim, expires_at=started)
    if job is None:
        return "stale"
    window_end = job.window_started_at + timedelta(seconds=settings.webhook_retry_window_s)
    last_try = job.due_at is not None and job.due_at >= window_end - timedelta(seconds=1)
    if clock() >= window_end and not last_try:
        with sessions.begin() as session:
            _end_claimed(
                session, delivery_id, claim, now=clock(), state=DeliveryState.FAILED,
                error=f"not sent within its retry window ({settings.webhook_retry_window_s:g} "
                "s): it waited while the endpoint was failing (one delivery at a time); "
                "replay it once the receiver answers",
            )  # fmt: skip
        log.warning("webhook %s to %s: retry window over before it was sent -> failed",
                    job.event_id, netguard.shown_url(job.url))  # fmt: skip
        return str(DeliveryState.FAILED)
    started_at = clock()
    try:
        with sessions.begin() as session:
            payload = job.payload
            if payload is None:
                built = build_payload(
                    session, job, public_url=settings.public_url,
                    result_max_bytes=settings.webhook_result_max_bytes,
                )  # fmt: skip
                payload = freeze_payload(session, job.event_id, built)
            if not job.endpoint.enabled:
                # Disabled after this delivery was claimed: not sent (a replay after
                # enabling the endpoint sends it).
                _end_claimed(session, delivery_id, claim, now=clock(), state=DeliveryState.SKIPPED)
                return str(DeliveryState.SKIPPED)
            secrets = live_secrets(session, job.endpoint.id, clock())
        # One frozen payload per event; the result is taken out for endpoints that opted out.
        body = body_bytes(for_endpoint(payload, job.endpoint.include_result))
    except Exception as exc:
        # Recorded, so that the schedule and the window apply (a delivery that cannot be
        # prepared ends failed at its window's end, with the reason, not cycling for ever).
        log.exception("webhook %s: could not prepare the request", job.event_id)
        result = AttemptResult(
            "internal_error", None, 0,
            f"visionq could not prepare the request ({type(exc).__name__}: {exc}); retried "
            "on the schedule; report it to the operator if it keeps failing",
        )  # fmt: skip
    else:
        result = _send(job, body, secrets, settings, resolve=resolve)
    now = clock()
    retry_at = None
    if result.outcome not in ("succeeded", "gone"):
        retry_at = next_time(
            attempts=job.attempts + 1, window_started_at=job.window_started_at, now=now,
            delays_s=settings.webhook_retry_delays_s, window_s=settings.webhook_retry_window_s,
            retry_after_s=result.retry_after_s,
        )  # fmt: skip
    with sessions.begin() as session:
        state = record_attempt(
            session, job, claim, result, next_attempt_at=retry_at, now=now,
            started_at=started_at, disable_after_s=settings.webhook_disable_after_s,
            disable_min_failures=settings.webhook_disable_min_failures,
        )  # fmt: skip
    metrics.WEBHOOK_DELIVERIES.labels(job.tenant, job.event_type, result.outcome).inc()
    metrics.WEBHOOK_DELIVERY_SECONDS.labels(result.outcome).observe(result.latency_ms / 1000)
    if state is None:
        return "stale"
    log.log(
        logging.INFO if result.outcome == "succeeded" else logging.WARNING,
        "webhook %s (%s) to %s: %s%s -> %s", job.event_id, job.event_type,
        netguard.shown_url(job.url), result.outcome,
        f" ({result.error})" if result.error else "", state,
        extra={"event_id": job.event_id, "outcome": result.outcome},
    )  # fmt: skip
    return str(DeliveryState(state))


def _send(
    job: DeliveryJob,
    body: bytes,
    secrets: list[str],
    settings: Settings,
    *,
    resolve: Resolver | None,
) -> AttemptResult:
    """Sign ``body`` with ``secrets`` and POST it (refused when the endpoint has none)."""
    if not secrets:
        return AttemptResult(
            "refused", None, 0,
            f"the endpoint has no live secret; make one with `visionq webhooks rotate "
            f"{job.endpoint.id}`",
        )  # fmt: skip
    # Signed at the real time (the receiver checks it within minutes), whatever the clock
    # that schedules.
    headers = webhook_headers(job.event_id, utcnow(), body, secrets)
    return post(
        job.url, body, headers, timeout_s=settings.webhook_timeout_s,
        networks=netguard.parse_networks(settings.url_fetch_allowed_networks),
        require_https=settings.webhook_require_https, resolve=resolve,
    )  # fmt: skip


def _end_claimed(
    session: Session,
    delivery_id: int,
    claim: str,
    *,
    now: datetime,
    state: DeliveryState,
    error: str | None = None,
) -> None:
    """A claimed delivery ends unsent (fenced by the claim): skipped (its endpoint was
    disabled) or failed (its window ended)."""
    d = WEBHOOK_DELIVERIES.c
    values: dict[str, object] = {"state": state.value, "claim": None, "claim_expires_at": None,
                                 "updated_at": now}  # fmt: skip
    if error is not None:
        values["last_error"] = error
    session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(d.id == delivery_id, d.state == DeliveryState.SENDING.value, d.claim == claim)
        .values(**values)
    )
