"""Download an image from a user-supplied URL without letting the URL reach internal hosts.

The SSRF check and the pinned, deadline-capped request are models/netguard.py's (shared with
webhook deliveries); this module follows redirects (each hop checked again), caps the body and
maps every refusal to the API's url_* codes.

Statuses: 422 refused URL (url_invalid, url_scheme_not_allowed, url_host_not_allowed,
url_unresolvable, url_too_many_redirects), 413 url_too_large, 502 url_fetch_failed and
url_http_error, 504 url_fetch_timeout.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import httpx

from visionq.api.errors import http_status
from visionq.models import netguard
from visionq.models.netguard import Resolver, Target, UrlRefused, shown_url
from visionq.vision.errors import CodedError

__all__ = ["FetchPolicy", "FetchedImage", "Resolver", "UrlFetchError", "fetch_image", "shown_url"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one fetch; ``allowed_networks`` are CIDRs allowed even if not public."""

    max_bytes: int
    timeout_s: float  # for the whole fetch, redirects included
    max_redirects: int = 3
    allowed_networks: tuple[str, ...] = ()
    user_agent: str = "visionq-fetch/1"


class UrlFetchError(CodedError):
    """An image URL of a submit was refused before fetching (invalid, not http(s), a private
    or unresolvable host, too many redirects) or could not be fetched (timeout, connection
    or HTTP error, compressed or too large a body); the submit is refused."""

    codes = frozenset({
        "url_invalid", "url_scheme_not_allowed", "url_host_not_allowed", "url_unresolvable",
        "url_too_many_redirects", "url_fetch_timeout", "url_fetch_failed", "url_http_error",
        "url_too_large",
    })  # fmt: skip

    @property
    def status(self) -> int:
        """What our API answers (api.errors.HTTP_STATUS)."""
        return http_status(self.code)


@dataclass(frozen=True)
class FetchedImage:
    """The downloaded body, the URL it finally came from and its declared content type."""

    data: bytes
    final_url: str
    content_type: str | None


def fetch_image(url: str, policy: FetchPolicy, *, resolve: Resolver | None = None) -> FetchedImage:
    """Fetch ``url`` under ``policy``; raise UrlFetchError when it is refused or fails.

    ``resolve(host, port)`` returns IP strings (default: getaddrinfo, all families).
    A malformed CIDR in ``policy.allowed_networks`` raises ValueError (operator error).
    """
    networks = netguard.parse_networks(policy.allowed_networks)
    deadline = time.monotonic() + policy.timeout_s
    current = url
    with netguard.guarded_client() as client:
        for hop in range(policy.max_redirects + 1):
            try:
                target = netguard.check_url(current, networks=networks, resolve=resolve)
            except UrlRefused as exc:
                prefix = f"The URL redirected to {shown_url(current)}: " if hop else ""
                raise UrlFetchError(exc.code, prefix + exc.message) from None
            result = _fetch_hop(client, target, policy, deadline)
            if isinstance(result, FetchedImage):
                return result
            current = result
    raise _refused(
        "url_too_many_redirects",
        f"The URL redirected more than {policy.max_redirects} times; link the image directly.",
    )


def _refused(code: str, message: str) -> UrlFetchError:
    return UrlFetchError(code, message)


def _fetch_hop(
    client: httpx.Client, target: Target, policy: FetchPolicy, deadline: float
) -> FetchedImage | str:
    """Fetch one hop from the first checked address that accepts a connection."""
    headers = {
        "User-Agent": policy.user_agent,
        "Accept": "image/*",
        # A compressed body could expand far past max_bytes inside one decoded chunk.
        "Accept-Encoding": "identity",
    }
    try:
        response = netguard.send_to_target(
            client, target, method="GET", headers=headers, content=None, deadline=deadline,
            stream=True,
        )  # fmt: skip
        try:
            return _read_response(response, target, policy, deadline)
        finally:
            response.close()
    except httpx.HTTPError as exc:
        shown = shown_url(str(target.url))
        # Past the deadline the watchdog cut the connection; the error then is a timeout.
        if isinstance(exc, httpx.TimeoutException) or time.monotonic() >= deadline:
            message = f"Fetching {shown} took too long; try a faster host."
            raise UrlFetchError("url_fetch_timeout", message) from exc
        message = f"Could not fetch {shown} ({type(exc).__name__}); check it is reachable."
        raise UrlFetchError("url_fetch_failed", message) from exc


def _read_response(
    response: httpx.Response, target: Target, policy: FetchPolicy, deadline: float
) -> FetchedImage | str:
    """Return the next URL for a redirect, or the capped body of a successful response."""
    shown = shown_url(str(target.url))
    if response.status_code in _REDIRECTS and "location" in response.headers:
        try:
            return str(target.url.join(response.headers["location"]))  # relative to the name
        except httpx.InvalidURL:
            raise _refused("url_invalid", f"{shown} redirected to an invalid URL.") from None
    if not response.is_success:
        message = f"The image server answered HTTP {response.status_code} for {shown}."
        raise UrlFetchError("url_http_error", message + " Check the URL.")
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        message = f"{shown} sent a compressed body; link the raw image file."
        raise UrlFetchError("url_fetch_failed", message)
    too_large = UrlFetchError(
        "url_too_large", f"The image at {shown} is over {policy.max_bytes} bytes."
    )
    with contextlib.suppress(ValueError):
        if int(response.headers.get("content-length", "")) > policy.max_bytes:
            raise too_large
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_raw():
        received += len(chunk)
        if received > policy.max_bytes:
            raise too_large
        if time.monotonic() >= deadline:  # a slow drip never trips the per-read timeout
            raise httpx.ReadTimeout("the time budget was spent", request=response.request)
        chunks.append(chunk)
    content_type = response.headers.get("content-type")
    return FetchedImage(b"".join(chunks), str(target.url), content_type)
