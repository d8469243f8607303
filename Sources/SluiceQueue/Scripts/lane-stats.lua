--[[
  lane-stats: the live counts of one lane, and the creation time of its oldest ready job.

  KEYS[1]  the lane's key prefix
  ARGV[1]  lane name

  Returns  {ready, leased, delayed, oldest ready job's created ms ('' when none are ready)}

  Cost: one look at the head of each tenant's list per priority class (skipping at most 10
  tombstones each), so it grows with the number of tenants, never with the number of jobs.
]]
--!include keys.lua
--!include clock.lua
--!include lane.lua
local prefix, lane = KEYS[1], ARGV[1]
local meta = laneKey(prefix, lane, 'meta')
local counts = redis.call('HMGET', meta, 'ready', 'leased')
local oldest = nil
for _, tenant in ipairs(redis.call('ZRANGE', laneKey(prefix, lane, 'rr'), 0, -1)) do
  for _, class in ipairs(redis.call('ZRANGE', classesKey(prefix, lane, tenant), 0, -1)) do
    for _, id in ipairs(redis.call('LRANGE', readyList(prefix, lane, tenant, class), 0, 10)) do
      local f = redis.call('HMGET', jobKey(id), 'state', 'created', 'lane')
      if f[1] == 'queued' and f[3] == lane then
        local created = tonumber(f[2])
        if not oldest or created < oldest then oldest = created end
        break
      end
    end
  end
end
return {tonumber(counts[1] or '0'), tonumber(counts[2] or '0'),
  redis.call('ZCARD', laneKey(prefix, lane, 'delayed')), oldest and fmt(oldest) or ''}
