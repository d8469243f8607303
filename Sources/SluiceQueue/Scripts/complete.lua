--[[
  complete: records the result of a leased job, compare-and-set on the lease token.

  KEYS[1]  the job's lane prefix
  ARGV[1]  event stream cap
  ARGV[2]  job id
  ARGV[3]  lease token
  ARGV[4]  result (bytes)
  ARGV[5]  result TTL, milliseconds (0 keeps the job hash forever)

  Returns  {1, 'succeeded'}, or {1, 'cancelled'} when a cancel was asked for during the lease;
           {0, current state ('' if unknown)} when the token is not the current one: a stale
           worker's late result, which is refused and changes nothing.
]]
--!include common.lua
local prefix, cap, id, token, result, ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jobKey = prefix .. 'job:' .. id
local f = redis.call('HMGET', jobKey, 'state', 'token', 'cancel', 'lane')
if f[1] ~= 'leased' or f[2] ~= token then return {0, f[1] or ''} end
local lane, now = f[4], nowMillis()
redis.call('ZREM', laneKey(prefix, lane, 'leased'), id)
local state = 'succeeded'
if f[3] == '1' then
  state = 'cancelled'
else
  redis.call('HSET', jobKey, 'result', result)
end
finish(prefix, lane, jobKey, id, state, now, ttl)
emit(prefix, cap, id, lane, 'leased', state, now)
return {1, state}
