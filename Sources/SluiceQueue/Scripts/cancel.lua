--[[
  cancel: cancels a job.

  KEYS[1]  the job's home prefix (from its id)
  ARGV[1]  event stream cap
  ARGV[2]  job id
  ARGV[3]  result TTL, milliseconds

  Returns  {outcome, state}, the outcome one of: 'cancelled' (it was queued, delayed or waiting
           to retry, or in a provider batch, and is cancelled now; a queued job's id stays in its
           list as a tombstone); 'cancel_requested' (it is leased: the holder's next
           complete or fail records 'cancelled', and its next heartbeat tells it); 'finished' (it
           had already reached the terminal `state`, unchanged); 'not_found'.
]]
--!include keys.lua
--!include clock.lua
--!include ready.lua
--!include collect.lua
--!include transition.lua
local prefix, cap, id, ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local jobKey = jobKey(id)
local f = redis.call('HMGET', jobKey, 'state', 'tenant', 'lane', 'deadline', 'at')
local state, tenant, lane = f[1], f[2], f[3]
if not state then return {'not_found', ''} end
prefix = lanePrefix(prefix, f[5])
local now = nowMillis()
if state == 'queued' then
  unqueue(prefix, lane, id)
elseif state == 'delayed' or state == 'retry_wait' then
  redis.call('ZREM', laneKey(prefix, lane, 'delayed'), id)
elseif state == 'leased' and redis.call('HEXISTS', jobKey, 'brec') == 1 then
  -- In a provider batch (pbatch-take.lua): cancelled now, out of the record; its line is
  -- ignored when the batch ends (pbatch-settle.lua moves only the record's jobs).
  redis.call('HDEL', jobKey, 'brec')
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'batched', -1)
elseif state == 'leased' then
  if redis.call('HSETNX', jobKey, 'cancel', '1') == 1 then
    transition{prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = 'leased', to = 'leased',
      now = now, info = 'cancel requested'}
  end
  return {'cancel_requested', 'leased'}
else
  return {'finished', state}
end
finishJob{prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = state, to = 'cancelled', now = now,
  ttl = ttl, deadline = f[4]}
return {'cancelled', 'cancelled'}
