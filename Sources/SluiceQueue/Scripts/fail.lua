--[[
  fail: records a failed attempt of a leased job, compare-and-set on the lease token.

  KEYS[1]  the job's home prefix (from its id)
  ARGV[1]  event stream cap
  ARGV[2]  job id
  ARGV[3]  lease token
  ARGV[4]  error message
  ARGV[5]  retryable: '1' or '0'
  ARGV[6]  backoff before the next attempt, milliseconds (from the retry policy)
  ARGV[7]  result TTL, milliseconds

  Returns  {1, new state}: 'retry_wait' (back in the delayed set for the backoff), 'dead'
           (retryable, but the attempts are used up), 'failed' (not retryable), or 'cancelled'
           (a cancel was asked for during the lease);
           {0, current state ('' if unknown)} when the token is not the current one.
]]
--!include keys.lua
--!include clock.lua
--!include leases.lua
--!include transition.lua
local prefix, cap, id, token, err = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local retryable, backoff, ttl = ARGV[5] == '1', tonumber(ARGV[6]), ARGV[7]
local jobKey = jobKey(id)
local f = redis.call('HMGET', jobKey, 'state', 'token', 'cancel', 'lane', 'attempts', 'max_attempts', 'deadline', 'at')
if f[1] ~= 'leased' or f[2] ~= token then return {0, f[1] or ''} end
prefix = lanePrefix(prefix, f[8])
local lane, now = f[4], nowMillis()
release(prefix, lane, id, token)
redis.call('HSET', jobKey, 'error', err)
local state
if f[3] == '1' then
  state = 'cancelled'
elseif not retryable then
  state = 'failed'
elseif tonumber(f[5]) >= tonumber(f[6]) then
  state = 'dead'
else
  state = 'retry_wait'
end
local change = {prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = 'leased', to = state,
  now = now, info = err, ttl = ttl, deadline = f[7]}
if state == 'retry_wait' then
  redis.call('HSET', jobKey, 'state', 'retry_wait')
  redis.call('HDEL', jobKey, 'token')
  redis.call('ZADD', laneKey(prefix, lane, 'delayed'), now + backoff, id)
  if f[7] then redis.call('ZADD', laneKey(prefix, lane, 'deadlines'), f[7], id) end
  transition(change)
else
  finishJob(change)
end
return {1, state}
