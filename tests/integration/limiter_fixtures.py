"""Fixtures of the rate-limiter tests: a Redis server of their own (per module), a client
on it, and a fresh key prefix per test. Import them into a test module to use them. Also
the model name the tests limit and a client of a Redis that is not there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.services import free_port, redis_server

MODEL = "gemini-test"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("ratelimit-redis")) as url:
        yield url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix, so no test sees another's state."""
    return f"test:{uuid.uuid4().hex}"


def _unreachable_redis() -> redis.Redis:
    # No retries: redis-py would otherwise back off for seconds before raising.
    return redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
