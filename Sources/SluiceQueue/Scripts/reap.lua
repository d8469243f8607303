--[[
  reap: puts jobs whose lease ran out back in their lane (the worker vanished or stalled).

  KEYS[1]  the lane's key prefix
  ARGV[1]  event stream cap
  ARGV[2]  lane name
  ARGV[3]  the most lease groups (lease calls) to handle in this call
  ARGV[4]  result TTL, milliseconds

  Returns  {requeued, dead, cancelled, groups handled}: the expired lease's attempt counts, so a
           job whose attempts are used up is dead, and one whose cancel was asked for is cancelled.

  Safe to run from many processes at once: each group is taken out of the leased set and
  expanded under this script's atomicity, and a job moves only while it is still leased under
  that group's token, so none moves twice.
]]
--!include keys.lua
--!include clock.lua
--!include ready.lua
--!include leases.lua
--!include transition.lua
local prefix, cap, lane, limit, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = nowMillis()
local leased = laneKey(prefix, lane, 'leased')
local groups = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, limit)
local requeued, dead, cancelled = 0, 0, 0
for _, group in ipairs(groups) do
  redis.call('ZREM', leased, group)
  local members = groupKey(prefix, lane, group)
  local ids = redis.call('SMEMBERS', members)
  redis.call('DEL', members)
  for _, id in ipairs(ids) do
    local jobKey = jobKey(id)
    local f = redis.call('HMGET', jobKey, 'state', 'attempts', 'max_attempts', 'tenant', 'prio',
      'cancel', 'deadline', 'token')
    -- Still leased under this group: its deadline was found in the past just now.
    if f[1] == 'leased' and f[8] and leaseGroup(f[8]) == group then
      redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'leased', -1)
      -- (A leased job has no deadline entry: the lease took it out.)
      local change = {prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = 'leased',
        now = now, info = 'lease expired', ttl = ttl}
      if f[6] == '1' then
        change.to = 'cancelled'
        finishJob(change)
        cancelled = cancelled + 1
      elseif tonumber(f[2]) >= tonumber(f[3]) then
        redis.call('HSET', jobKey, 'error', 'lease expired')
        change.to = 'dead'
        finishJob(change)
        dead = dead + 1
      else
        redis.call('HSET', jobKey, 'state', 'queued', 'error', 'lease expired')
        redis.call('HDEL', jobKey, 'token')
        pushReady(prefix, lane, id, f[4], f[5], true)
        if f[7] then redis.call('ZADD', laneKey(prefix, lane, 'deadlines'), f[7], id) end
        change.to = 'queued'
        transition(change)
        requeued = requeued + 1
      end
    end
  end
end
return {requeued, dead, cancelled, #groups}
