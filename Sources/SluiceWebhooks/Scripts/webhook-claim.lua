--[[
  webhook-claim: takes the due deliveries, pushing each a lease ahead in the due set, so another
  sender takes it if this one vanishes mid-send.

  KEYS[1]  the due set
  ARGV[1]  the lease (ms)       ARGV[2]  the most to take

  Returns  the ids taken.
]]
--!include now.lua
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id) end
return ids
