"""Hundreds of slow clients against a real API process: each is cut off by the server, and
normal submissions are served meanwhile (issue 16, case 6).

Before api/server.py, 1,500 connections sending a header line every 5 s all stayed open
for the whole minute the client waited; uvicorn has no header or body read timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import report
from tests.faults.slowclients import Attack, Outcome, raise_fd_limit, run_attacks, summary
from tests.faults.stack import FaultStack

pytestmark = pytest.mark.faults
N = 100
TIMEOUT_S = 3  # header and body deadlines of this stack
CAP = 50  # connections per client address
GIVE_UP_S = TIMEOUT_S + 20  # a connection still open then was never cut off
SOURCES = [f"127.0.0.{i}" for i in range(2, 14)]  # the normal client is 127.0.0.1


def attacks(key: str) -> list[Attack]:
    """8 x 50 connections dribbling headers and 2 x 50 dribbling bodies (at the cap, so all
    are accepted), and 100 from one address, twice the cap: 50 of those are refused at once.
    The slow bodies carry a valid key, so the API is reading them when they are cut."""
    auth = f"Authorization: Bearer {key}\r\n".encode()
    return [
        *(Attack(source, CAP, False, 1.0, GIVE_UP_S) for source in SOURCES[:8]),
        *(Attack(source, CAP, True, 1.0, GIVE_UP_S, auth) for source in SOURCES[8:10]),
        Attack(SOURCES[10], 2 * CAP, False, 1.0, GIVE_UP_S),
    ]


def _peak_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) >> 10
    return 0


def test_slow_clients_are_cut_off_while_submits_are_served(
    make_stack: Callable[..., FaultStack],
) -> None:
    raise_fd_limit(4096)  # before the stack starts: the API inherits it
    stack = make_stack(
        header_timeout_s=str(TIMEOUT_S),
        body_timeout_s=str(TIMEOUT_S),
        max_connections_per_client=str(CAP),
    )
    stack.start_worker(concurrency=16)
    assert stack.api is not None
    port = int(stack.api_url.rsplit(":", 1)[1])

    outcomes: list[list[Outcome]] = []
    planned = attacks(stack.key)
    attack = threading.Thread(
        target=lambda: outcomes.extend(run_attacks("127.0.0.1", port, planned)), daemon=True
    )
    started = time.monotonic()
    attack.start()
    time.sleep(0.5)  # the slow connections are open before the real clients come
    responses = stack.submit_many(N)
    submitted_s = time.monotonic() - started
    attack.join(timeout=GIVE_UP_S + 30)
    assert not attack.is_alive() and len(outcomes) == len(planned)

    statuses = sorted({r.status_code for r in responses})
    assert statuses == [202], [r.text for r in responses if r.status_code != 202][:3]
    stack.wait_all_terminal(N)
    audit = stack.audit()
    audit.check_exactly_once()
    assert audit.by_status() == {"succeeded": N}, audit.by_status()
    assert stack.emulator_stats()["answered_ok"] == N

    headers = [o for group in outcomes[:8] for o in group]
    bodies = [o for group in outcomes[8:10] for o in group]
    excess = outcomes[10]
    for outcome in [*headers, *bodies, *excess]:
        assert outcome.closed_by_server, outcome  # none outlived the client's patience
    assert {o.status for o in headers} == {408}
    assert {o.status for o in bodies} == {408}
    assert sorted(o.status or 0 for o in excess) == [408] * CAP + [429] * CAP

    api_log = (stack.workdir / "api.log").read_text(errors="replace")
    assert "Traceback" not in api_log and " 500 " not in api_log
    assert not list((stack.workdir / "blobs").rglob("*.tmp"))
    report(
        "slow clients",
        audit.figures(
            slow_headers=summary(headers),
            slow_bodies=summary(bodies),
            over_cap=summary(excess),
            seconds_for_100_submits_under_attack=round(submitted_s, 1),
            api_peak_rss_mb=_peak_rss_mb(stack.api.popen.pid),
        ),
    )
