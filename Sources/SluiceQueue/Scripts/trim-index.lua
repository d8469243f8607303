--[[
  trim-index: drops from a lane's listing indexes the jobs whose hash has expired (a finished
  job's hash lives for the result TTL; its index entry would otherwise stay forever).

  KEYS[1]  the lane's key prefix
  ARGV[1]  lane name
  ARGV[2]  the most entries to examine per tenant, oldest first
  ARGV[3]  the most tenants to visit (a random sample, so that every tenant is reached over time)

  Returns  the number of entries dropped. A tenant whose index is left empty leaves the lane's
           tenant set. Entries are examined from the oldest: jobs finish roughly in creation
           order, so the expired ones gather there.
]]
--!include keys.lua
--!include lane.lua
local prefix, lane, limit, sample = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local tenants = laneKey(prefix, lane, 'tenants')
local dropped = 0
for _, tenant in ipairs(redis.call('SRANDMEMBER', tenants, sample)) do
  local index = laneKey(prefix, lane, 'index:' .. tenant)
  local gone = {}
  for _, id in ipairs(redis.call('ZRANGE', index, '-', '+', 'BYLEX', 'LIMIT', 0, limit)) do
    if redis.call('EXISTS', jobKey(id)) == 0 then gone[#gone + 1] = id end
  end
  for i = 1, #gone, 1000 do redis.call('ZREM', index, unpack(gone, i, math.min(i + 999, #gone))) end
  dropped = dropped + #gone
  if redis.call('EXISTS', index) == 0 then redis.call('SREM', tenants, tenant) end
end
return dropped
