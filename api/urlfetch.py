"""Download an image from a user-supplied URL without letting the URL reach internal hosts.

SSRF defences: http(s) only, no credentials, numeric hosts only as canonical literals
(glibc reads ``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1`` as 127.0.0.1); every resolved
address must be public or in ``allowed_networks`` (IPv4 inside IPv6 is checked as IPv4); the
connection goes to the checked IP (original host in ``Host``, SNI and certificate check), so a
second DNS answer cannot move it; each redirect hop is checked again; body and time are capped.

Statuses: 422 refused URL (url_invalid, url_scheme_not_allowed, url_host_not_allowed,
url_unresolvable, url_too_many_redirects), 413 url_too_large, 502 url_fetch_failed and
url_http_error, 504 url_fetch_timeout.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from visionq.api.errors import http_status
from visionq.vision.errors import CodedError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = ("http", "https")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SHOWN_CHARS = 200
_MAX_URL_CHARS = 8192
# Whitespace, controls and backslashes are read differently by different URL parsers.
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
# A host whose last label is a number is an IPv4 address to inet_aton and to browsers.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)
_HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*\.?")


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


@dataclass(frozen=True)
class _Target:
    url: httpx.URL  # as the user wrote it (normalised), never with the IP substituted
    host: str  # ASCII host name, or IP literal without brackets
    server_name: str | None  # the name TLS must verify; None for an IP literal
    addresses: tuple[str, ...]  # all checked; the only places we connect to


def fetch_image(url: str, policy: FetchPolicy, *, resolve: Resolver | None = None) -> FetchedImage:
    """Fetch ``url`` under ``policy``; raise UrlFetchError when it is refused or fails.

    ``resolve(host, port)`` returns IP strings (default: getaddrinfo, all families).
    A malformed CIDR in ``policy.allowed_networks`` raises ValueError (operator error).
    """
    networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in policy.allowed_networks)
    deadline = time.monotonic() + policy.timeout_s
    current = url
    # No keep-alive: a pooled connection to one IP must not serve a later hop's other host name.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(follow_redirects=False, trust_env=False, limits=limits) as client:
        for hop in range(policy.max_redirects + 1):
            try:
                target = _check_url(current, resolve or _system_resolve, networks)
            except UrlFetchError as exc:
                prefix = f"The URL redirected to {_shown(current)}: " if hop else ""
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


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def shown_url(url: str) -> str:
    """A URL as error messages show it (cut to a readable length)."""
    return _shown(url)


def _check_url(raw: str, resolve: Resolver, networks: tuple[IPNetwork, ...]) -> _Target:
    url, host, literal = _parse(raw)
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = [literal] if literal is not None else _resolve(host, port, resolve)
    for address in addresses:
        if not _is_allowed(address, networks):
            raise _refused(
                "url_host_not_allowed",
                f"{_shown(host)} points to a private or reserved address ({address}); "
                "use a publicly reachable image URL.",
            )
    # Connect to a mapped address over IPv4: it is the same host and needs no IPv6 stack.
    pinned = tuple(str(getattr(a, "ipv4_mapped", None) or a) for a in addresses)
    return _Target(url, host, None if literal else host, pinned)


def _parse(raw: str) -> tuple[httpx.URL, str, IPAddress | None]:
    """Validate the URL's form; return it, its ASCII host and the host's IP if it is a literal."""
    invalid = _refused("url_invalid", f"{_shown(raw)!r} is not a valid http(s) URL.")
    if len(raw) > _MAX_URL_CHARS or _UNSAFE_CHARS.search(raw):
        raise invalid
    try:
        parts = urlsplit(raw)
        port = parts.port  # reads and range-checks the port
    except ValueError:
        raise invalid from None
    if parts.scheme.lower() not in _SCHEMES:
        raise _refused("url_scheme_not_allowed", "Only http:// and https:// URLs are accepted.")
    if "@" in parts.netloc:
        raise _refused("url_invalid", "Remove the user name and password from the image URL.")
    literal = _host_literal(parts.hostname or "", bracketed="[" in parts.netloc)
    try:
        url = httpx.URL(raw)
        host = url.raw_host.decode("ascii")  # IDNA-encoded by httpx
        # Both parsers must agree on where the request goes, or the check could miss it.
        same_host = ipaddress.ip_address(host) == literal if literal else _HOST_NAME.fullmatch(host)
    except (httpx.InvalidURL, ValueError):  # UnicodeError is a ValueError
        raise invalid from None
    default_port = 443 if url.scheme == "https" else 80
    if not same_host or port == 0 or (url.port or default_port) != (port or default_port):
        raise invalid
    return url, host, literal


def _host_literal(host: str, *, bracketed: bool) -> IPAddress | None:
    """Return the host's IP if it is written as one; refuse non-canonical numeric forms."""
    if not host:
        raise _refused("url_invalid", "The image URL has no host name.")
    if bracketed:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise _refused("url_invalid", "The image URL has a malformed IPv6 address.") from None
        if address.scope_id:
            raise _refused("url_host_not_allowed", "IPv6 zone identifiers are not accepted.")
        return address
    if not _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        return None
    try:
        return ipaddress.IPv4Address(host)  # strict: only canonical dotted quads
    except ValueError:
        raise _refused(
            "url_host_not_allowed",
            f"{_shown(host)} is not a canonical IP address; use a host name or a.b.c.d.",
        ) from None


def _system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    unresolvable = _refused("url_unresolvable", f"{_shown(host)} does not resolve; check the URL.")
    try:
        # A link-local answer may carry a zone ("fe80::1%eth0"); it is refused either way.
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
    except (OSError, ValueError):  # socket.gaierror is an OSError, UnicodeError a ValueError
        raise unresolvable from None
    if not addresses:
        raise unresolvable
    return addresses


def _is_allowed(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    if any(address in network for network in networks):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        # A mapped address reaches the IPv4 host itself, so only the IPv4 rules apply.
        if address.ipv4_mapped is not None:
            return _is_allowed(address.ipv4_mapped, networks)
        # 6to4 and Teredo route towards the embedded IPv4 host, which must be public too.
        # (NAT64, 64:ff9b::/96, is refused as reserved by _is_public.)
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None and not _is_public(embedded):
            return False
    return _is_public(address)


def _is_public(address: IPAddress) -> bool:
    # is_global alone lets multicast through, so the other ranges are excluded explicitly.
    special = address.is_multicast or address.is_reserved or address.is_unspecified
    local = address.is_loopback or address.is_link_local or address.is_private
    return address.is_global and not (special or local)


def _fetch_hop(
    client: httpx.Client, target: _Target, policy: FetchPolicy, deadline: float
) -> FetchedImage | str:
    """Fetch one hop from the first checked address that accepts a connection."""
    try:
        for address in target.addresses[:-1]:
            # Another checked address of the same host may be reachable (IPv6 versus IPv4).
            with contextlib.suppress(httpx.ConnectError):
                return _request(client, target, address, policy, deadline)
        return _request(client, target, target.addresses[-1], policy, deadline)
    except httpx.HTTPError as exc:
        shown = _shown(str(target.url))
        # Past the deadline the watchdog cut the connection; the error then is a timeout.
        if isinstance(exc, httpx.TimeoutException) or time.monotonic() >= deadline:
            message = f"Fetching {shown} took too long; try a faster host."
            raise UrlFetchError("url_fetch_timeout", message) from exc
        message = f"Could not fetch {shown} ({type(exc).__name__}); check it is reachable."
        raise UrlFetchError("url_fetch_failed", message) from exc


def _request(
    client: httpx.Client, target: _Target, address: str, policy: FetchPolicy, deadline: float
) -> FetchedImage | str:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise httpx.TimeoutException("the time budget was spent before connecting")
    watchdog = _Watchdog(deadline)
    extensions: dict[str, Any] = {"trace": watchdog.trace}
    if target.url.scheme == "https" and target.server_name:
        # The URL names the IP; TLS must still present and verify the original host name.
        extensions["sni_hostname"] = target.server_name
    headers = {
        "Host": target.url.netloc.decode("ascii"),
        "User-Agent": policy.user_agent,
        "Accept": "image/*",
        # A compressed body could expand far past max_bytes inside one decoded chunk.
        "Accept-Encoding": "identity",
    }
    pinned = target.url.copy_with(host=address)
    request = client.build_request(
        "GET", pinned, headers=headers, timeout=httpx.Timeout(remaining), extensions=extensions
    )
    try:
        response = client.send(request, stream=True)
        try:
            return _read_response(response, target, policy, deadline)
        finally:
            response.close()
    finally:
        watchdog.close()


def _read_response(
    response: httpx.Response, target: _Target, policy: FetchPolicy, deadline: float
) -> FetchedImage | str:
    """Return the next URL for a redirect, or the capped body of a successful response."""
    shown = _shown(str(target.url))
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


class _Watchdog:
    """Shuts a connection down at the deadline.

    httpcore gives each socket operation its own fixed timeout, so a server that stalls late
    could otherwise hold us for up to one more full timeout past the total budget.
    """

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self._armed: list[tuple[threading.Timer, socket.socket]] = []

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: arm a timer as soon as a TCP connection exists."""
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        if isinstance(sock, socket.socket):
            # A duplicate descriptor survives TLS wrapping, which detaches the original object.
            duplicate = sock.dup()
            delay = max(0.0, self._deadline - time.monotonic())
            timer = threading.Timer(delay, _shut_down, (duplicate,))
            timer.daemon = True
            self._armed.append((timer, duplicate))
            timer.start()

    def close(self) -> None:
        """Disarm the timers, then release the duplicate descriptors."""
        for timer, duplicate in self._armed:
            timer.cancel()
            timer.join()  # never close a descriptor the timer may be shutting down
            duplicate.close()


def _shut_down(sock: socket.socket) -> None:
    # shutdown() wakes a read blocked in another thread; close() would not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
