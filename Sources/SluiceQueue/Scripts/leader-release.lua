--[[
  leader-release: gives the lock up, if the caller holds it.

  KEYS[1]  the lock
  ARGV[1]  the holder

  Returns  1 when it was released, 0 otherwise.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
