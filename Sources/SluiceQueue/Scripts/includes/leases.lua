--!include lane.lua

-- Leases are kept per lease call: the call's group id is the first part of each of its tokens
-- ("<group>.<k>"), `leased` scores each group by its deadline, and `lease:<group>` holds the
-- jobs it still holds. One ZADD per call instead of one per job.
local function leaseGroup(token) return string.match(token, '^(%d+)%.') end
local function groupKey(prefix, lane, group) return laneKey(prefix, lane, 'lease:' .. group) end

-- Releases a job from its lease group; a group left empty leaves the leased set.
local function release(prefix, lane, id, token)
  local group = leaseGroup(token)
  local key = groupKey(prefix, lane, group)
  redis.call('SREM', key, id)
  if redis.call('EXISTS', key) == 0 then redis.call('ZREM', laneKey(prefix, lane, 'leased'), group) end
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'leased', -1)
end
