--[[
  The ready order of a lane, and making jobs ready.

  A job's priority class is 100 - priority (0 is the most urgent). Each tenant has one FIFO list
  per class it has ready jobs in (`ready:<tenant>:<class>`) and a sorted set of those classes
  (`classes:<tenant>`). The lane's round robin `rr` holds one entry per tenant with ready jobs,
  scored best-class * SPAN + turn: the best priority first, and among equals the tenant served
  least recently.

  Tombstones. Cancelling or expiring a queued job changes its state and the ready count, but
  leaves its id in the list (LREM is O(n)); a lease discards ids whose job is no longer queued.
]]
--!include clock.lua
--!include lane.lua
local SPAN = 17592186044416 -- 2^44: room for 1.7e13 turns within one priority class

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

-- Takes a queued job out of the ready count; its id stays in its list as a tombstone.
local function tombstone(prefix, lane)
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'ready', -1)
end
