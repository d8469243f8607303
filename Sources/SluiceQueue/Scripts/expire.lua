--[[
  expire: moves jobs past their deadline that have not started (queued, delayed, or waiting to
  retry) to 'expired'. A queued job's id stays in its list as a tombstone that a lease discards. A leased job is left to finish; its deadline applies again if it is retried.

  KEYS[1]  the lane's key prefix
  ARGV[1]  event stream cap
  ARGV[2]  lane name
  ARGV[3]  the most jobs to handle in this call
  ARGV[4]  result TTL, milliseconds

  Returns  the number of jobs expired. Safe to run from many processes at once.
]]
--!include keys.lua
--!include clock.lua
--!include ready.lua
--!include collect.lua
--!include transition.lua
local prefix, cap, lane, limit, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = nowMillis()
local deadlines = laneKey(prefix, lane, 'deadlines')
local ids = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, limit)
local expired = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', deadlines, id)
  local jobKey = jobKey(id)
  local f = redis.call('HMGET', jobKey, 'state', 'tenant', 'lane')
  local state = f[1]
  -- (A job moved to a fallback lane is that lane's to expire: it has a deadline entry there.)
  if f[3] == lane and (state == 'queued' or state == 'delayed' or state == 'retry_wait') then
    if state == 'queued' then
      unqueue(prefix, lane, id)
    else
      redis.call('ZREM', laneKey(prefix, lane, 'delayed'), id)
    end
    -- (Its deadline entry is gone already.)
    finishJob{prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = state, to = 'expired', now = now,
      info = 'deadline passed', ttl = ttl}
    expired = expired + 1
  end
end
return expired
