--[[
  promote: moves delayed and retry-waiting jobs whose time has come to the ready set.

  KEYS[1]  the lane's key prefix
  ARGV[1]  event stream cap
  ARGV[2]  lane name
  ARGV[3]  the most jobs to move in this call

  Returns  the number of jobs made ready. Safe to run from many processes at once: a job is
           moved only while it is still delayed or retry_wait, inside this atomic script.
]]
--!include keys.lua
--!include clock.lua
--!include ready.lua
--!include collect.lua
--!include transition.lua
local prefix, cap, lane, limit = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = nowMillis()
local delayed = laneKey(prefix, lane, 'delayed')
local ids = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', delayed, id)
  local jobKey = jobKey(id)
  local f = redis.call('HMGET', jobKey, 'state', 'tenant', 'prio', 'mode')
  if f[1] == 'delayed' or f[1] == 'retry_wait' then
    redis.call('HSET', jobKey, 'state', 'queued')
    -- A batch job's not_before reached: collected for its provider batch. (A retry is live: the
    -- batch settle script takes `mode` away from a job it sends back.)
    if f[4] == 'batch' then collect(prefix, lane, id, now) else pushReady(prefix, lane, id, f[2], f[3]) end
    -- (The timeline says why; the event does not.)
    appendLog(jobKey, now, 'queued', f[1] == 'retry_wait' and 'retry due' or 'not_before reached')
    emit(prefix, cap, id, lane, f[1], 'queued', now)
    moved = moved + 1
  end
end
return moved
