--[[
  Helpers shared by the job scripts; a script pulls them in with the line `--!include common.lua`.

  Every key of a lane starts with the lane's prefix "sluice:{<tag>}:" (KEYS[1] of each script), so
  a lane lives in one Redis Cluster slot. The layout is documented in KeyLayout.swift.

  Ready order: each tenant has a sorted set of its ready jobs, scored
  class * SPAN + sequence, where class = 100 - priority (so higher priority pops first) and the
  sequence is FIFO. The lane's round-robin set `rr` holds one entry per tenant with ready jobs,
  scored class-of-its-best-job * SPAN + turn; the tenant least recently served among those with
  the best priority comes first.
]]
local SPAN = 17592186044416 -- 2^44: room for 1.7e13 sequence numbers within one priority class

local function nowMillis()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as exact decimal strings (tostring would print large doubles in exponent form).
local function fmt(n) return string.format('%.0f', n) end

local function laneKey(prefix, lane, suffix) return prefix .. 'lane:' .. lane .. ':' .. suffix end

-- Appends one transition to the lane's capped event stream.
local function emit(prefix, cap, id, lane, from, to, now, info)
  if info then
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', cap, '*',
      'job', id, 'lane', lane, 'from', from, 'to', to, 't', now, 'info', info)
  else
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', cap, '*',
      'job', id, 'lane', lane, 'from', from, 'to', to, 't', now)
  end
end

-- Re-ranks a tenant in the round robin after its ready set changed. `turn` nil keeps its turn.
local function rerankTenant(prefix, lane, tenant, turn)
  local rr = laneKey(prefix, lane, 'rr')
  local head = redis.call('ZRANGE', laneKey(prefix, lane, 'ready:' .. tenant), 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', rr, tenant)
    return
  end
  local class = math.floor(tonumber(head[2]) / SPAN)
  if not turn then
    local current = tonumber(redis.call('ZSCORE', rr, tenant) or '0')
    turn = current - math.floor(current / SPAN) * SPAN
  end
  redis.call('ZADD', rr, fmt(class * SPAN + turn), tenant)
end

-- Makes a job ready: into its tenant's ready set, and its tenant into the round robin.
local function pushReady(prefix, lane, id, tenant, priority)
  local meta = laneKey(prefix, lane, 'meta')
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local class = 100 - tonumber(priority)
  redis.call('ZADD', laneKey(prefix, lane, 'ready:' .. tenant), fmt(class * SPAN + seq), id)
  redis.call('HINCRBY', meta, 'ready', 1)
  local rr = laneKey(prefix, lane, 'rr')
  local current = redis.call('ZSCORE', rr, tenant)
  if not current then
    -- A tenant new to the round robin takes the current turn: it is served within one round.
    local turn = tonumber(redis.call('HGET', meta, 'turn') or '0')
    redis.call('ZADD', rr, fmt(class * SPAN + turn), tenant)
  else
    current = tonumber(current)
    local currentClass = math.floor(current / SPAN)
    if class < currentClass then
      redis.call('ZADD', rr, fmt(class * SPAN + (current - currentClass * SPAN)), tenant)
    end
  end
end

-- Takes a queued job out of its ready set (cancel, expire).
local function removeReady(prefix, lane, id, tenant)
  if redis.call('ZREM', laneKey(prefix, lane, 'ready:' .. tenant), id) == 1 then
    redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'ready', -1)
    rerankTenant(prefix, lane, tenant, nil)
  end
end

-- Records a terminal state: stamps it, drops lease and deadline entries, sets the result TTL,
-- and wakes anyone waiting on the job. The caller has already left every other structure.
local function finish(prefix, lane, jobKey, id, state, now, ttl)
  redis.call('HSET', jobKey, 'state', state, 'finished', now)
  redis.call('HDEL', jobKey, 'token', 'lease_until')
  redis.call('ZREM', laneKey(prefix, lane, 'deadlines'), id)
  if tonumber(ttl) > 0 then redis.call('PEXPIRE', jobKey, ttl) end
  redis.call('PUBLISH', prefix .. 'done', id)
end
