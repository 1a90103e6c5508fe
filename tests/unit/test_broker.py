"""models/broker.py: kombu's Redis channel with one client object per pool."""

from __future__ import annotations

import types

import pytest
import redis

from visionq.models.broker import Channel, transport_options


def _channel(pool: redis.ConnectionPool) -> Channel:
    channel = Channel.__new__(Channel)  # no broker connection needed: no command is sent
    channel._pool = pool
    channel._async_pool = None
    channel.Client = redis.Redis
    return channel


def test_commands_reuse_one_client_until_the_pool_is_replaced() -> None:
    first_pool = redis.ConnectionPool(host="127.0.0.1", port=1)
    channel = _channel(first_pool)

    client = channel._create_client()
    assert channel._create_client() is client
    assert client.connection_pool is first_pool

    channel._pool = redis.ConnectionPool(host="127.0.0.1", port=2)  # kombu reconnected
    replaced = channel._create_client()
    assert replaced is not client and replaced.connection_pool is channel._pool


def test_the_consumer_s_asynchronous_client_is_kombu_s_own() -> None:
    channel = _channel(redis.ConnectionPool(host="127.0.0.1", port=1))
    channel._async_pool = redis.ConnectionPool(host="127.0.0.1", port=3)
    asynchronous = channel._create_client(asynchronous=True)
    assert asynchronous is not channel._create_client()
    assert asynchronous.connection_pool is channel._async_pool


def test_a_detached_connection_is_a_connection_error_not_a_crash() -> None:
    # After Celery collects the connection on a Redis restart the transport is detached;
    # closing the channel then builds a pool: that must raise what Celery recovers from.
    channel = _channel(None)  # type: ignore[arg-type]
    channel.connection = types.SimpleNamespace(client=None)
    with pytest.raises(redis.ConnectionError):
        channel._create_client()


def test_both_ends_of_the_queue_use_it_for_redis_urls_only() -> None:
    from visionq.api.queue import JobQueue
    from visionq.models.settings import Settings
    from visionq.worker.celery_app import celery_config

    ours = "visionq.models.broker:Transport"
    assert transport_options("redis://127.0.0.1:6379/0") == {"broker_transport": ours}
    # rediss:// selects kombu's TLS transport by its scheme: an explicit class would drop TLS.
    assert transport_options("rediss://cache.example:6380/0") == {}

    queue = JobQueue("redis://127.0.0.1:1/0")  # no connection is made before a send
    try:
        assert queue._app.conf.broker_transport == ours
    finally:
        queue.close()
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    assert celery_config(settings)["broker_transport"] == ours
    assert "broker_transport" not in celery_config(Settings(redis_url="rediss://h:1/0"))
