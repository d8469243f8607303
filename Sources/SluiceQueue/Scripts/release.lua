--[[
  release: gives a leased job back without using up its attempt: the provider said 429, or the
  worker is shutting down. (A failed call is `fail`, which does count.)

  KEYS[1]  the job's home prefix (from its id)
  ARGV[1]  event stream cap
  ARGV[2]  job id
  ARGV[3]  lease token
  ARGV[4]  delay, milliseconds: 0 puts it back at the front of its list at once; more makes it
           wait (retry_wait) that long
  ARGV[5]  why, for the timeline
  ARGV[6]  result TTL, milliseconds (for a job whose cancel was asked for, which ends here)

  Returns  {1, new state} or {0, current state} when the token is not the current one.
]]
--!include keys.lua
--!include clock.lua
--!include ready.lua
--!include leases.lua
--!include transition.lua
local prefix, cap, id, token = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local delay, why, ttl = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local jobKey = jobKey(id)
local f = redis.call('HMGET', jobKey, 'state', 'token', 'lane', 'tenant', 'prio', 'attempts', 'deadline', 'cancel', 'at')
if f[1] ~= 'leased' or f[2] ~= token then return {0, f[1] or ''} end
prefix = lanePrefix(prefix, f[9])
local lane, now = f[3], nowMillis()
release(prefix, lane, id, token)
local change = {prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = 'leased', now = now,
  info = why, ttl = ttl, deadline = f[7]}
if f[8] == '1' then
  change.to = 'cancelled'
  finishJob(change)
  return {1, 'cancelled'}
end
redis.call('HSET', jobKey, 'attempts', math.max(0, tonumber(f[6] or '1') - 1))
redis.call('HDEL', jobKey, 'token')
local state
if delay > 0 then
  state = 'retry_wait'
  redis.call('HSET', jobKey, 'state', state)
  redis.call('ZADD', laneKey(prefix, lane, 'delayed'), now + delay, id)
else
  state = 'queued'
  redis.call('HSET', jobKey, 'state', state)
  pushReady(prefix, lane, id, f[4], f[5], true)
end
if f[7] then redis.call('ZADD', laneKey(prefix, lane, 'deadlines'), f[7], id) end
change.to = state
transition(change)
return {1, state}
