--[[
  Helpers shared by the job scripts; a script pulls them in with the line `--!include common.lua`,
  which also brings keys.lua (the key names, filled in from KeyLayout.swift, and jobKey) and
  transition.lua (the timeline, the event stream, and ending a job: transition{} and
  finishJob{}).

  Every key of a lane starts with the lane's prefix "<root>{<tag>}:" (KEYS[1] of each script), so
  a lane lives in one Redis Cluster slot. The layout is KeyLayout.swift's.

  Ready order. A job's priority class is 100 - priority (0 is the most urgent). Each tenant has
  one FIFO list per class it has ready jobs in (`ready:<tenant>:<class>`) and a sorted set of
  those classes (`classes:<tenant>`). The lane's round robin `rr` holds one entry per tenant with
  ready jobs, scored best-class * SPAN + turn: the best priority first, and among equals the
  tenant served least recently.

  Tombstones. Cancelling or expiring a queued job changes its state and the ready count, but
  leaves its id in the list (LREM is O(n)); a lease discards ids whose job is no longer queued.
]]
--!include keys.lua
local SPAN = 17592186044416 -- 2^44: room for 1.7e13 turns within one priority class

local function nowMillis()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as exact decimal strings (tostring would print large doubles in exponent form).
local function fmt(n) return string.format('%.0f', n) end

local function laneKey(prefix, lane, suffix) return prefix .. 'lane:' .. lane .. ':' .. suffix end
local function readyList(prefix, lane, tenant, class) return laneKey(prefix, lane, 'ready:' .. tenant .. ':' .. class) end
local function classesKey(prefix, lane, tenant) return laneKey(prefix, lane, 'classes:' .. tenant) end

-- (Here, so that every helper below may record transitions: it needs laneKey and fmt.)
--!include transition.lua

-- Wakes the lane's idle workers (they block on BZPOPMIN of its `marker`, as BullMQ's do): called
-- wherever a job becomes ready. One member, so the marker never grows; a stale one costs a
-- worker one empty lease.
local function signalReady(prefix, lane) redis.call('ZADD', laneKey(prefix, lane, 'marker'), 0, '0') end

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
