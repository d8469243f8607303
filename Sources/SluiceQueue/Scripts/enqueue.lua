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
-- Ready jobs are gathered per (tenant, class) and pushed with one RPUSH each; the events are
-- one entry per destination state.
local lists, listOrder = {}, {}
local queuedIds, delayedIds = {}, {}
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
    local delayed = notBefore ~= '' and tonumber(notBefore) > now
    local state = delayed and 'delayed' or 'queued'
    local fields = {'lane', lane, 'tenant', tenant, 'state', state, 'payload', payload,
      'max_attempts', maxAttempts, 'created', now}
    if priority ~= '0' then fields[#fields + 1] = 'prio'; fields[#fields + 1] = priority end
    if idem ~= '' then fields[#fields + 1] = 'idem'; fields[#fields + 1] = idem end
    if meta ~= '' then fields[#fields + 1] = 'meta'; fields[#fields + 1] = meta end
    if notBefore ~= '' then fields[#fields + 1] = 'not_before'; fields[#fields + 1] = notBefore end
    if deadline ~= '' then
      fields[#fields + 1] = 'deadline'; fields[#fields + 1] = deadline
      redis.call('ZADD', laneKey(prefix, lane, 'deadlines'), deadline, id)
    end
    redis.call('HSET', prefix .. 'job:' .. id, unpack(fields))
    if delayed then
      redis.call('ZADD', laneKey(prefix, lane, 'delayed'), notBefore, id)
      delayedIds[#delayedIds + 1] = id
    else
      local class = 100 - tonumber(priority)
      local listKey = tenant .. ':' .. class
      local list = lists[listKey]
      if not list then
        list = {tenant = tenant, class = class}
        lists[listKey] = list
        listOrder[#listOrder + 1] = listKey
      end
      list[#list + 1] = id
      queuedIds[#queuedIds + 1] = id
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
for _, listKey in ipairs(listOrder) do
  local list = lists[listKey]
  local key = readyList(prefix, lane, list.tenant, list.class)
  for i = 1, #list, 1000 do redis.call('RPUSH', key, unpack(list, i, math.min(i + 999, #list))) end
  noteReady(prefix, lane, list.tenant, list.class)
end
if #queuedIds > 0 then
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'ready', #queuedIds)
  emit(prefix, cap, table.concat(queuedIds, ','), lane, '', 'queued', now)
end
if #delayedIds > 0 then emit(prefix, cap, table.concat(delayedIds, ','), lane, '', 'delayed', now) end
return out
