--[[
  lease: hands up to n ready jobs of one lane to a worker, each under a fresh lease token.

  KEYS[1]  the lane's key prefix
  ARGV[1]  event stream cap
  ARGV[2]  lane name
  ARGV[3]  n, the most jobs to lease
  ARGV[4]  lease duration, milliseconds
  ARGV[5]  result TTL, milliseconds (for a job found past its deadline, which expires instead)

  Returns  {lease group, lease_until, then 5 per leased job: id, attempt, tenant, payload,
           metadata}. The i-th job's token is "<lease group>.<i>". The jobs of one call form one
           lease group: one deadline, extended together by a heartbeat of any of them.

  Order: the best priority first; among tenants whose best jobs share that priority, the one
  served least recently (round robin), each tenant of a round getting an equal share of the n
  jobs; within a tenant, FIFO. The attempt counts from here: a lease that expires uses up an
  attempt.
]]
--!include keys.lua
--!include clock.lua
--!include ready.lua
--!include leases.lua
--!include transition.lua
local prefix, cap, lane = KEYS[1], ARGV[1], ARGV[2]
local n, leaseMs, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local now = nowMillis()
local untilMs = now + leaseMs
local untilText, nowText = fmt(untilMs), fmt(now) -- formatted once, used per job
local rr, meta = laneKey(prefix, lane, 'rr'), laneKey(prefix, lane, 'meta')
local deadlines = laneKey(prefix, lane, 'deadlines')
local turn = nil
local group = nil
local leasedIds, out = {}, {}
local got, taken, popped = 0, 0, 0
local popLimit = n * 4 + 1000 -- bounds the tombstones one call discards

-- Leases one popped id if its job is still queued; discards a tombstone; expires a job whose
-- deadline passed before the expirer saw it.
local function take(id, tenant)
  popped = popped + 1
  local jobKey = jobKey(id)
  local f = redis.call('HMGET', jobKey, 'state', 'deadline', 'attempts', 'payload', 'meta', 'log', 'lane')
  if f[1] ~= 'queued' or f[7] ~= lane then return end -- a tombstone (also: a job moved to a fallback lane)
  taken = taken + 1
  if f[2] and tonumber(f[2]) <= now then
    finishJob{prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = 'queued', to = 'expired',
      now = now, info = 'deadline passed', ttl = ttl, deadline = f[2]}
    return
  end
  group = group or tostring(redis.call('HINCRBY', meta, 'tokens', 1))
  got = got + 1
  local attempt = tonumber(f[3] or '0') + 1
  redis.call('HSET', jobKey, 'state', 'leased', 'token', group .. '.' .. got, 'leased_at', nowText,
    'attempts', attempt, 'log', (f[6] or '') .. logLine(nowText, 'leased', 'attempt ' .. attempt))
  leasedIds[#leasedIds + 1] = id
  if f[2] then redis.call('ZREM', deadlines, id) end
  out[#out + 1] = id
  out[#out + 1] = attempt
  out[#out + 1] = tenant
  out[#out + 1] = f[4] or ''
  out[#out + 1] = f[5] or ''
end

while got < n and popped < popLimit do
  -- A round: the tenants whose best class is the lane's best, least recently served first.
  local entries = redis.call('ZRANGE', rr, 0, n - got - 1, 'WITHSCORES')
  if #entries == 0 then break end
  local class = math.floor(tonumber(entries[2]) / SPAN)
  local round = {}
  for i = 1, #entries, 2 do
    if math.floor(tonumber(entries[i + 1]) / SPAN) ~= class then break end
    round[#round + 1] = entries[i]
  end
  -- Each tenant of the round gets an equal share of what is still wanted (at least one job):
  -- fair share, with one pop and one re-rank per tenant instead of per job.
  local each = math.max(1, math.floor((n - got) / #round))
  turn = turn or tonumber(redis.call('HGET', meta, 'turn') or '0')
  for _, tenant in ipairs(round) do
    if got >= n then break end
    local listKey = readyList(prefix, lane, tenant, class)
    local ids = redis.call('LPOP', listKey, each)
    local empty = (not ids) or #ids < each or redis.call('LLEN', listKey) == 0
    local best = class
    if empty then
      local classes = classesKey(prefix, lane, tenant)
      redis.call('ZREM', classes, class)
      local following = redis.call('ZRANGE', classes, 0, 0)
      best = following[1] and tonumber(following[1]) or nil
    end
    if best then
      turn = turn + 1
      redis.call('ZADD', rr, fmt(best * SPAN + turn), tenant)
    else
      redis.call('ZREM', rr, tenant)
    end
    if ids then
      for _, id in ipairs(ids) do take(id, tenant) end
    end
  end
end
if #leasedIds > 0 then
  local members = groupKey(prefix, lane, group)
  for i = 1, #leasedIds, 1000 do
    redis.call('SADD', members, unpack(leasedIds, i, math.min(i + 999, #leasedIds)))
  end
  redis.call('ZADD', laneKey(prefix, lane, 'leased'), untilText, group)
  redis.call('HINCRBY', meta, 'leased', #leasedIds)
  emit(prefix, cap, table.concat(leasedIds, ','), lane, 'queued', 'leased', now)
end
if turn then redis.call('HSET', meta, 'turn', turn) end
if taken > 0 then redis.call('HINCRBY', meta, 'ready', -taken) end
-- Jobs still ready (n leased, or the pop limit reached among tombstones): wake a worker, this
-- one too, so that the rest is leased without waiting for the idle wait's safety net.
if redis.call('EXISTS', rr) == 1 then signalReady(prefix, lane) end
table.insert(out, 1, untilMs)
table.insert(out, 1, group or '')
return out
