"""Where visionq may send a request to a URL a user gave it (image URLs, webhook endpoints).

SSRF defences: http(s) only, no credentials, numeric hosts only as canonical literals
(glibc reads ``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1`` as 127.0.0.1); every resolved
address must be public or in the operator's allowed networks (IPv4 inside IPv6 is checked as
IPv4; 6to4 and Teredo by their embedded IPv4 host); the connection goes to the checked IP
(original host in ``Host``, SNI and certificate check), so a second DNS answer cannot move it;
a watchdog cuts the connection at the caller's deadline; no keep-alive, no redirects followed
here (a caller that follows them checks each hop again with ``check_url``).

Shared by api/urlfetch.py (image fetching) and worker/webhook_send.py (webhook deliveries):
api/ and worker/ may only meet in models/.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from visionq.vision.errors import CodedError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = ("http", "https")
_SHOWN_CHARS = 200
_MAX_URL_CHARS = 8192
# Whitespace, controls and backslashes are read differently by different URL parsers.
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
# A host whose last label is a number is an IPv4 address to inet_aton and to browsers.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)
_HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*\.?")


class UrlRefused(CodedError):
    """A URL visionq was asked to call was refused before any connection: malformed, not
    http(s), a private or reserved address, or a host that does not resolve."""

    codes = frozenset({
        "url_invalid", "url_scheme_not_allowed", "url_host_not_allowed", "url_unresolvable",
    })  # fmt: skip


@dataclass(frozen=True)
class Target:
    """A checked URL and the only addresses a request to it may connect to."""

    url: httpx.URL  # as the user wrote it (normalised), never with the IP substituted
    host: str  # ASCII host name, or IP literal without brackets
    server_name: str | None  # the name TLS must verify; None for an IP literal
    addresses: tuple[str, ...]  # all checked; the only places we connect to


def _refused(code: str, message: str) -> UrlRefused:
    return UrlRefused(code, message)


def shown_url(url: str) -> str:
    """A URL as error messages show it (cut to a readable length)."""
    return url if len(url) <= _SHOWN_CHARS else url[:_SHOWN_CHARS] + "..."


def parse_networks(cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    """The allowed networks from CIDR strings; ValueError on a malformed one (operator error)."""
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def system_resolve(host: str, port: int) -> list[str]:
    """Every address getaddrinfo gives for ``host`` (all families), first occurrence order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(
    raw: str,
    *,
    networks: tuple[IPNetwork, ...],
    resolve: Resolver | None = None,
    require_https: bool = False,
) -> Target:
    """Check ``raw`` and resolve its host now; raise UrlRefused unless every address is allowed.

    ``resolve(host, port)`` returns IP strings (default: getaddrinfo, all families).
    """
    url, host, literal = _parse(raw)
    if require_https and url.scheme != "https":
        raise _refused(
            "url_scheme_not_allowed",
            "Only https:// URLs are accepted here (the operator set "
            "VISIONQ_WEBHOOK_REQUIRE_HTTPS); use an https:// URL.",
        )
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = [literal] if literal is not None else _resolve(host, port, resolve)
    for address in addresses:
        if not _is_allowed(address, networks):
            raise _refused(
                "url_host_not_allowed",
                f"{shown_url(host)} points to a private or reserved address ({address}); use a "
                "publicly reachable URL (an operator may allow a network with "
                "VISIONQ_URL_FETCH_ALLOWED_NETWORKS).",
            )
    # Connect to a mapped address over IPv4: it is the same host and needs no IPv6 stack.
    pinned = tuple(str(getattr(a, "ipv4_mapped", None) or a) for a in addresses)
    return Target(url, host, None if literal else host, pinned)


def _parse(raw: str) -> tuple[httpx.URL, str, IPAddress | None]:
    """Validate the URL's form; return it, its ASCII host and the host's IP if it is a literal."""
    invalid = _refused("url_invalid", f"{shown_url(raw)!r} is not a valid http(s) URL.")
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
        raise _refused("url_invalid", "Remove the user name and password from the URL.")
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
        raise _refused("url_invalid", "The URL has no host name.")
    if bracketed:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise _refused("url_invalid", "The URL has a malformed IPv6 address.") from None
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
            f"{shown_url(host)} is not a canonical IP address; use a host name or a.b.c.d.",
        ) from None


def _resolve(host: str, port: int, resolve: Resolver | None) -> list[IPAddress]:
    unresolvable = _refused(
        "url_unresolvable", f"{shown_url(host)} does not resolve; check the URL."
    )
    try:
        # A link-local answer may carry a zone ("fe80::1%eth0"); it is refused either way.
        answer = (resolve or system_resolve)(host, port)
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answer]
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


def pinned_send(
    client: httpx.Client,
    target: Target,
    address: str,
    *,
    method: str,
    headers: Mapping[str, str],
    content: bytes | None,
    deadline: float,
    stream: bool = False,
) -> httpx.Response:
    """Send one request to ``address`` (one of ``target.addresses``), naming the original host.

    ``deadline`` is a time.monotonic() value: a watchdog shuts the connection down then, so a
    server that stalls cannot hold the caller past it. With ``stream`` the body is left unread
    and the watchdog stays armed until the response is closed (close it); without, the body
    is read here. ``client`` must not follow redirects and should not keep connections alive.
    """
    if address not in target.addresses:
        raise ValueError(f"{address} is not a checked address of {target.host}")
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise httpx.TimeoutException("the time budget was spent before connecting")
    watchdog = _Watchdog(deadline)
    extensions: dict[str, Any] = {"trace": watchdog.trace}
    if target.url.scheme == "https" and target.server_name:
        # The URL names the IP; TLS must still present and verify the original host name.
        extensions["sni_hostname"] = target.server_name
    sent = {**headers, "Host": target.url.netloc.decode("ascii")}
    pinned = target.url.copy_with(host=address)
    request = client.build_request(
        method,
        pinned,
        headers=sent,
        content=content,
        timeout=httpx.Timeout(remaining),
        extensions=extensions,
    )
    try:
        response = client.send(request, stream=True)
    except BaseException:
        watchdog.close()
        raise
    if stream:
        response.stream = _Guarded(response.stream, watchdog)
        return response
    try:
        response.read()
    finally:
        response.close()
        watchdog.close()
    return response


def send_to_target(
    client: httpx.Client,
    target: Target,
    *,
    method: str,
    headers: Mapping[str, str],
    content: bytes | None,
    deadline: float,
    stream: bool = False,
) -> httpx.Response:
    """``pinned_send`` to the first checked address that accepts a connection (IPv6 or IPv4
    of the same host may be unreachable); the last address's error is raised."""

    def send(address: str) -> httpx.Response:
        return pinned_send(
            client, target, address, method=method, headers=headers, content=content,
            deadline=deadline, stream=stream,
        )  # fmt: skip

    for address in target.addresses[:-1]:
        with contextlib.suppress(httpx.ConnectError):
            return send(address)
    return send(target.addresses[-1])


def guarded_client() -> httpx.Client:
    """An httpx client fit for pinned_send: no redirects, no proxies from the environment,
    no keep-alive (a pooled connection to one IP must not serve another host name)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(follow_redirects=False, trust_env=False, limits=limits)


class _Guarded(httpx.SyncByteStream):
    """A streamed body that disarms its watchdog when closed."""

    def __init__(self, inner: httpx.SyncByteStream | httpx.AsyncByteStream, watchdog: _Watchdog):
        assert isinstance(inner, httpx.SyncByteStream)
        self._inner = inner
        self._watchdog = watchdog

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._watchdog.close()


class _Watchdog:
    """Shuts a connection down at the deadline.

    httpcore gives each socket operation its own fixed timeout, so a server that stalls late
    could otherwise hold us for up to one more full timeout past the total budget.
    """

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self._armed: list[tuple[threading.Timer, socket.socket]] = []
        self._closed = False

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
        """Disarm the timers, then release the duplicate descriptors (once)."""
        if self._closed:
            return
        self._closed = True
        for timer, duplicate in self._armed:
            timer.cancel()
            timer.join()  # never close a descriptor the timer may be shutting down
            duplicate.close()


def _shut_down(sock: socket.socket) -> None:
    # shutdown() wakes a read blocked in another thread; close() would not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
