"""The Lua scripts of the shared rate limiter (worker/ratelimit.py): each runs atomically in
Redis, so every worker process sees one consistent log per quota entry."""

from __future__ import annotations

from visionq.worker.quota_learn import SCALE_LUA

__all__ = ["RELEASE_LUA", "RESTAMP_LUA", "SLIDING_LOG_LUA"]

# KEYS[1] log (sorted set), KEYS[2] token sum, KEYS[3] learned factors (worker/quota_learn.py).
# ARGV: window ms (margin included), rpm (-1 = none), tpm (-1 = none), tokens, member, ttl ms,
# then the kinds the count and the amount limit ('' = none), the learning window ms (0 = not
# learning), the factors' increase and the quiet windows before it (SCALE_LUA), the
# smoothing window ms (0 = none) and the burst: how many times the average rate it admits,
# now ms ('' = Redis TIME).
# Returns 0 when admitted (and recorded), else the wait in ms (nothing recorded).
#
# An entry scored s counts while now - s <= window, so it has surely left at s + window + 1:
# the millisecond truncation of TIME can then only make us wait longer, never admit early.
SLIDING_LOG_LUA = (
    """
-- TIME followed by writes needs effects replication: the default from Redis 5 (the only
-- mode from 7); older servers must be asked for it.
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[14] ~= '' then now = tonumber(ARGV[14]) else  -- a test's clock
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local log, sum = KEYS[1], KEYS[2]
"""
    + SCALE_LUA
    + """
rpm = scaled(rpm, ARGV[7])
tpm = scaled(tpm, ARGV[8])

local function tokens_of(member)
  return tonumber(string.match(member, '^(%d+):'))
end

-- Only the expired members are read, so a call costs O(expired + log n).
local cutoff = '(' .. string.format('%.0f', now - window)
local expired = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)
local freed = 0
if #expired > 0 then
  for _, member in ipairs(expired) do freed = freed + tokens_of(member) end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
end
local count = redis.call('ZCARD', log)
local used = 0
if count == 0 then
  -- Resets the sum whenever the log empties, so it cannot drift for ever.
  redis.call('DEL', sum)
elseif freed > 0 then
  used = redis.call('DECRBY', sum, freed)
else
  used = tonumber(redis.call('GET', sum)) or 0
end

local function leaves_at(score)
  return tonumber(score) + window + 1 - now
end

local wait = 0
if rpm >= 0 and count >= rpm then
  -- The (count - rpm + 1) oldest must leave to make room for one more.
  local idx = count - rpm
  local entry = redis.call('ZRANGE', log, idx, idx, 'WITHSCORES')
  wait = leaves_at(entry[2])
end

if tpm >= 0 and tokens > 0 and used + tokens > tpm then
  local excess = used + tokens - tpm
  -- Larger than the whole quota: it can only ever run with no other tokens in the window.
  if tokens > tpm then excess = used end
  if excess > 0 then
    -- Walk from the oldest until enough tokens would have left; pages keep replies small.
    local freeing, start, page_size, found = 0, 0, 64, nil
    while not found do
      local page = redis.call('ZRANGE', log, start, start + page_size - 1, 'WITHSCORES')
      if #page == 0 then break end
      for i = 1, #page, 2 do
        freeing = freeing + tokens_of(page[i])
        if freeing >= excess then
          found = page[i + 1]
          break
        end
      end
      start = start + page_size
    end
    if not found then
      -- The sum exceeds the log's members (it drifted): once all leave, the sum is reset.
      found = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2]
    end
    wait = math.max(wait, leaves_at(found))
  end
end

-- Smoothing: in the last ARGV[12] ms at most ARGV[13] x the window's average rate, so a
-- window's quota is not admitted in one burst at its start (a burst's calls reach Gemini
-- spread over more than the margin, and the next window's first ones overlap them there).
local short = tonumber(ARGV[12])
if short > 0 and short < window then
  local share = tonumber(ARGV[13]) * short / window
  local since = '(' .. string.format('%.0f', now - short)
  if rpm > 0 and math.ceil(rpm * share) < rpm then
    local cap = math.max(1, math.ceil(rpm * share))
    local recent = redis.call('ZCOUNT', log, since, '+inf')
    if recent >= cap then
      local entry = redis.call('ZRANGEBYSCORE', log, since, '+inf', 'WITHSCORES',
        'LIMIT', recent - cap, 1)
      wait = math.max(wait, tonumber(entry[2]) + short + 1 - now)
    end
  end
  if tpm > 0 and tokens > 0 and math.ceil(tpm * share) < tpm then
    local cap = math.max(1, math.ceil(tpm * share))
    local recent = redis.call('ZRANGEBYSCORE', log, since, '+inf', 'WITHSCORES')
    local recent_used = 0
    for i = 1, #recent, 2 do recent_used = recent_used + tokens_of(recent[i]) end
    local excess = recent_used + tokens - cap
    -- Larger than the cap: it runs alone in its short window.
    if tokens > cap then excess = recent_used end
    local freeing = 0
    for i = 1, #recent, 2 do
      if excess <= 0 then break end
      freeing = freeing + tokens_of(recent[i])
      if freeing >= excess then
        wait = math.max(wait, tonumber(recent[i + 1]) + short + 1 - now)
        break
      end
    end
  end
end

if wait > 0 then return wait end
redis.call('ZADD', log, now, ARGV[5])
redis.call('INCRBY', sum, tokens)
redis.call('PEXPIRE', log, ARGV[6])
redis.call('PEXPIRE', sum, ARGV[6])
return 0
"""
)

# KEYS[1] log, KEYS[2] sum; ARGV[1] member, ARGV[2] its amount. Takes an admission back.
RELEASE_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] log, KEYS[2] sum; ARGV[1] member, ARGV[2] ttl ms, ARGV[3] window ms (margin
# included). Moves an admission's stamp to now (its call is about to be sent, later than it
# was admitted); 0 when the member already left its window (it then counts no more: moving
# it in would be an admission nobody checked).
#
# Never more than the limits in any window: the member is still in the window ending now,
# so moving it later changes no count of that window; every later admission is checked
# against the log with the member at its new stamp. It frees nothing either: no waiter is
# admitted in its place (the sum is unchanged).
RESTAMP_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not score or now - tonumber(score) > tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
