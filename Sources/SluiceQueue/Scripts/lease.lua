--[[
  lease: hands up to n ready jobs of one lane to a worker, each under a fresh lease token.

  KEYS[1]  the lane's key prefix
  ARGV[1]  event stream cap
  ARGV[2]  lane name
  ARGV[3]  n, the most jobs to lease
  ARGV[4]  lease duration, milliseconds
  ARGV[5]  result TTL, milliseconds (for a job found past its deadline, which expires instead)

  Returns  a flat array of groups of 8 per leased job:
           id, token, attempt, max_attempts, tenant, payload, metadata, lease_until

  Order: the best priority first; among tenants whose best jobs share that priority, the one
  served least recently (round robin); within a tenant, FIFO. The attempt counts from here: a
  lease that expires uses up an attempt.
]]
--!include common.lua
local prefix, cap, lane = KEYS[1], ARGV[1], ARGV[2]
local n, leaseMs, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local now = nowMillis()
local rr, meta = laneKey(prefix, lane, 'rr'), laneKey(prefix, lane, 'meta')
local leased, deadlines = laneKey(prefix, lane, 'leased'), laneKey(prefix, lane, 'deadlines')
local out = {}
local got, tries = 0, 0
while got < n and tries < n * 2 + 16 do
  tries = tries + 1
  local head = redis.call('ZRANGE', rr, 0, 0)
  if #head == 0 then break end
  local tenant = head[1]
  local popped = redis.call('ZPOPMIN', laneKey(prefix, lane, 'ready:' .. tenant))
  if #popped == 0 then
    redis.call('ZREM', rr, tenant)
  else
    local id = popped[1]
    redis.call('HINCRBY', meta, 'ready', -1)
    rerankTenant(prefix, lane, tenant, redis.call('HINCRBY', meta, 'turn', 1))
    local jobKey = prefix .. 'job:' .. id
    local f = redis.call('HMGET', jobKey, 'state', 'deadline', 'max_attempts', 'payload', 'meta')
    if f[1] == 'queued' then
      if f[2] and tonumber(f[2]) <= now then
        finish(prefix, lane, jobKey, id, 'expired', now, ttl)
        emit(prefix, cap, id, lane, 'queued', 'expired', now, 'deadline passed')
      else
        local attempt = redis.call('HINCRBY', jobKey, 'attempts', 1)
        local token = tostring(redis.call('HINCRBY', meta, 'tokens', 1))
        local untilMs = now + leaseMs
        redis.call('HSET', jobKey, 'state', 'leased', 'token', token, 'lease_until', untilMs, 'leased_at', now)
        redis.call('ZADD', leased, untilMs, id)
        redis.call('ZREM', deadlines, id)
        emit(prefix, cap, id, lane, 'queued', 'leased', now)
        out[#out + 1] = id
        out[#out + 1] = token
        out[#out + 1] = attempt
        out[#out + 1] = f[3]
        out[#out + 1] = tenant
        out[#out + 1] = f[4] or ''
        out[#out + 1] = f[5] or ''
        out[#out + 1] = untilMs
        got = got + 1
      end
    end
  end
end
return out
