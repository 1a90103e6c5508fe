"""api/server.py: the guarded uvicorn protocol cuts off slow headers and bodies, caps
connections per client address and still serves normal clients (on asyncio and uvloop).

Each test runs a tiny ASGI app under a real uvicorn server in a thread, with deadlines of a
fraction of a second, and talks to it over raw sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

from visionq.api import server as api_server
from visionq.api.server import MAX_HEADER_BYTES, PROTOCOL, ClientLimits, GuardedHttpToolsProtocol

TIGHT = ClientLimits(
    header_timeout_s=0.4, body_timeout_s=0.4, body_min_bytes_per_s=0, max_connections_per_client=3
)
BIG = 16 * 1024 * 1024  # a response larger than the socket buffers
GIVE_UP_S = 10.0  # a client gives up on an answer after this (the deadlines are far shorter)


@dataclass
class App:
    """Answers with the body's length; a POST to /slow waits before reading the body."""

    disconnects: list[str] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(1.0)  # longer than the body deadline
        if scope["path"] == "/big":
            await self.send_big(send)
            return
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects.append(scope["path"])
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(size).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def send_big(self, send: Any) -> None:
        """BIG bytes in 64 KiB chunks; notes whether the last send returned."""
        headers = [(b"content-length", str(BIG).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        chunk = b"x" * 65536
        for _ in range(BIG // len(chunk)):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        self.disconnects.append("/big sent")


@dataclass
class Served:
    port: int
    app: App

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=GIVE_UP_S)
        return sock


@contextmanager
def serving(limits: ClientLimits, loop: str) -> Iterator[Served]:
    """The app under uvicorn with the guarded protocol held to ``limits``."""
    protocol = type("Tight", (GuardedHttpToolsProtocol,), {"limits": limits})
    app = App()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = Config(app, http=protocol, loop=loop, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "server thread did not start"
            time.sleep(0.01)
        yield Served(sock.getsockname()[1], app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with serving(TIGHT, request.param) as running:
        yield running


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset ends it too)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, read from a connection left open."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def post(size: int, path: str = "/") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode()


def test_normal_requests_are_served_on_one_connection(served: Served) -> None:
    with served.connect() as sock:
        for size in (0, 10, 100_000):
            sock.sendall(post(size) + b"x" * size)
            answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert answer.endswith(str(size).encode())
            time.sleep(0.25)  # idle between requests: within keep-alive, no deadline runs


def test_headers_sent_a_line_at_a_time_are_cut_off_with_408(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\n")
        for line in range(20):  # 20 x 0.1 s: far past the 0.4 s header deadline
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % line)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
    assert b"connection: close" in answer


def test_a_silent_connection_is_closed_without_an_answer(served: Served) -> None:
    with served.connect() as sock:
        assert read_until_closed(sock) == b""


def test_the_next_request_on_a_kept_alive_connection_has_a_header_deadline(
    served: Served,
) -> None:
    with served.connect() as sock:
        sock.sendall(post(0))
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        # uvicorn drops its keep-alive timer on any byte: a stray CRLF must not hold it open.
        sock.sendall(b"\r\n")
        time.sleep(0.1)
        sock.sendall(b"GET / HT")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_a_body_that_stops_is_cut_off_and_the_app_sees_a_disconnect(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(post(1000) + b"x" * 10)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
    assert served.app.disconnects == ["/"]


def test_a_body_with_pauses_under_the_deadline_is_served(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(post(30))
        for _ in range(3):  # 0.75 s in all, each pause under the 0.4 s deadline
            time.sleep(0.25)
            sock.sendall(b"x" * 10)
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"30"), answer


def test_a_body_the_app_is_slow_to_read_is_not_cut_off(served: Served) -> None:
    """Past uvicorn's buffer the server stops reading: that wait is not the client's."""
    size = 4 * HIGH_WATER_LIMIT
    with served.connect() as sock:
        sock.sendall(post(size, "/slow") + b"x" * size)
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(str(size).encode()), answer


def test_a_client_waiting_for_100_continue_is_not_cut_off(served: Served) -> None:
    """The app asks for the body after the deadline: until then the client rightly waits."""
    with served.connect() as sock:
        sock.sendall(post(10, "/slow").replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(b"x" * 10)
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"10"), answer


def test_a_client_that_stops_reading_its_response_is_disconnected(served: Served) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", served.port))
    with sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        deadline = time.monotonic() + GIVE_UP_S
        while "/big sent" not in served.app.disconnects and time.monotonic() < deadline:
            time.sleep(0.05)  # not reading: the app's send waits until the server gives up
        assert served.app.disconnects == ["/big sent"]
        sock.settimeout(GIVE_UP_S)
        received = read_until_closed(sock)
    assert len(received) < BIG  # cut off, not finished


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_body_below_the_minimum_rate_is_cut_off_after_the_grace(loop: str) -> None:
    limits = ClientLimits(
        header_timeout_s=5, body_timeout_s=0.5, body_min_bytes_per_s=100,
        max_connections_per_client=0,
    )  # fmt: skip
    with serving(limits, loop) as running, running.connect() as sock:
        sock.sendall(post(100_000))
        started = time.monotonic()
        # 10 bytes every 0.2 s: never idle for the 0.5 s deadline, but 50 bytes/s
        while time.monotonic() - started < GIVE_UP_S:
            try:
                sock.sendall(b"x" * 10)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"under 100 bytes/s" in answer


def test_connections_beyond_the_cap_per_address_are_refused_with_429(served: Served) -> None:
    held = [served.connect() for _ in range(TIGHT.max_connections_per_client)]
    try:
        for sock in held:  # each answered: all three are counted and served
            sock.sendall(post(0))
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        with served.connect() as extra:
            extra.sendall(post(0))
            answer = read_until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 429 Too Many Requests"), answer
        assert b"retry-after: 1" in answer
        held.pop().close()
        time.sleep(0.2)  # the server sees the close
        with served.connect() as again:
            again.sendall(post(0))
            assert read_response(again).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()


def test_oversized_headers_are_refused_with_431(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1))
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer


def test_visionq_api_serves_with_the_guarded_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs, app=app))
    api_server.run(host="127.0.0.1", port=8000, workers=2)
    assert seen["app"] == "visionq.api.app:create_app" and seen["factory"] is True
    assert seen["http"] == PROTOCOL and seen["workers"] == 2
    module, _, name = PROTOCOL.partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is GuardedHttpToolsProtocol


def test_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from visionq.models.settings import Settings

    settings = Settings(
        header_timeout_s=3, body_timeout_s=4, body_min_bytes_per_s=0, max_connections_per_client=7
    )
    assert ClientLimits.from_settings(settings) == ClientLimits(3, 4, 0, 7)
