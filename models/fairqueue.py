"""Fair share between tenants, decided when a worker is free (issue 23, decisions 4 and 8).

Every queued job waits in its tenant's sorted set, ordered by priority (9 first) and then by
arrival. A worker slot that frees up takes a ``run_next`` token from Celery
(worker/tasks.py), and the token pops the job fair share picks: stride scheduling over the
tenants that have jobs waiting. Each such tenant has a *pass*; the lowest pass goes next,
and its pass grows by ``1 / weight`` per job started. So two tenants of equal weight start
jobs alternately however many each has waiting, and a tenant of weight 2 starts two for one.
A tenant that had nothing waiting comes back at the lowest pass of those waiting (it banks
no credit while idle, and is not put behind the others' backlog): its first job is the next
one started. Each pop is O(log n) whatever the backlog's depth.

Keys, all under one hash tag (``{fair}``) so that they live in one Redis Cluster slot:
``q:<tenant>`` (zset job id -> (9 - priority) * 2**40 + arrival counter), ``active`` (zset
tenant -> pass, tenants with jobs waiting), ``pass`` (hash tenant -> pass when it left
``active``), ``vtime`` (pass of the last start), ``seq`` (arrival counter), ``weight`` (hash
tenant -> weight), ``size`` (jobs waiting in all tenants' sets).

Redis Cluster: the pop script reads and writes ``q:<tenant>`` keys it finds in ``active``,
which it cannot declare in KEYS beforehand. That breaks Cluster's declared-keys rule; it
works because every key shares the ``{fair}`` hash tag and so the slot of the declared keys
(standalone Redis has no such rule). A known, documented deviation.

What Redis holds here is a schedule, not the truth: the database's job rows are. An entry
lost with Redis (or popped by a worker killed before it sent the job on) is pushed again by
the sweeper (worker/sweeper.py). Cancelling a queued job or batch removes its entries after
the commit (best effort: an entry left behind, Redis being down then, is popped and then
skipped by the claim, models/leases.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from visionq.models.weights import weight_of

PREFIX = "visionq:{fair}"
# Pushes go in chunks: one script call per chunk keeps each call short for Redis.
PUSH_CHUNK = 500
MAX_PRIORITY = 9

# KEYS: q:<tenant>, active, pass, vtime, seq, weight, size
# ARGV: tenant, weight, then job id and priority for each job. Returns how many were new.
_PUSH_LUA = """
local tenant = ARGV[1]
local new = 0
for i = 3, #ARGV, 2 do
  -- A job already waiting keeps its place, and costs no arrival number (the sweeper
  -- checks waiting jobs again this way).
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    local seq = redis.call('INCR', KEYS[5])
    local score = (9 - tonumber(ARGV[i + 1])) * 1099511627776 + seq
    new = new + redis.call('ZADD', KEYS[1], string.format('%.0f', score), ARGV[i])
  end
end
if new > 0 then redis.call('INCRBY', KEYS[7], new) end
redis.call('HSET', KEYS[6], tenant, ARGV[2])
if redis.call('ZCARD', KEYS[1]) > 0 and not redis.call('ZSCORE', KEYS[2], tenant) then
  local start = tonumber(redis.call('HGET', KEYS[3], tenant) or '0')
  local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local now = tonumber(head[2] or redis.call('GET', KEYS[4]) or '0')
  if now > start then start = now end
  redis.call('ZADD', KEYS[2], string.format('%.17g', start), tenant)
end
return new
"""

# KEYS: active, pass, vtime, weight, size; ARGV: the tenant queues' key prefix.
# Returns the job id started, or nil when no job waits.
_POP_LUA = """
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #head == 0 then return false end
  local tenant = head[1]
  local queue = ARGV[1] .. tenant
  local got = redis.call('ZPOPMIN', queue)
  if #got == 0 then
    redis.call('ZREM', KEYS[1], tenant)
  else
    redis.call('SET', KEYS[3], head[2])
    -- Defensive: a weight that is not a finite number > 0 counts as 1 (else inf would
    -- give that tenant every start, and 0 or nan a pass of inf or nan).
    local weight = tonumber(redis.call('HGET', KEYS[4], tenant) or '1')
    if not weight or weight ~= weight or weight <= 0 or weight == math.huge then weight = 1 end
    local next_pass = string.format('%.17g', tonumber(head[2]) + 1 / weight)
    if redis.call('ZCARD', queue) == 0 then
      redis.call('ZREM', KEYS[1], tenant)
      redis.call('HSET', KEYS[2], tenant, next_pass)
    else
      redis.call('ZADD', KEYS[1], next_pass, tenant)
    end
    redis.call('DECR', KEYS[5])
    return got[1]
  end
end
"""

# KEYS: q:<tenant>, size; ARGV: job ids (at most PUSH_CHUNK). Returns how many were waiting.
_REMOVE_LUA = """
local removed = redis.call('ZREM', KEYS[1], unpack(ARGV))
if removed > 0 then redis.call('DECRBY', KEYS[2], removed) end
return removed
"""


@dataclass(frozen=True)
class QueuedJob:
    """A job to schedule: its id, its tenant, and its priority (0..9, 9 first)."""

    job_id: str
    tenant: str
    priority: int


class FairQueue:
    """The per-tenant waiting sets in Redis and their stride scheduler; see the module
    docstring. Thread-safe (each call is one script on a thread-safe client)."""

    def __init__(
        self, redis_client: redis.Redis, *, weights: Mapping[str, float], prefix: str = PREFIX
    ) -> None:
        self._redis = redis_client
        self._weights = dict(weights)
        self._prefix = prefix
        self._push = redis_client.register_script(_PUSH_LUA)
        self._pop = redis_client.register_script(_POP_LUA)
        self._remove = redis_client.register_script(_REMOVE_LUA)

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def _queue(self, tenant: str) -> str:
        return f"{self._prefix}:q:{tenant}"

    def push(self, jobs: Sequence[QueuedJob]) -> int:
        """Add the jobs to their tenants' sets; returns how many were new (a job already
        waiting keeps its place)."""
        by_tenant: dict[str, list[QueuedJob]] = {}
        for job in jobs:
            if not 0 <= job.priority <= MAX_PRIORITY:
                raise ValueError(f"priority must be 0..9, got {job.priority}")
            by_tenant.setdefault(job.tenant, []).append(job)
        new = 0
        for tenant, group in by_tenant.items():
            keys = [self._queue(tenant)] + [
                self._key(name) for name in ("active", "pass", "vtime", "seq", "weight", "size")
            ]
            weight = weight_of(self._weights, tenant)
            for start in range(0, len(group), PUSH_CHUNK):
                args: list[Any] = [tenant, repr(weight)]
                for job in group[start : start + PUSH_CHUNK]:
                    args += [job.job_id, job.priority]
                new += int(self._push(keys=keys, args=args))
        return new

    def pop(self) -> str | None:
        """The id of the job to start next (removed from its set); None when none waits."""
        keys = [self._key(name) for name in ("active", "pass", "vtime", "weight", "size")]
        got = self._pop(keys=keys, args=[f"{self._prefix}:q:"])
        if got is None:
            return None
        return got.decode() if isinstance(got, bytes) else str(got)

    def remove(self, job_id: str, tenant: str) -> None:
        """Take a waiting job out (its tenant leaves the schedule at its next turn)."""
        self.remove_many([(job_id, tenant)])

    def remove_many(self, jobs: Sequence[tuple[str, str]]) -> int:
        """Take waiting jobs out, given as (job id, tenant) (a cancelled batch); returns how
        many were waiting. Jobs not waiting (running, popped) are passed over."""
        by_tenant: dict[str, list[str]] = {}
        for job_id, tenant in jobs:
            by_tenant.setdefault(tenant, []).append(job_id)
        removed = 0
        for tenant, ids in by_tenant.items():
            keys = [self._queue(tenant), self._key("size")]
            for start in range(0, len(ids), PUSH_CHUNK):
                removed += int(self._remove(keys=keys, args=ids[start : start + PUSH_CHUNK]))
        return removed

    def size(self) -> int:
        """How many jobs wait, all tenants together."""
        value = self._redis.get(self._key("size"))
        return int(value) if value is not None else 0
