--[[
  pbatch-claim: claims a lane's provider batch records that are due (a new one whose sender
  vanished, a sent one whose poll is due), each for a while, so that one process at a time works
  on a record and another carries on when that one dies.

  KEYS[1]  the lane's key prefix
  ARGV[1]  lane name
  ARGV[2]  claim, ms: a claimed record is due again this long from now
  ARGV[3]  the most records to claim

  Returns  per record claimed, 8 values: id, state, jobs (comma-joined ids), file ('' = none),
           provider batch id ('' = none), creating_at ms ('' = none), created ms, count.
           A record whose hash is gone leaves `pbatches`.
]]
--!include lane.lua
--!include clock.lua
local prefix, lane, claim, limit = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = nowMillis()
local pbatches = laneKey(prefix, lane, 'pbatches')
local out = {}
for _, record in ipairs(redis.call('ZRANGEBYSCORE', pbatches, '-inf', now, 'LIMIT', 0, limit)) do
  local f = redis.call('HMGET', prefix .. 'pbatch:' .. record, 'state', 'jobs', 'file', 'provider', 'creating_at', 'created', 'count')
  if not f[1] then
    redis.call('ZREM', pbatches, record)
  else
    redis.call('ZADD', pbatches, fmt(now + claim), record)
    out[#out + 1] = record
    for i = 1, 7 do out[#out + 1] = f[i] or '' end
  end
end
return out
