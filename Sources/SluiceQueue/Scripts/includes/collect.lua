-- A lane's collect set: the queued jobs that go through the provider's batch API (`mode` batch),
-- scored by when they were queued, until pbatch-take.lua moves them into a provider batch.
--!include lane.lua
--!include ready.lua

-- Puts a queued batch job in its lane's collect set (counted in the lane's meta `collecting`).
local function collect(prefix, lane, id, now)
  redis.call('ZADD', laneKey(prefix, lane, 'collect'), now, id)
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'collecting', 1)
end

-- Takes a queued job out of the lane's live counts: a collected one leaves the collect set, any
-- other stays in its ready list as a tombstone (see ready.lua).
local function unqueue(prefix, lane, id)
  if redis.call('ZREM', laneKey(prefix, lane, 'collect'), id) == 1 then
    redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'collecting', -1)
  else
    tombstone(prefix, lane)
  end
end
