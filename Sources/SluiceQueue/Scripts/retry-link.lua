--[[
  retry-link: links a dead (or failed) job and the new job that retries it
  (POST /v1/jobs/{id}/retry): the old job's hash gets retried_as, the new one's retry_of.

  KEYS[1]  the old job's hash
  KEYS[2]  the new job's hash (same lane, so the same hash slot)
  ARGV[1]  the old job's id
  ARGV[2]  the new job's id

  Returns  how many of the two hashes were linked (0, 1 or 2).

  Guarantee: a hash that is gone (its result TTL passed, it was archived) is not created again:
  each field is written only where the hash still exists, so no TTL-less stub is left behind,
  and the hash's own TTL is kept (HSET does not touch it).
]]
local linked = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'retried_as', ARGV[2])
  linked = linked + 1
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'retry_of', ARGV[1])
  linked = linked + 1
end
return linked
