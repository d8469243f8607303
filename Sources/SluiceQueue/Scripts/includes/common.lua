--[[
  Helpers shared by the job scripts; a script pulls them in with the line `--!include common.lua`.

  Every key of a lane starts with the lane's prefix "sluice:{<tag>}:" (KEYS[1] of each script), so
  a lane lives in one Redis Cluster slot. The layout is documented in KeyLayout.swift.

  Ready order. A job's priority class is 100 - priority (0 is the most urgent). Each tenant has
  one FIFO list per class it has ready jobs in (`ready:<tenant>:<class>`) and a sorted set of
  those classes (`classes:<tenant>`). The lane's round robin `rr` holds one entry per tenant with
  ready jobs, scored best-class * SPAN + turn: the best priority first, and among equals the
  tenant served least recently.

  Tombstones. Cancelling or expiring a queued job changes its state and the ready count, but
  leaves its id in the list (LREM is O(n)); a lease discards ids whose job is no longer queued.
]]
local SPAN = 17592186044416 -- 2^44: room for 1.7e13 turns within one priority class
-- Per API key, its jobs not yet finished (for caps). Outside every lane's slot: on a Redis
-- Cluster this one hash would have to move (see KeyLayout.swift).
local OPEN_JOBS = 'sluice:keys:open'

local function nowMillis()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as exact decimal strings (tostring would print large doubles in exponent form).
local function fmt(n) return string.format('%.0f', n) end

-- A job's hash, found from its id alone: the id carries the tag of the lane that created it (its
-- home). A job moved to a fallback lane keeps its id and its hash at home; its `at` field holds
-- the tag of the lane it is in now, whose structures (lists, sets, events) it uses from then on.
local function jobKey(id) return 'sluice:{' .. string.sub(id, 5, 12) .. '}:job:' .. id end
-- The key prefix of the lane a job is in: its home's, unless it was moved (`at`).
local function lanePrefix(home, at)
  if at and at ~= '' then return 'sluice:{' .. at .. '}:' end
  return home
end

local function laneKey(prefix, lane, suffix) return prefix .. 'lane:' .. lane .. ':' .. suffix end
local function readyList(prefix, lane, tenant, class) return laneKey(prefix, lane, 'ready:' .. tenant .. ':' .. class) end
local function classesKey(prefix, lane, tenant) return laneKey(prefix, lane, 'classes:' .. tenant) end

-- Wakes the lane's idle workers (they block on BZPOPMIN of its `marker`, as BullMQ's do): called
-- wherever a job becomes ready. One member, so the marker never grows; a stale one costs a
-- worker one empty lease.
local function signalReady(prefix, lane) redis.call('ZADD', laneKey(prefix, lane, 'marker'), 0, '0') end

-- Appends one transition of one or more jobs (ids joined by commas) to the lane's capped
-- event stream: one entry per script call and transition, not one per job. It also counts the
-- transition in the lane's meta hash (the autoscaler's and /metrics' signals, read without
-- scanning): `n:<state>` jobs that entered each state, `n:arrived` jobs created, `n:served`
-- calls that ended (left `leased`).
local function emit(prefix, cap, ids, lane, from, to, now, info)
  local _, commas = string.gsub(ids, ',', '')
  local meta = prefix .. 'lane:' .. lane .. ':meta'
  if from ~= to then redis.call('HINCRBY', meta, 'n:' .. to, commas + 1) end
  if from == '' then redis.call('HINCRBY', meta, 'n:arrived', commas + 1) end
  if from == 'leased' and to ~= 'leased' then redis.call('HINCRBY', meta, 'n:served', commas + 1) end
  if info then
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', cap, '*',
      'jobs', ids, 'lane', lane, 'from', from, 'to', to, 't', now, 'info', info)
  else
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', cap, '*',
      'jobs', ids, 'lane', lane, 'from', from, 'to', to, 't', now)
  end
end

-- One line of a job's timeline (its hash's `log` field): "<ms> <state>[ <info>]\n". The job's
-- creation is not logged: its `created` field is the timeline's first entry.
local function logLine(now, state, info)
  if not info or info == '' then return now .. ' ' .. state .. '\n' end
  local clean = string.gsub(string.sub(info, 1, 300), '[\r\n]', ' ')
  return now .. ' ' .. state .. ' ' .. clean .. '\n'
end

-- Appends one line to a job's timeline.
local function appendLog(jobKey, now, state, info)
  redis.call('HSET', jobKey, 'log', (redis.call('HGET', jobKey, 'log') or '') .. logLine(fmt(now), state, info))
end

-- Records that `tenant` now has ready jobs of `class`: the class set, and the tenant's place in
-- the round robin (a newcomer takes the current turn, so it is served within one round).
local function noteReady(prefix, lane, tenant, class)
  redis.call('ZADD', classesKey(prefix, lane, tenant), class, class)
  signalReady(prefix, lane)
  local rr = laneKey(prefix, lane, 'rr')
  local current = redis.call('ZSCORE', rr, tenant)
  if not current then
    local turn = tonumber(redis.call('HGET', laneKey(prefix, lane, 'meta'), 'turn') or '0')
    redis.call('ZADD', rr, fmt(class * SPAN + turn), tenant)
  else
    current = tonumber(current)
    local currentClass = math.floor(current / SPAN)
    if class < currentClass then
      redis.call('ZADD', rr, fmt(class * SPAN + (current - currentClass * SPAN)), tenant)
    end
  end
end

-- Makes one job ready: at the back of its list, or at the front (`front`) for a job that had
-- already reached the head once (a lost lease).
local function pushReady(prefix, lane, id, tenant, priority, front)
  local class = 100 - tonumber(priority or '0')
  redis.call(front and 'LPUSH' or 'RPUSH', readyList(prefix, lane, tenant, class), id)
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'ready', 1)
  noteReady(prefix, lane, tenant, class)
end

-- Records a terminal state: stamps it (with one extra field, such as the result, when given),
-- drops the deadline entry, sets the result TTL, and wakes anyone waiting on the job. The
-- caller has already taken the job out of every other structure (or left a tombstone). The
-- stale lease token may stay in the hash: every holder operation checks the state first.
local function finish(prefix, lane, jobKey, id, state, now, ttl, deadline, field, value)
  local submitter = redis.call('HGET', jobKey, 'key')
  if submitter then redis.call('HINCRBY', OPEN_JOBS, submitter, -1) end
  if field then
    redis.call('HSET', jobKey, 'state', state, 'finished', now, field, value)
  else
    redis.call('HSET', jobKey, 'state', state, 'finished', now)
  end
  if deadline then redis.call('ZREM', laneKey(prefix, lane, 'deadlines'), id) end
  if tonumber(ttl) > 0 then redis.call('PEXPIRE', jobKey, ttl) end
  redis.call('PUBLISH', prefix .. 'done', id)
end

-- Leases are kept per lease call: the call's group id is the first part of each of its tokens
-- ("<group>.<k>"), `leased` scores each group by its deadline, and `lease:<group>` holds the
-- jobs it still holds. One ZADD per call instead of one per job.
local function leaseGroup(token) return string.match(token, '^(%d+)%.') end
local function groupKey(prefix, lane, group) return laneKey(prefix, lane, 'lease:' .. group) end

-- Releases a job from its lease group; a group left empty leaves the leased set.
local function release(prefix, lane, id, token)
  local group = leaseGroup(token)
  local key = groupKey(prefix, lane, group)
  redis.call('SREM', key, id)
  if redis.call('EXISTS', key) == 0 then redis.call('ZREM', laneKey(prefix, lane, 'leased'), group) end
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'leased', -1)
end

-- Takes a queued job out of the ready count; its id stays in its list as a tombstone.
local function tombstone(prefix, lane)
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'ready', -1)
end
