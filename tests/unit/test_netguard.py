"""models.netguard: the SSRF check shared by image URLs and webhook endpoints, and the pinned,
deadline-capped request (any method, with a body) that webhook deliveries send through.

The end-to-end image fetch (redirect hops, body caps, TLS) is tests/unit/test_urlfetch.py,
which runs the same table of forbidden URLs through fetch_image.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.unit.http_stub import QuietHandler, QuietServer, serving
from visionq.models import netguard
from visionq.models.netguard import UrlRefused, check_url, parse_networks, pinned_send

# (URL template, code): every one must be refused before any connection is made.
SSRF_URLS = [
    ("http://127.0.0.1:{port}/image.png", "url_host_not_allowed"),
    ("http://localhost:{port}/image.png", "url_host_not_allowed"),
    ("http://2130706433:{port}/", "url_host_not_allowed"),
    ("http://0177.0.0.1:{port}/", "url_host_not_allowed"),
    ("http://0x7f000001:{port}/", "url_host_not_allowed"),
    ("http://0x7f.1:{port}/", "url_host_not_allowed"),
    ("http://127.1:{port}/", "url_host_not_allowed"),
    ("http://127.0.0.1.:{port}/", "url_host_not_allowed"),
    ("http://[::1]:{port}/", "url_host_not_allowed"),
    ("http://[::ffff:127.0.0.1]:{port}/", "url_host_not_allowed"),
    ("http://[::ffff:7f00:1]:{port}/", "url_host_not_allowed"),
    ("http://[2002:7f00:1::]:{port}/", "url_host_not_allowed"),  # 6to4 around 127.0.0.1
    ("http://[64:ff9b::7f00:1]:{port}/", "url_host_not_allowed"),  # NAT64 around 127.0.0.1
    ("http://[fe80::1%25lo]:{port}/", "url_host_not_allowed"),
    ("http://169.254.169.254/latest/meta-data/", "url_host_not_allowed"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "url_host_not_allowed"),
    ("http://10.0.0.1/", "url_host_not_allowed"),
    ("http://172.16.0.1/", "url_host_not_allowed"),
    ("http://192.168.1.1/", "url_host_not_allowed"),
    ("http://100.64.0.1/", "url_host_not_allowed"),
    ("http://0.0.0.0:{port}/", "url_host_not_allowed"),
    ("http://224.0.0.1/", "url_host_not_allowed"),
    ("http://255.255.255.255/", "url_host_not_allowed"),
    ("file:///etc/passwd", "url_scheme_not_allowed"),
    ("ftp://example.com/image.png", "url_scheme_not_allowed"),
    ("gopher://127.0.0.1:{port}/_GET%20/", "url_scheme_not_allowed"),
    ("http://user:pw@example.com/", "url_invalid"),
    ("http://example.com@127.0.0.1:{port}/", "url_invalid"),
    ("http://example.com\\@127.0.0.1:{port}/", "url_invalid"),
    ("http://exa mple.com/", "url_invalid"),
    ("http://a%2fb.example/", "url_invalid"),
    ("http:///image.png", "url_invalid"),
    ("http://example.com:99999/", "url_invalid"),
    ("http://example.com:0/", "url_invalid"),
    ("not a url", "url_invalid"),
]
ALLOWED = parse_networks(["127.0.0.2/32"])


def _localhost(host: str, port: int) -> list[str]:
    """The system resolver for localhost only: no test may send a DNS query out."""
    assert host == "localhost", host
    return netguard.system_resolve(host, port)


def _refusal(url: str, **kwargs: object) -> UrlRefused:
    with pytest.raises(UrlRefused) as caught:
        check_url(url, **{"networks": (), **kwargs})  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(("template", "code"), SSRF_URLS)
def test_forbidden_urls_are_refused(template: str, code: str) -> None:
    assert _refusal(template.format(port=8080), resolve=_localhost).code == code


def test_a_name_with_any_private_address_is_refused() -> None:
    error = _refusal("http://mixed.test/", resolve=lambda h, p: ["93.184.216.34", "10.0.0.7"])
    assert error.code == "url_host_not_allowed" and "10.0.0.7" in error.message


@pytest.mark.parametrize("answer", [[], ["not an address"]])
def test_an_unresolvable_host_is_refused(answer: list[str]) -> None:
    assert _refusal("http://nowhere.test/", resolve=lambda h, p: answer).code == "url_unresolvable"


def test_an_allowed_network_lets_its_addresses_through() -> None:
    target = check_url(
        "http://hooks.test:9/x", networks=ALLOWED, resolve=lambda h, p: ["127.0.0.2"]
    )
    assert (target.host, target.server_name, target.addresses) == (
        "hooks.test",
        "hooks.test",
        ("127.0.0.2",),
    )
    assert _refusal("http://127.0.0.3/", networks=ALLOWED).code == "url_host_not_allowed"


def test_https_can_be_required() -> None:
    error = _refusal("http://93.184.216.34/", require_https=True)
    assert error.code == "url_scheme_not_allowed" and "https://" in error.message
    target = check_url("https://93.184.216.34/", networks=(), require_https=True)
    assert target.addresses == ("93.184.216.34",) and target.server_name is None


def test_a_malformed_network_is_an_operator_error() -> None:
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/33"])


# --- pinned_send against a real server on 127.0.0.2 --------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, list[tuple[str, str, bytes]]]]:
    """127.0.0.2: echoes ``Host`` and the body of a POST; ``/stall`` answers headers, then
    waits."""
    seen: list[tuple[str, str, bytes]] = []
    stop = threading.Event()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append((self.headers.get("Host", ""), self.path, body))
            self.close_connection = True
            with contextlib.suppress(OSError):
                if self.path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    stop.wait(10)
                    return
                answer = self.headers.get("Host", "").encode() + b"|" + body
                self.send_response(201)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

    try:
        srv = QuietServer(("127.0.0.2", 0), Handler)
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.2 here: {exc}")
    with serving(srv) as port:
        yield port, seen
        stop.set()


def test_a_post_goes_to_the_checked_address_with_the_original_host(
    server: tuple[int, list[tuple[str, str, bytes]]],
) -> None:
    port, seen = server
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)  # a second answer would move the request to loopback
        return ["127.0.0.2"] if len(asked) == 1 else ["127.0.0.1"]

    target = check_url(f"http://hooks.test:{port}/in", networks=ALLOWED, resolve=rebinding)
    with netguard.guarded_client() as client:
        response = pinned_send(
            client, target, "127.0.0.2", method="POST", headers={"content-type": "text/plain"},
            content=b"payload", deadline=time.monotonic() + 3,
        )  # fmt: skip
    assert response.status_code == 201
    assert response.content == f"hooks.test:{port}|payload".encode()
    assert seen[-1] == (f"hooks.test:{port}", "/in", b"payload") and asked == ["hooks.test"]


def test_only_a_checked_address_is_dialled(
    server: tuple[int, list[tuple[str, str, bytes]]],
) -> None:
    target = check_url(f"http://127.0.0.2:{server[0]}/", networks=ALLOWED)
    with netguard.guarded_client() as client, pytest.raises(ValueError):
        pinned_send(
            client, target, "127.0.0.1", method="POST", headers={}, content=b"",
            deadline=time.monotonic() + 3,
        )  # fmt: skip


def test_a_streamed_answer_is_cut_at_the_deadline(
    server: tuple[int, list[tuple[str, str, bytes]]],
) -> None:
    target = check_url(f"http://127.0.0.2:{server[0]}/stall", networks=ALLOWED)
    with netguard.guarded_client() as client:
        response = pinned_send(
            client, target, "127.0.0.2", method="POST", headers={}, content=b"{}",
            deadline=time.monotonic() + 0.6, stream=True,
        )  # fmt: skip
        assert response.status_code == 200
        with pytest.raises(httpx.HTTPError):
            for _ in response.iter_raw():
                pass
        response.close()


def test_a_closed_port_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    target = check_url(f"http://127.0.0.2:{port}/", networks=ALLOWED)
    with netguard.guarded_client() as client, pytest.raises(httpx.ConnectError):
        netguard.send_to_target(
            client, target, method="POST", headers={}, content=b"{}",
            deadline=time.monotonic() + 3,
        )  # fmt: skip
