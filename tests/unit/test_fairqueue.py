"""models/fairqueue.py on a real Redis: stride order by weight, priority within a tenant,
a newcomer behind a deep backlog, no credit banked while idle, idempotent pushes."""

from __future__ import annotations

from collections import Counter

import pytest
import redis

from visionq.models.fairqueue import FairQueue, QueuedJob
from visionq.models.weights import parse_weights


def jobs(tenant: str, count: int, priority: int = 5, start: int = 0) -> list[QueuedJob]:
    return [QueuedJob(f"{tenant}-{n}", tenant, priority) for n in range(start, start + count)]


def tenant_of(job_id: str | None) -> str:
    assert job_id is not None
    return job_id.split("-")[0]


def test_two_to_one_weights_give_two_to_one_starts(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={"a": 2.0})
    fair.push(jobs("a", 300))
    fair.push(jobs("b", 300))
    starts = Counter(tenant_of(fair.pop()) for _ in range(200))
    assert abs(starts["a"] - 2 * starts["b"]) <= 2  # 133/67 or 134/66: within one start


def test_equal_weights_alternate(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    fair.push(jobs("a", 50))
    fair.push(jobs("b", 50))
    order = [tenant_of(fair.pop()) for _ in range(20)]
    assert Counter(order[:20]) == {"a": 10, "b": 10}
    assert all(order[i] != order[i + 1] for i in range(19))


def test_priority_orders_within_a_tenant_then_arrival(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    fair.push(jobs("a", 3, priority=1) + jobs("a", 2, priority=9, start=3))
    fair.push(jobs("a", 2, priority=5, start=5))
    assert [fair.pop() for _ in range(8)] == [
        "a-3", "a-4", "a-5", "a-6", "a-0", "a-1", "a-2", None,
    ]  # fmt: skip


def test_a_high_priority_does_not_overtake_another_tenants_share(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    fair.push(jobs("a", 10, priority=0))
    fair.push(jobs("b", 10, priority=9))
    assert Counter(tenant_of(fair.pop()) for _ in range(10)) == {"a": 5, "b": 5}


def test_a_new_tenant_starts_next_behind_fifty_thousand(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    pushed = fair.push(jobs("a", 50_000))
    assert pushed == 50_000 and fair.size() == 50_000
    for _ in range(100):  # the backlog is under way
        assert tenant_of(fair.pop()) == "a"
    fair.push(jobs("b", 5))
    next_two = [tenant_of(fair.pop()) for _ in range(2)]
    assert "b" in next_two
    # and B's five are all started within its fair half of the next ten
    rest = [tenant_of(fair.pop()) for _ in range(8)]
    assert (next_two + rest).count("b") == 5


def test_an_idle_tenant_banks_no_credit(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    fair.push(jobs("b", 1))
    assert fair.pop() == "b-0"  # b leaves the schedule
    fair.push(jobs("a", 1000))
    for _ in range(500):
        fair.pop()
    fair.push(jobs("b", 20, start=1))
    order = [tenant_of(fair.pop()) for _ in range(20)]
    # b does not get 500 starts in a row for the time it was idle: it shares half and half
    assert Counter(order) == {"a": 10, "b": 10}


def test_pushing_a_waiting_job_again_changes_nothing(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    assert fair.push(jobs("a", 3)) == 3
    assert fair.push(jobs("a", 3)) == 0
    assert fair.size() == 3
    assert fair.pop() == "a-0"
    assert fair.push(jobs("a", 1)) == 1  # popped: pushed again (the sweeper's recovery)
    assert fair.size() == 3


def test_remove_and_size(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    fair.push(jobs("a", 2) + jobs("b", 1))
    fair.remove("b-0", "b")
    fair.remove("b-0", "b")  # twice: counted once
    assert fair.size() == 2
    assert [fair.pop(), fair.pop(), fair.pop()] == ["a-0", "a-1", None]
    assert fair.size() == 0


def test_remove_many_counts_only_jobs_waiting(client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    fair.push(jobs("a", 700) + jobs("b", 2))  # more than one chunk of a's
    gone = [(f"a-{n}", "a") for n in range(650)] + [("b-1", "b"), ("b-9", "b")]
    assert fair.remove_many(gone) == 651
    assert fair.size() == 51
    assert fair.remove_many(gone) == 0 and fair.size() == 51


def test_a_priority_out_of_range_is_refused(client: redis.Redis) -> None:
    with pytest.raises(ValueError, match=r"0\.\.9"):
        FairQueue(client, weights={}).push([QueuedJob("x", "a", 10)])


def test_weights_setting_is_checked() -> None:
    assert parse_weights('{"a": 2, "b": 0.5}') == {"a": 2.0, "b": 0.5}
    assert parse_weights("") == {}
    assert parse_weights('{"a": 1000}') == {"a": 1000.0}
    for bad in ('{"a": 0}', '{"a": "x"}', "[1]", "{", '{"a": Infinity}', '{"a": 1e400}',
                '{"a": 1001}', '{"a": NaN}'):  # fmt: skip
        with pytest.raises(ValueError, match="VISIONQ_TENANT_WEIGHTS"):
            parse_weights(bad)


def test_a_weight_stored_as_infinity_counts_as_one(client: redis.Redis) -> None:
    # Defensive Lua: a weight in Redis that is not a finite number > 0 (written by an old
    # process, or by hand) weighs 1, instead of giving that tenant every start.
    fair = FairQueue(client, weights={})
    fair.push(jobs("a", 5) + jobs("b", 5))
    for bad in ("inf", "0", "nan", "x"):
        client.hset("visionq:{fair}:weight", "a", bad)
    order = [tenant_of(fair.pop()) for _ in range(4)]
    assert Counter(order) == {"a": 2, "b": 2}
