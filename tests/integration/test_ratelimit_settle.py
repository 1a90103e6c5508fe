"""Nothing the limiter does after Gemini answered may lose the answer (issue 23 code review
A): Redis stops between the admission and the settle, and the answer (or Gemini's own 429,
still a GeminiCallError) comes back unchanged; the emulator saw the one call. Real Redis,
a real emulator through the SDK."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis
from google.genai import Client, types

from tests.services import RedisServer
from visionq.cli.stackbuild import StackBuilder
from visionq.vision.catalogue import ServiceTier
from visionq.worker.gemini import GeminiCaller, GeminiCallError
from visionq.worker.gemini_call import _send
from visionq.worker.ratelimit import GeminiRateLimiter, ModelQuota

MODEL = "gemini-3.6-flash"
KEY = "settle-test-key"
FAR = 1e12  # a deadline never reached


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An emulator whose quota is one request a minute: the second call is a real 429."""
    builder = StackBuilder(tmp_path_factory.mktemp("settle-emulator"))
    url = builder.start_emulator(
        ["--rpm", "1", "--quota-window-s", "60"], name="settle-emulator", key=KEY
    )
    yield url
    builder.stop()


def _calls(url: str) -> int:
    return int(httpx.get(f"{url}/_emulator/stats", timeout=10).json()["generate_calls"])


def _send_with_redis_stopped(tmp_path: Path, emulator: str) -> tuple[Any, GeminiRateLimiter]:
    server = RedisServer(tmp_path, persistent=False)
    server.start()
    conn = redis.Redis.from_url(server.url, socket_timeout=2)
    limiter = GeminiRateLimiter(
        conn, {MODEL: ModelQuota(rpm=100, tpm=None)}, window_s=60, margin_s=0.0,
        prefix=f"test:{uuid.uuid4().hex}",
    )  # fmt: skip

    def pace() -> None:
        limiter.acquire(MODEL, 1, deadline=FAR)
        server.stop()  # Redis is gone once the call is admitted

    client = Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=emulator, api_version="v1beta")
    )
    ctx = SimpleNamespace(
        limiter=limiter,
        gemini=GeminiCaller(client, secret=KEY),
        costs=SimpleNamespace(call_cost=lambda *_a, **_k: Decimal("0.001")),
    )
    request = SimpleNamespace(
        model=MODEL, parts=[types.Part(text="Describe the picture.")], config={}
    )
    try:
        return _send(ctx, request, pace=pace, tier=ServiceTier.STANDARD, timeout_s=None), limiter  # type: ignore[arg-type]
    finally:
        conn.close()
        client.close()
        server.stop()


def test_answer_and_429_survive_redis_gone_after_admission(tmp_path: Path, emulator: str) -> None:
    before = _calls(emulator)
    answer, _ = _send_with_redis_stopped(tmp_path / "one", emulator)
    assert answer.text
    assert _calls(emulator) == before + 1
    # The quota (1 a minute) is used: Gemini's 429 stays a GeminiCallError 429, not a
    # Redis error from learning it.
    with pytest.raises(GeminiCallError) as raised:
        _send_with_redis_stopped(tmp_path / "two", emulator)
    assert raised.value.http_status == 429
    assert _calls(emulator) == before + 2
