--[[
  complete: records the results of leased jobs, each compare-and-set on its lease token.
  Many reports go in one call (the queue coalesces concurrent completes: group commit).

  KEYS[1]  the jobs' home prefix (all jobs of one call share it: their ids' tag)
  ARGV[1]  event stream cap
  ARGV[2]  result TTL, milliseconds (0 keeps the job hash forever)
  ARGV[3]  n, the number of reports
  ARGV[4…] n groups of 5: job id, lease token, result (bytes), info for the timeline ('' = none),
           usage "<input> <output>" tokens ('' = unknown)

  Returns  a flat array of n pairs, in order: {1, 'succeeded'}, or {1, 'cancelled'} when a
           cancel was asked for during the lease; {0, current state ('' if unknown)} when the
           token is not the current one: a stale worker's late result, refused, changing nothing.

  It ends each job as transition.lua's finishJob does, batched for the hot path: one HSET per job
  (state, result and timeline line together), one SREM per lease group, one event per lane and
  state, one HINCRBY per submitting key and one PUBLISH for the whole call; a pipeline step's
  job (one with a `run` field) also adds its end to the runs stream (runEnded).
]]
--!include keys.lua
--!include clock.lua
--!include leases.lua
--!include transition.lua
local prefix, cap, ttl, n = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = nowMillis()
local nowText = fmt(now)
local out = {}
local done = {}                 -- ids that reached a terminal state, for one PUBLISH
local finishedBy = {}             -- submitting key -> jobs finished here
local byLane, laneOrder = {}, {} -- lane -> {succeeded = ids, cancelled = ids, groups = set}
for i = 0, n - 1 do
  local b = 4 + i * 5
  local id, token, result, info, usage = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local jobKey = jobKey(id)
  local f = redis.call('HMGET', jobKey, 'state', 'token', 'cancel', 'lane', 'deadline', 'log', 'key', 'at', 'leased_at', 'run')
  if f[1] ~= 'leased' or f[2] ~= token then
    out[#out + 1] = 0
    out[#out + 1] = f[1] or ''
  else
    local lane = f[4]
    local group = byLane[lane]
    if not group then
      group = {succeeded = {}, cancelled = {}, groups = {}, released = 0, serviceMs = 0, prefix = lanePrefix(prefix, f[8])}
      byLane[lane] = group
      laneOrder[#laneOrder + 1] = lane
    end
    local state = 'succeeded'
    if f[3] == '1' then
      state = 'cancelled'
      redis.call('HSET', jobKey, 'state', state, 'finished', now, 'log', (f[6] or '') .. logLine(nowText, state, info))
    else
      redis.call('HSET', jobKey, 'state', state, 'finished', now, 'result', result,
        'log', (f[6] or '') .. logLine(nowText, state, info))
    end
    if usage ~= '' then redis.call('HSET', jobKey, 'usage', usage) end
    if f[5] then redis.call('ZREM', laneKey(group.prefix, lane, 'deadlines'), id) end
    if f[7] then finishedBy[f[7]] = (finishedBy[f[7]] or 0) + 1 end
    if f[10] then runEnded(f[10], id, state) end
    if tonumber(ttl) > 0 then redis.call('PEXPIRE', jobKey, ttl) end
    local leaseGroupId = leaseGroup(token)
    local members = group.groups[leaseGroupId]
    if not members then
      members = {}
      group.groups[leaseGroupId] = members
    end
    members[#members + 1] = id
    group.released = group.released + 1
    if f[9] then group.serviceMs = group.serviceMs + (now - tonumber(f[9])) end
    local ids = group[state]
    ids[#ids + 1] = id
    done[#done + 1] = id
    out[#out + 1] = 1
    out[#out + 1] = state
  end
end
for _, lane in ipairs(laneOrder) do
  local group = byLane[lane]
  -- Released from their lease groups, one SREM per group; groups left empty leave the leased set.
  for leaseGroupId, members in pairs(group.groups) do
    local key = groupKey(group.prefix, lane, leaseGroupId)
    for i = 1, #members, 1000 do redis.call('SREM', key, unpack(members, i, math.min(i + 999, #members))) end
    if redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', laneKey(group.prefix, lane, 'leased'), leaseGroupId)
    end
  end
  redis.call('HINCRBY', laneKey(group.prefix, lane, 'meta'), 'leased', -group.released)
  -- The time the calls took (for the autoscaler's mean service time).
  redis.call('HINCRBY', laneKey(group.prefix, lane, 'meta'), 'service_ms', group.serviceMs)
  redis.call('HINCRBY', laneKey(group.prefix, lane, 'meta'), 'service_n', group.released)
  if #group.succeeded > 0 then emit(group.prefix, cap, table.concat(group.succeeded, ','), lane, 'leased', 'succeeded', now) end
  if #group.cancelled > 0 then emit(group.prefix, cap, table.concat(group.cancelled, ','), lane, 'leased', 'cancelled', now) end
end
for submitter, count in pairs(finishedBy) do redis.call('HINCRBY', OPEN_JOBS, submitter, -count) end
if #done > 0 then redis.call('PUBLISH', prefix .. 'done', table.concat(done, ',')) end
return out
