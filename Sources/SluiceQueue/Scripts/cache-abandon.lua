--[[
  cache-abandon: a leader whose call did not succeed gives the key up at once, so that the next
  waiting job leads (instead of waiting for the marker's TTL). Nothing is stored.

  KEYS[1]  the cache's prefix (`sluice:{cache}:`)
  ARGV[1]  the request's cache key (hex digest)
  ARGV[2]  the leader's job id (the marker is removed only if it still names this job)

  Returns  1 if the marker was removed, 0 if it named another job or had expired.
]]
local marker = KEYS[1] .. 'inflight:' .. ARGV[1]
if redis.call('GET', marker) == ARGV[2] then
  redis.call('DEL', marker)
  return 1
end
return 0
