"""The Gemini API key never leaves the worker's memory: not in logs, the database, Redis or
any API answer, even when calls fail in every way."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from sqlalchemy import inspect, text

from tests.faults.stack import FaultStack

pytestmark = pytest.mark.faults


def test_the_gemini_key_appears_nowhere(make_stack: Callable[..., FaultStack]) -> None:
    canary = f"AIzaCANARY{uuid.uuid4().hex}"
    stack = make_stack(gemini_key=canary, max_attempts="2")
    stack.start_worker(concurrency=8)
    bodies: list[str] = []
    total = 0
    # Good calls, retried failures, refusals, quota exhaustion and timeouts.
    for faults in (
        {},
        {"always_fail": 503},
        {"always_fail": 403},
        {"always_fail": 400},
        {"always_fail": None, "daily_quota_exhausted": True},
        {"daily_quota_exhausted": False, "fail_429_rate": 1.0},
        {"fail_429_rate": 0.0, "hang_rate": 1.0, "hang_s": 10},
    ):
        stack.set_faults(**faults)
        responses = stack.submit_many(5)
        bodies += [r.text for r in responses]
        total += len(responses)
        stack.wait_all_terminal(total, timeout=120)
    audit = stack.audit()
    assert {"succeeded", "failed"} <= set(audit.by_status())
    with stack.client() as client:
        for job in audit.jobs:
            bodies.append(client.get(f"/v1/jobs/{job['id']}").text)
        bodies.append(client.get("/v1/jobs", params={"limit": 200}).text)
        bodies.append(client.post("/v1/jobs", json={"task": "caption"}).text)  # an error body
        bodies.append(client.get("/openapi.json").text)

    assert not [b for b in bodies if canary in b], "the key is in an API answer"
    assert not _database_rows_with(stack, canary), "the key is in the database"
    assert not _redis_values_with(stack, canary), "the key is in Redis"
    assert not _files_with(stack, canary), "the key is in a file"
    # The searches are not blind: a planted copy in Redis and in a file is found.
    assert stack.redis is not None
    with redis.Redis.from_url(stack.redis.url) as planted:
        planted.set("control", canary)
    (stack.workdir / "control.txt").write_text(canary)
    assert _redis_values_with(stack, canary) and _files_with(stack, canary)

    # The canary was really used: the emulator saw calls authenticated with it.
    assert stack.emulator_stats()["generate_calls"] >= total


def _files_with(stack: FaultStack, needle: str) -> list[Path]:
    """Every file the stack wrote: logs of API and workers, Redis's AOF, the blob store, the
    SQLite file and its WAL. (The emulator plays Google: it is the key's addressee.)"""
    database_file = Path(stack.database_url.removeprefix("sqlite:///"))
    files = [*stack.workdir.rglob("*"), *database_file.parent.glob(database_file.name + "*")]
    return [path for path in files if path.is_file() and "emulator" not in path.name
            and needle.encode() in path.read_bytes()]  # fmt: skip


def _database_rows_with(stack: FaultStack, needle: str) -> list[str]:
    assert stack.engine is not None
    found = []
    with stack.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                if needle in repr(tuple(row)):
                    found.append(table)
    return found


def _redis_values_with(stack: FaultStack, needle: str) -> list[str]:
    assert stack.redis is not None
    found = []
    # Closed on leaving: an unclosed client's socket is a ResourceWarning (an error here).
    with redis.Redis.from_url(stack.redis.url) as client:
        for db in range(16):
            client.execute_command("SELECT", db)
            for key in client.scan_iter():
                dumped = client.dump(key) or b""
                if needle.encode() in key or needle.encode() in dumped:
                    found.append(f"{db}:{key!r}")
    return found
