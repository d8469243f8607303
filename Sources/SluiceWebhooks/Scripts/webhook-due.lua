--[[
  webhook-due: the deliveries that are due, oldest first, without taking them (the sender reads
  their keys and chooses fairly among them, then takes its choice with webhook-claim).

  KEYS[1]  the due set
  ARGV[1]  the most to return

  Returns  the ids.
]]
--!include now.lua
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
