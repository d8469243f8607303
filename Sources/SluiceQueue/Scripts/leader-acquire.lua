--[[
  leader-acquire: takes the lock, or renews it for its holder.

  KEYS[1]  the lock
  ARGV[1]  the holder     ARGV[2]  the lock's time to live (ms)

  Returns  1 when the caller holds the lock now, 0 when another does.
]]
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
