--[[
  heartbeat: extends the lease of a job, if the caller still holds it, and with it the lease of
  every job of the same lease call that is still held (they share one deadline).

  KEYS[1]  the job's home prefix (from its id)
  ARGV[1]  job id
  ARGV[2]  lease token
  ARGV[3]  new lease duration from now, milliseconds

  Returns  {1, cancel_requested (0|1), lease_until} when extended;
           {0, current state ('' if the job is unknown)} when the caller is not the holder.
]]
--!include keys.lua
--!include clock.lua
--!include lane.lua
--!include leases.lua
local prefix, id, token, leaseMs = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local jobKey = jobKey(id)
local f = redis.call('HMGET', jobKey, 'state', 'token', 'cancel', 'lane', 'at')
if f[1] ~= 'leased' or f[2] ~= token then return {0, f[1] or ''} end
local untilMs = nowMillis() + leaseMs
-- The whole lease call is extended: one worker holds all of its jobs.
redis.call('ZADD', laneKey(lanePrefix(prefix, f[5]), f[4], 'leased'), 'XX', untilMs, leaseGroup(token))
return {1, f[3] == '1' and 1 or 0, untilMs}
