"""Run the emulator under uvicorn, announcing the real bound address on stdout."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from visionq.emulator.app import create_app
from visionq.emulator.config import EmulatorConfig

READY_PREFIX = "emulator listening on "
# A call hanging on purpose (hang_s, 600 s by default) must not hold up Ctrl-C or
# SIGTERM: in-flight calls get this long, then are cancelled.
GRACEFUL_SHUTDOWN_S = 3


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it a kept-alive connection waits ~40 ms per
    # answer (uvicorn writes headers and body apart; Nagle holds the body for the client's
    # delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def run(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8001,
    log_config: dict[str, Any] | None = None,
) -> None:
    """Serve until interrupted; prints ``emulator listening on http://HOST:PORT`` first.

    The socket is bound before uvicorn starts, so the printed port is the real one even
    for ``port=0`` and a parent process can connect as soon as it reads the line.
    ``log_config``: a logging dictConfig (`visionq emulator` passes visionq's, so
    VISIONQ_LOG_FORMAT applies); uvicorn's own by default.
    """
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            log_level="warning",
            access_log=False,
            log_config=LOGGING_CONFIG if log_config is None else log_config,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )
    print(f"{READY_PREFIX}http://{shown_host}:{bound_port}", flush=True)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
