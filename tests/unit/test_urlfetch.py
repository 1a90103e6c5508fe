"""SSRF defences (the table of forbidden URLs is models.netguard's) and limits of
api.urlfetch, against real servers on 127.0.0.1 and 127.0.0.2.

Both servers listen on the same port, so a fetch that wrongly reaches 127.0.0.1 (through a
numeric trick, a redirect or a second DNS answer) lands on the loopback server, which counts
every request; after each test that count must still be zero.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.unit.test_netguard import SSRF_URLS
from visionq.api.urlfetch import FetchedImage, FetchPolicy, UrlFetchError, fetch_image

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64
ALLOWED = ("127.0.0.2/32",)
POLICY = FetchPolicy(max_bytes=1_000_000, timeout_s=3.0, allowed_networks=ALLOWED)


@dataclass
class Seen:
    """What one server received, shared with its handler threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (Host header, path)

    def add(self, host: str, path: str) -> None:
        with self.lock:
            self.requests.append((host, path))

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)


@dataclass
class Servers:
    port: int
    loopback: Seen  # 127.0.0.1: must never be contacted by fetch_image
    allowed: Seen  # 127.0.0.2: reachable only through allowed_networks


def _handler(
    seen: Seen, stop: threading.Event, port: int
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.add(self.headers.get("Host", ""), self.path)
            self.close_connection = True
            route = getattr(
                self, "route_" + self.path.strip("/").replace("-", "_").replace(".", "_"), None
            )
            with contextlib.suppress(OSError):  # the client hanging up early is expected
                (route or self.route_missing)()

        def _head(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

        def _body(self, body: bytes, content_type: str) -> None:
            self._head(200, {"Content-Type": content_type, "Content-Length": str(len(body))})
            self.wfile.write(body)

        def route_image_png(self) -> None:
            self._body(PNG, "image/png")

        def route_host(self) -> None:
            self._body(self.headers.get("Host", "").encode(), "text/plain")

        def route_missing(self) -> None:
            self._head(404, {"Content-Length": "0"})

        def _redirect(self, location: str) -> None:
            self._head(302, {"Location": location, "Content-Length": "0"})

        def route_relative(self) -> None:
            self._redirect("image.png")

        def route_to_loopback(self) -> None:
            self._redirect(f"http://127.0.0.1:{port}/image.png")

        def route_loop(self) -> None:
            self._redirect("/loop")

        def route_declared_big(self) -> None:
            self._head(200, {"Content-Type": "image/png", "Content-Length": "50000000"})
            self.wfile.write(PNG)

        def route_endless(self) -> None:
            # Chunked with no end in sight: passing at all proves the reader stopped early.
            self._head(200, {"Content-Type": "image/png", "Transfer-Encoding": "chunked"})
            chunk = b"x" * 16384
            for _ in range(4096):  # 64 MB at most, so a broken reader still terminates
                if stop.is_set():
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

        def route_drip(self) -> None:
            self._head(200, {"Content-Type": "image/png", "Content-Length": "1000"})
            while not stop.wait(0.2):
                self.wfile.write(b"x")
                self.wfile.flush()

        def route_drip_then_stall(self) -> None:
            self._head(200, {"Content-Type": "image/png", "Content-Length": "1000"})
            for _ in range(3):
                stop.wait(0.2)
                self.wfile.write(b"x")
                self.wfile.flush()
            stop.wait(10)

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # aborted connections are part of the tests


def _serve(server: http.server.ThreadingHTTPServer) -> None:
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()


def _bind_pair(stop: threading.Event, loopback: Seen, allowed: Seen) -> list[_Server]:
    """Bind 127.0.0.2 on a free port, then 127.0.0.1 on the same port."""
    for _ in range(20):
        try:
            second = _Server(("127.0.0.2", 0), http.server.BaseHTTPRequestHandler, False)
            second.server_bind()
        except OSError as exc:
            pytest.skip(f"cannot bind 127.0.0.2 here: {exc}")
        port = second.server_address[1]
        second.RequestHandlerClass = _handler(allowed, stop, port)
        try:
            first = _Server(("127.0.0.1", port), _handler(loopback, stop, port))
        except OSError:
            second.server_close()
            continue
        second.server_activate()
        return [first, second]
    pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    stop = threading.Event()
    loopback, allowed = Seen(), Seen()
    pair = _bind_pair(stop, loopback, allowed)
    for server in pair:
        _serve(server)
    port = pair[0].server_address[1]
    # Prove the loopback counter works before relying on it staying at zero.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/image.png", timeout=5) as answer:
        assert answer.read() == PNG
    assert loopback.count == 1
    loopback.requests.clear()
    yield Servers(port, loopback, allowed)
    stop.set()
    for server in pair:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _loopback_untouched(servers: Servers) -> Iterator[None]:
    yield
    assert servers.loopback.count == 0, servers.loopback.requests


def _local_only(host: str, port: int) -> list[str]:
    """The system resolver for localhost only: no test may send a DNS query out."""
    assert host == "localhost", host
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _table(**names: list[str]) -> Callable[[str, int], list[str]]:
    return lambda host, port: names[host.replace(".", "_")]


def _refusal(url: str, policy: FetchPolicy = POLICY, **kwargs: object) -> UrlFetchError:
    with pytest.raises(UrlFetchError) as caught:
        fetch_image(url, policy, **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(("template", "code"), SSRF_URLS)
def test_forbidden_urls_are_refused_without_a_request(
    servers: Servers, template: str, code: str
) -> None:
    error = _refusal(template.format(port=servers.port), resolve=_local_only)
    assert (error.code, error.status) == (code, 422)


def test_a_name_with_any_private_address_is_refused(servers: Servers) -> None:
    resolve = _table(mixed_test=["93.184.216.34", "127.0.0.1"])
    error = _refusal(f"http://mixed.test:{servers.port}/", resolve=resolve)
    assert error.code == "url_host_not_allowed"


def test_a_mapped_loopback_answer_is_refused(servers: Servers) -> None:
    resolve = _table(mapped_test=["::ffff:127.0.0.1"])
    error = _refusal(f"http://mapped.test:{servers.port}/", resolve=resolve)
    assert error.code == "url_host_not_allowed"


def test_a_redirect_to_loopback_is_refused_at_the_hop(servers: Servers) -> None:
    before = servers.allowed.count
    error = _refusal(f"http://127.0.0.2:{servers.port}/to-loopback")
    assert error.code == "url_host_not_allowed" and "redirected" in error.message
    assert servers.allowed.count == before + 1


def test_a_redirect_loop_stops_at_the_limit(servers: Servers) -> None:
    before = servers.allowed.count
    error = _refusal(f"http://127.0.0.2:{servers.port}/loop")
    assert (error.code, error.status) == ("url_too_many_redirects", 422)
    assert servers.allowed.count == before + POLICY.max_redirects + 1


def _rebinding() -> tuple[Callable[[str, int], list[str]], list[str]]:
    """A resolver that answers the allowed address once and loopback from then on."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.2"] if len(asked) == 1 else ["127.0.0.1"]

    return resolve, asked


def test_the_connection_is_pinned_to_the_checked_address(servers: Servers) -> None:
    resolve, asked = _rebinding()
    before = servers.allowed.count
    image = fetch_image(f"http://rebind.test:{servers.port}/image.png", POLICY, resolve=resolve)
    assert image.data == PNG and asked == ["rebind.test"]
    assert servers.allowed.requests[-1] == (f"rebind.test:{servers.port}", "/image.png")
    assert servers.allowed.count == before + 1


def test_each_redirect_hop_is_resolved_and_checked_again(servers: Servers) -> None:
    resolve, asked = _rebinding()
    error = _refusal(f"http://rebind.test:{servers.port}/relative", resolve=resolve)
    assert error.code == "url_host_not_allowed" and len(asked) == 2


def test_an_allowed_image_is_fetched(servers: Servers) -> None:
    url = f"http://127.0.0.2:{servers.port}/image.png"
    assert fetch_image(url, POLICY) == FetchedImage(PNG, url, "image/png")


def test_the_original_host_is_sent(servers: Servers) -> None:
    resolve = _table(images_test=["127.0.0.2"])
    image = fetch_image(f"http://images.test:{servers.port}/host", POLICY, resolve=resolve)
    assert image.data == f"images.test:{servers.port}".encode()


def test_an_international_name_is_resolved_in_ascii(servers: Servers) -> None:
    # The mapped answer is dialled as plain IPv4 and matched against the IPv4 allowance.
    resolve = _table(**{"xn--bcher-kva_test": ["::ffff:127.0.0.2"]})
    image = fetch_image(f"http://bücher.test:{servers.port}/host", POLICY, resolve=resolve)
    assert image.data == f"xn--bcher-kva.test:{servers.port}".encode()


def test_a_relative_redirect_is_followed(servers: Servers) -> None:
    image = fetch_image(f"http://127.0.0.2:{servers.port}/relative", POLICY)
    assert image.final_url == f"http://127.0.0.2:{servers.port}/image.png"
    assert image.data == PNG


def test_the_next_checked_address_is_tried_when_one_refuses(servers: Servers) -> None:
    policy = FetchPolicy(
        max_bytes=10_000, timeout_s=3.0, allowed_networks=(*ALLOWED, "127.0.0.3/32")
    )
    resolve = _table(two_test=["127.0.0.3", "127.0.0.2"])  # nothing listens on 127.0.0.3
    assert (
        fetch_image(f"http://two.test:{servers.port}/image.png", policy, resolve=resolve).data
        == PNG
    )


def test_a_declared_length_over_the_cap_is_refused(servers: Servers) -> None:
    error = _refusal(f"http://127.0.0.2:{servers.port}/declared-big")
    assert (error.code, error.status) == ("url_too_large", 413)


def test_a_chunked_body_is_cut_at_the_cap(servers: Servers) -> None:
    started = time.monotonic()
    policy = FetchPolicy(max_bytes=100_000, timeout_s=3.0, allowed_networks=ALLOWED)
    error = _refusal(f"http://127.0.0.2:{servers.port}/endless", policy)
    assert error.code == "url_too_large" and time.monotonic() - started < 1.0


@pytest.mark.parametrize("path", ["drip", "drip-then-stall"])
def test_the_total_time_is_capped(servers: Servers, path: str) -> None:
    started = time.monotonic()
    policy = FetchPolicy(max_bytes=10_000, timeout_s=1.0, allowed_networks=ALLOWED)
    error = _refusal(f"http://127.0.0.2:{servers.port}/{path}", policy)
    assert (error.code, error.status) == ("url_fetch_timeout", 504)
    assert 0.9 < time.monotonic() - started < 1.4


def test_an_http_error_status_is_reported(servers: Servers) -> None:
    error = _refusal(f"http://127.0.0.2:{servers.port}/missing")
    assert (error.code, error.status) == ("url_http_error", 502) and "404" in error.message


def test_a_closed_port_is_a_fetch_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    error = _refusal(f"http://127.0.0.2:{port}/")
    assert (error.code, error.status) == ("url_fetch_failed", 502)


@pytest.mark.parametrize("answer", [socket.gaierror("no such host"), []])
def test_an_unresolvable_host_is_refused(answer: object) -> None:
    def resolve(host: str, port: int) -> list[str]:
        if isinstance(answer, Exception):
            raise answer
        return []

    long_url = "http://" + "a" * 60 + ".test/" + "p" * 5000
    error = _refusal(long_url, resolve=resolve)
    assert error.code == "url_unresolvable" and len(error.message) < 400


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, list[str]]]:
    """An https server on 127.0.0.2 with a self-signed certificate for images.test."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=images.test", "-addext",
         "subjectAltName=DNS:images.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    names: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name or "")
    stop = threading.Event()
    server = _Server(("127.0.0.2", 0), http.server.BaseHTTPRequestHandler)
    server.RequestHandlerClass = _handler(Seen(), stop, 0)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _serve(server)
    yield server.server_address[1], cert, names
    stop.set()
    server.shutdown()
    server.server_close()


def test_https_verifies_the_original_host_name(
    tls_server: tuple[int, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi

    port, cert, names = tls_server
    monkeypatch.setattr(certifi, "where", lambda: str(cert))  # trust only our test certificate
    resolve = _table(images_test=["127.0.0.2"], other_test=["127.0.0.2"])
    url = f"https://images.test:{port}/image.png"
    assert fetch_image(url, POLICY, resolve=resolve) == FetchedImage(PNG, url, "image/png")
    # The same certificate presented for another name must fail verification.
    error = _refusal(f"https://other.test:{port}/image.png", resolve=resolve)
    assert error.code == "url_fetch_failed"
    assert names == ["images.test", "other.test"]
