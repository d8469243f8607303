--[[
  enqueue: adds jobs to one lane.

  KEYS[1]  the lane's key prefix, "sluice:{<tag>}:"
  ARGV[1]  event stream cap (approximate MAXLEN)
  ARGV[2]  lane name
  ARGV[3]  idempotency-key TTL, milliseconds
  ARGV[4]  n, the number of jobs
  ARGV[5…] n groups of 9: id, tenant, priority, payload, idempotency key ('' = none),
           not_before ms ('' = none), deadline ms ('' = none), max_attempts, metadata

  Returns  a flat array of n pairs: {id, 1} for a job created now, or {existing id, 0} when the
           tenant's idempotency key was already used in this lane.

  Guarantee: the whole call is atomic, so a job is either in every structure (hash, ready or
  delayed set, deadline set, event) or in none, and two concurrent calls with one idempotency key
  create one job.
]]
--!include common.lua
local prefix, cap, lane = KEYS[1], ARGV[1], ARGV[2]
local idemTTL = ARGV[3]
local n = tonumber(ARGV[4])
local now = nowMillis()
local out = {}
for i = 0, n - 1 do
  local b = 5 + i * 9
  local id, tenant, priority, payload, idem = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local notBefore, deadline, maxAttempts, meta = ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]
  local existing = false
  if idem ~= '' then
    local idemKey = prefix .. 'idem:' .. tenant .. ':' .. idem
    existing = redis.call('GET', idemKey)
    if not existing then redis.call('SET', idemKey, id, 'PX', idemTTL) end
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local jobKey = prefix .. 'job:' .. id
    local delayed = notBefore ~= '' and tonumber(notBefore) > now
    local state = delayed and 'delayed' or 'queued'
    redis.call('HSET', jobKey, 'lane', lane, 'tenant', tenant, 'prio', priority, 'state', state,
      'payload', payload, 'attempts', 0, 'max_attempts', maxAttempts, 'created', now)
    if idem ~= '' then redis.call('HSET', jobKey, 'idem', idem) end
    if meta ~= '' then redis.call('HSET', jobKey, 'meta', meta) end
    if notBefore ~= '' then redis.call('HSET', jobKey, 'not_before', notBefore) end
    if deadline ~= '' then
      redis.call('HSET', jobKey, 'deadline', deadline)
      redis.call('ZADD', laneKey(prefix, lane, 'deadlines'), deadline, id)
    end
    if delayed then
      redis.call('ZADD', laneKey(prefix, lane, 'delayed'), notBefore, id)
    else
      pushReady(prefix, lane, id, tenant, priority)
    end
    emit(prefix, cap, id, lane, '', state, now)
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
return out
