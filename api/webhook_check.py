"""What the webhook routes and the submits with a ``webhook_url`` share: the URL check (the
SSRF rules of image URLs, models/netguard.py) and the event type check."""

from __future__ import annotations

from collections.abc import Sequence

from visionq.api.batch_schemas import text_problem
from visionq.api.errors import ApiError
from visionq.api.webhook_schemas import EVENT_TYPES
from visionq.models.netguard import UrlRefused, check_url, parse_networks, shown_url
from visionq.models.settings import Settings


def checked_url(url: str, settings: Settings, *, field: str = "url") -> str:
    """``url`` (stripped) if visionq may call it now, else the 422 url_* of the SSRF rules.

    Resolves the host (DNS): call it from the thread pool. The worker checks again at every
    delivery, since a name may point elsewhere later."""
    url = url.strip()
    problem = text_problem(url)
    if problem is not None:
        raise ApiError.of(UrlRefused("url_invalid", f"{field} {problem}."))
    try:
        check_url(
            url,
            networks=parse_networks(settings.url_fetch_allowed_networks),
            require_https=settings.webhook_require_https,
        )
    except UrlRefused as exc:
        shown = shown_url(url)
        named = "" if shown in exc.message else f" {shown}"
        raise ApiError.of(exc, f"{field}{named}: {exc.message}") from exc
    return url


def event_types(events: Sequence[str]) -> list[str]:
    """``events`` if every one is a known event type, else 422 unknown_event_type."""
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown:
        raise ApiError(
            "unknown_event_type",
            f"Unknown event type {unknown[0][:64]!r}; the event types are "
            f"{', '.join(EVENT_TYPES)}.",
        )
    return list(events)
