"""How the API is served: uvicorn's httptools protocol with read timeouts and a cap on
connections per client address, which uvicorn does not have.

uvicorn only closes a connection that is idle between two requests (``timeout_keep_alive``);
a client that sends its headers one line every few seconds, or announces a large body and
sends it a byte at a time, holds a connection (and a file descriptor) for as long as it
likes, and one address can open thousands. ``GuardedHttpToolsProtocol`` adds, per
connection:

- a header deadline: the request line and headers must be complete within
  ``header_timeout_s`` of the connection opening (or of the next request's first byte);
- a body deadline: the body must keep arriving, at most ``body_timeout_s`` between two
  reads, and at ``body_min_bytes_per_s`` on average after a ``body_timeout_s`` grace;
- at most ``MAX_HEADER_BYTES`` of request line and headers (431 beyond);
- a write deadline: a client that stops reading its response for ``body_timeout_s`` (the
  send buffers full) is disconnected, which frees the request waiting to write to it;
- a cap of ``max_connections_per_client`` open connections per client IP address (per API
  process): the next one is answered 429 and closed.

A request cut off after some of it arrived is answered 408 where no response has started.
Only the httptools protocol is guarded: it is what uvicorn already picked here (its C parser
is faster than h11), and `visionq api` selects it explicitly so a guard is always in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
import sys
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from visionq.models.blobs import startup_problem
from visionq.models.logs import logging_config
from visionq.models.settings import Settings, get_settings

log = logging.getLogger("uvicorn.error")

# The protocol uvicorn runs, by import string so that every `--workers` process loads it.
PROTOCOL = "visionq.api.server:GuardedHttpToolsProtocol"
# A summary of cut-off connections is logged at most this often: a slowloris attack would
# otherwise turn into a log flood.
_LOG_EVERY_S = 10.0
# Request line and headers larger than this are refused (431): httptools sets no bound, so
# within the header deadline a client could otherwise send gigabytes of headers.
MAX_HEADER_BYTES = 64 * 1024
# How long a refused connection may linger (reading and discarding) so that its 429
# reaches the client before the close, instead of a reset that would discard it.
_REFUSE_LINGER_S = 1.0


@dataclass(frozen=True)
class ClientLimits:
    """The bounds a client is held to; 0 turns off the per-client cap or the minimum rate."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_min_bytes_per_s: float = 4096.0
    max_connections_per_client: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientLimits:
        """The limits the VISIONQ_* settings give."""
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            body_min_bytes_per_s=settings.body_min_bytes_per_s,
            max_connections_per_client=settings.max_connections_per_client,
        )


@functools.cache
def _configured_limits() -> ClientLimits:
    return ClientLimits.from_settings(get_settings())


@dataclass
class _Registry:
    """Per uvicorn server: open connections per client address, and cut-offs not yet logged."""

    open: Counter[str] = field(default_factory=Counter)
    unlogged: Counter[str] = field(default_factory=Counter)
    logged_at: float = float("-inf")
    flush: asyncio.TimerHandle | None = None

    def note(self, what: str, loop: asyncio.AbstractEventLoop) -> None:
        """Count a closed connection; log the counts now, or once the interval has passed."""
        self.unlogged[what] += 1
        due = self.logged_at + _LOG_EVERY_S
        if loop.time() >= due:
            self._log(loop)
        elif self.flush is None:
            self.flush = loop.call_at(due, self._log, loop)

    def _log(self, loop: asyncio.AbstractEventLoop) -> None:
        shown = ", ".join(f"{count} {kind}" for kind, count in sorted(self.unlogged.items()))
        log.warning("closed slow or excess client connections: %s", shown)
        self.unlogged.clear()
        self.logged_at = loop.time()
        self.flush = None


_REGISTRIES: weakref.WeakKeyDictionary[ServerState, _Registry] = weakref.WeakKeyDictionary()


def _response(status: int, reason: str, message: str, extra: str = "") -> bytes:
    body = message.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n{extra}connection: close\r\n\r\n"
    ).encode() + body


# Phases of the request being read. IDLE: none (between requests, or the app is answering).
_IDLE, _HEADERS, _BODY = 0, 1, 2


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a per-client cap.

    ``limits`` (a subclass may set it, as the tests do) defaults to the VISIONQ_* settings.
    """

    limits: ClassVar[ClientLimits | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = type(self).limits or _configured_limits()
        registry = _REGISTRIES.get(server_state)
        if registry is None:
            registry = _REGISTRIES[server_state] = _Registry()
        self._registry = registry
        self._counted_peer: str | None = None
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._phase = _IDLE
        self._seen = False  # a byte of the request being read has arrived
        self._header_bytes = 0
        self._body_started = self._last_read = self._checked = 0.0
        self._body_bytes = 0

    # --- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection against its client's cap (or refuse it); start the header
        deadline."""
        super().connection_made(transport)
        peer = self.client[0] if self.client else None
        cap = self._limits.max_connections_per_client
        if peer is not None and cap > 0:
            if self._registry.open[peer] >= cap:
                self._refuse()
                return
            self._registry.open[peer] += 1
            self._counted_peer = peer
        self._start_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadlines and uncount the connection."""
        self._cancel_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._counted_peer is not None:
            self._registry.open[self._counted_peer] -= 1
            if self._registry.open[self._counted_peer] <= 0:
                del self._registry.open[self._counted_peer]
            self._counted_peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse, unless refused; bytes after an answered request open a header deadline
        (uvicorn drops its keep-alive timer on any byte, even a stray CRLF)."""
        if self._refused:
            return  # read and dropped while the 429 drains
        if self._phase == _IDLE and (self.cycle is None or self.cycle.response_complete):
            self._start_headers()
        if self._phase == _HEADERS:
            self._seen = True
            self._header_bytes += len(data)
        super().data_received(data)
        # Still in the headers after this many bytes (body bytes of the same read only
        # count when the headers ended in it, and then the phase has moved on).
        if self._phase == _HEADERS and self._header_bytes > MAX_HEADER_BYTES:
            self._cancel_timer()
            self._cut(
                f"headers over {MAX_HEADER_BYTES} bytes",
                self.cycle is None or self.cycle.response_complete,
                f"Request line and headers over {MAX_HEADER_BYTES} bytes.",
                status=(431, "Request Header Fields Too Large"),
            )

    def _refuse(self) -> None:
        self._refused = True
        self._registry.note("over VISIONQ_MAX_CONNECTIONS_PER_CLIENT", self.loop)
        self.transport.write(
            _response(
                429,
                "Too Many Requests",
                f"Too many open connections from this address (at most "
                f"{self._limits.max_connections_per_client}); reuse or close one, then retry.",
                "retry-after: 1\r\n",
            )
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._timer = self.loop.call_later(_REFUSE_LINGER_S, self.transport.close)
        else:
            self.transport.close()

    # --- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A pipelined request's first byte starts its header deadline."""
        super().on_message_begin()
        if self._phase == _IDLE:
            self._start_headers()
        self._seen = True

    def on_headers_complete(self) -> None:
        """Headers done in time: the body deadline starts."""
        self._cancel_timer()
        now = self.loop.time()
        self._phase = _BODY
        self._body_started = self._last_read = self._checked = now
        self._body_bytes = 0
        self._timer = self.loop.call_at(now + self._limits.body_timeout_s, self._check_body)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Body progress pushes the deadlines back."""
        self._body_bytes += len(body)
        self._last_read = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The whole request arrived: no deadline until the next one starts."""
        self._cancel_timer()
        self._phase = _IDLE
        super().on_message_complete()

    def pause_writing(self) -> None:
        """The client is not reading what we send: start the write deadline."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(
                self._limits.body_timeout_s, self._write_stalled
            )

    def resume_writing(self) -> None:
        """The client reads again."""
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().resume_writing()

    def _write_stalled(self) -> None:
        self._write_timer = None
        if not self.transport.is_closing():
            self._registry.note("response unread for VISIONQ_BODY_TIMEOUT_S", self.loop)
        # abort, not close: close would wait for the unread buffer to drain first; and a
        # reset (linger 0) rather than a FIN, or the kernel would keep the buffer and retry.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    # --- deadlines -------------------------------------------------------------------

    def _start_headers(self) -> None:
        self._cancel_timer()
        self._phase = _HEADERS
        self._seen = False
        self._header_bytes = 0
        self._timer = self.loop.call_later(self._limits.header_timeout_s, self._headers_late)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        # Nothing of a request yet: close quietly, as uvicorn does an idle keep-alive.
        answer = self._seen and not self.pipeline
        answer = answer and (self.cycle is None or self.cycle.response_complete)
        self._cut(
            "past VISIONQ_HEADER_TIMEOUT_S",
            answer,
            f"Request headers not complete within {self._limits.header_timeout_s:g} s.",
        )

    def _check_body(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            # The wait is ours, not the client's: reading was paused (the app has not taken
            # what arrived), or the client waits for the 100 Continue that uvicorn sends
            # when the app first asks for the body. The time since the last check is free.
            self._body_started += now - self._checked
            self._last_read = now
        self._checked = now
        limits = self._limits
        deadline = self._last_read + limits.body_timeout_s
        if limits.body_min_bytes_per_s > 0:
            earned = self._body_bytes / limits.body_min_bytes_per_s
            deadline = min(deadline, self._body_started + limits.body_timeout_s + earned)
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._check_body)
            return
        cycle = self.cycle
        answer = not self.pipeline and not cycle.response_started
        # The app is waiting for the body: it gets a disconnect, and anything it sends
        # afterwards is dropped rather than written after the 408.
        cycle.disconnected = True
        cycle.message_event.set()
        self._cut(
            "body slower than VISIONQ_BODY_TIMEOUT_S/_MIN_BYTES_PER_S",
            answer,
            f"Request body too slow: nothing for {limits.body_timeout_s:g} s, or under "
            f"{limits.body_min_bytes_per_s:g} bytes/s.",
        )

    def _cut(
        self,
        what: str,
        answer: bool,
        message: str,
        status: tuple[int, str] = (408, "Request Timeout"),
    ) -> None:
        if self.transport.is_closing():
            return
        self._registry.note(what, self.loop)
        if answer:
            hint = " Send it faster." if status[0] == 408 else " Send a smaller request."
            self.transport.write(_response(*status, message + hint))
        self.transport.close()


def run(*, host: str, port: int, workers: int, fd: int | None = None) -> None:
    """Serve the API (api.app:create_app, with its access log) with the guarded protocol
    until stopped; on the listening socket ``fd`` if given, else on ``host:port``."""
    try:
        _configured_limits()  # a bad setting fails here, before the port is taken
    except ValueError as exc:
        sys.exit(f"visionq api: {exc}")
    # A missing bucket, a misspelt option or a store nobody answers at would make every
    # submit a 503 behind a healthy-looking process: refuse to start instead.
    problem = startup_problem(get_settings())
    if problem is not None:
        sys.exit(f"visionq api: {problem}")
    uvicorn.run(
        # The app with its access log (api/accesslog.py), which replaces uvicorn's.
        "visionq.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        fd=fd,
        workers=workers,
        log_level="info",
        log_config=logging_config(get_settings().log_format),
        access_log=False,
        http=PROTOCOL,
        ws="none",
    )
