--[[
  cache-store: a leader's successful result, kept for its TTL under the cache's byte cap; the
  leader's marker is removed so that waiting jobs find the result.

  KEYS[1]  the cache's prefix (`sluice:{cache}:`)
  ARGV[1]  the request's cache key (hex digest)
  ARGV[2]  the leader's job id (the marker is removed only if it still names this job)
  ARGV[3]  the result (the provider's answer, as the job recorded it)
  ARGV[4]  TTL, milliseconds
  ARGV[5]  the cap on the bytes of all stored results (0: none)
  ARGV[6]  the tokens the leader's call used (input + output; 0: unknown), counted as saved on
           each later hit

  Returns  {stored (1 or 0), bytes held after, results evicted}

  Keys: `r:<digest>` the result (string, PX TTL); `stored` zset digest -> store order (from the
  `seq` counter: milliseconds would tie), for evicting the oldest; `expires` zset digest -> expiry (ms), to drop expired results' sizes;
  `sizes` hash digest -> bytes; `bytes` the sum of `sizes`; `tokens` hash digest -> tokens. A result larger than the whole cap
  is not stored. Eviction removes the oldest stored results until the sum fits.
]]
--!include clock.lua
local prefix, digest, id, result = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local ttl, cap, tokens = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6] or '0') or 0
local storedKey, expiresKey, sizesKey, bytesKey = prefix .. 'stored', prefix .. 'expires', prefix .. 'sizes', prefix .. 'bytes'
local now = nowMillis()

local function forget(member)
  local size = tonumber(redis.call('HGET', sizesKey, member) or '0')
  redis.call('HDEL', sizesKey, member)
  redis.call('HDEL', prefix .. 'tokens', member)
  redis.call('ZREM', storedKey, member)
  redis.call('ZREM', expiresKey, member)
  if size > 0 then redis.call('DECRBY', bytesKey, size) end
end

local marker = prefix .. 'inflight:' .. digest
if redis.call('GET', marker) == id then redis.call('DEL', marker) end

-- Results that expired by themselves give their bytes back.
for _, member in ipairs(redis.call('ZRANGEBYSCORE', expiresKey, '-inf', now)) do forget(member) end

local size = #result
if cap > 0 and size > cap then
  return {0, tonumber(redis.call('GET', bytesKey) or '0'), 0}
end
forget(digest)
redis.call('SET', prefix .. 'r:' .. digest, result, 'PX', ttl)
redis.call('ZADD', storedKey, redis.call('INCR', prefix .. 'seq'), digest)
redis.call('ZADD', expiresKey, now + ttl, digest)
redis.call('HSET', sizesKey, digest, size)
if tokens > 0 then redis.call('HSET', prefix .. 'tokens', digest, tokens) end
local bytes = redis.call('INCRBY', bytesKey, size)
local evicted = 0
while cap > 0 and bytes > cap do
  local oldest = redis.call('ZRANGE', storedKey, 0, 0)[1]
  if not oldest or oldest == digest then break end
  redis.call('DEL', prefix .. 'r:' .. oldest)
  forget(oldest)
  evicted = evicted + 1
  bytes = tonumber(redis.call('GET', bytesKey) or '0')
end
redis.call('HINCRBY', prefix .. 'stats', 'evicted', evicted)
return {1, bytes, evicted}
