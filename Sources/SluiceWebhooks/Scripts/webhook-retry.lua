--[[
  webhook-retry: replays a delivery: pending, due now, with a fresh schedule (attempts back to 0)
  and no expiry; it leaves the dead letters.

  KEYS[1]  the delivery's hash   KEYS[2]  the due set   KEYS[3]  the dead letters
  ARGV[1]  its id

  Returns  1, or 0 when the delivery is unknown.
]]
--!include now.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'pending', 'next_at', now, 'attempts', 0)
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('LREM', KEYS[3], 0, ARGV[1])
return 1
