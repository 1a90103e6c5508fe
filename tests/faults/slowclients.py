"""Slow HTTP clients for the slow-client fault test: many connections on one event loop that
send a request a little at a time, and what became of each (who closed it, when, with what).

Sources are loopback addresses other than 127.0.0.1 (Linux routes all of 127/8 to the
loopback), so the slow clients count against their own per-client connection cap while
the test's normal client, on 127.0.0.1, does not share it.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """What happened to one slow connection."""

    closed_by_server: bool
    seconds_open: float
    status: int | None  # the status line the server sent before closing, if any


@dataclass(frozen=True)
class Attack:
    """Slow connections of one kind, all from ``source``."""

    source: str
    connections: int
    body: bool  # False: headers a line at a time; True: full headers, then a body dribble
    interval_s: float  # between two sends
    give_up_s: float  # the client closes a connection still open after this
    headers: bytes = b""  # more header lines (each ending in CRLF), e.g. Authorization


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def _status(first: bytes) -> int | None:
    parts = first.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


async def _one(host: str, port: int, attack: Attack, index: int) -> Outcome:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(attack.source, 0))
    except OSError:
        return Outcome(True, 0.0, None)  # refused at the door counts as cut off
    if attack.body:
        # A multipart job whose body never finishes: the API is reading it when cut off.
        writer.write(
            b"POST /v1/jobs HTTP/1.1\r\nHost: visionq\r\n" + attack.headers
            + b"Content-Type: multipart/form-data; boundary=slow\r\n"
            b"Content-Length: 10000000\r\n\r\n--slow\r\nContent-Disposition: form-data; "
            b'name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        )  # fmt: skip
    else:
        writer.write(b"POST /v1/jobs HTTP/1.1\r\nHost: visionq\r\n" + attack.headers)
    received = b""
    sent = 0
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), timeout=attack.interval_s)
            except TimeoutError:
                if loop.time() - started >= attack.give_up_s:
                    return Outcome(False, loop.time() - started, _status(received))
                sent += 1
                writer.write(
                    b"0123456789" if attack.body else b"X-Slow-%d-%d: 1\r\n" % (index, sent)
                )
                await writer.drain()
                continue
            if not chunk:
                return Outcome(True, loop.time() - started, _status(received))
            received += chunk
    except (ConnectionError, OSError):
        return Outcome(True, loop.time() - started, _status(received))
    finally:
        writer.close()


async def _run(host: str, port: int, attacks: Sequence[Attack]) -> list[list[Outcome]]:
    groups = [
        asyncio.gather(*(_one(host, port, attack, i) for i in range(attack.connections)))
        for attack in attacks
    ]
    return [list(group) for group in await asyncio.gather(*groups)]


def run_attacks(host: str, port: int, attacks: Sequence[Attack]) -> list[list[Outcome]]:
    """Run every attack at once on a fresh event loop; the outcomes per attack, in order."""
    return asyncio.run(_run(host, port, attacks))


def summary(outcomes: Sequence[Outcome]) -> dict[str, object]:
    """Figures for a report: how many the server closed, the longest any stayed open."""
    closed = [o for o in outcomes if o.closed_by_server]
    return {
        "connections": len(outcomes),
        "closed_by_server": len(closed),
        "still_open_at_give_up": len(outcomes) - len(closed),
        "max_open_s": round(max((o.seconds_open for o in outcomes), default=0.0), 2),
        "max_open_closed_s": round(max((o.seconds_open for o in closed), default=0.0), 2),
        "statuses": dict(Counter(str(o.status) for o in outcomes)),
    }
