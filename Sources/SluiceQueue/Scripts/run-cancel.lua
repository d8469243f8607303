--[[
  run-cancel: cancels a pipeline run that has not ended.

  KEYS[1]  the runs' prefix (`sluice:{runs}:`)
  ARGV[1]  the run's id
  ARGV[2]  result TTL, milliseconds (0 keeps the run forever)

  Returns  {'cancelled', 'cancelled'} when cancelled now; {'finished', status} when it had already
           ended (unchanged); {'not_found', ''}.

  The run ends at once: its steps being created or running are marked cancelled, no step is
  created after this (the advancer's compare-and-set sees the version change), and an entry in
  the runs stream has the advancer cancel those steps' jobs and send the run's webhook. Steps
  never started stay pending.
]]
--!include keys.lua
--!include clock.lua
--!include runs.lua
local prefix, id, ttl = KEYS[1], ARGV[1], ARGV[2]
local runKey = prefix .. 'run:' .. id
local status = redis.call('HGET', runKey, 'status')
if not status then return {'not_found', ''} end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then return {'finished', status} end
local now = nowMillis()
local fields = redis.call('HGETALL', runKey)
for i = 1, #fields, 2 do
  local name, value = fields[i], fields[i + 1]
  if string.sub(name, 1, 2) == 's:' and (value == 'running' or value == 'creating') then
    redis.call('HSET', runKey, name, 'cancelled')
  end
end
redis.call('HSET', runKey, 'status', 'cancelled', 'finished', now, 'error', 'cancelled by request')
redis.call('ZREM', prefix .. 'active', id)
bumpRunVersion(runKey)
if tonumber(ttl) > 0 then redis.call('PEXPIRE', runKey, ttl) end
redis.call('PUBLISH', prefix .. 'done', id)
redis.call('XADD', RUN_EVENTS, 'MAXLEN', '~', RUN_EVENTS_MAX, '*', 'run', id, 'kind', 'cancelled')
return {'cancelled', 'cancelled'}
