--[[
  list: one tenant's jobs in one lane, newest first, optionally only those in one state.

  KEYS[1]  the lane's key prefix
  ARGV[1]  lane name
  ARGV[2]  tenant
  ARGV[3]  upper bound, exclusive: '+' (the newest) or '(' followed by a job id of this lane
  ARGV[4]  limit, the most jobs to return
  ARGV[5]  state ('' = any)
  ARGV[6]  budget, the most index entries to examine (a rare state must not scan everything)

  Returns  {stop, id, state, id, state, ...}: stop is '' when the index was read to its end or
           the limit was reached, else the last id examined when the budget ran out first (the
           caller continues from there). Entries whose job hash has expired are dropped from the
           index on the way.
]]
--!include keys.lua
--!include lane.lua
local prefix, lane, tenant, bound = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local limit, wanted, budget = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local index = laneKey(prefix, lane, 'index:' .. tenant)
local out = {''}
local found, examined, gone = 0, 0, {}
local lastExamined = nil
local ended = false
while found < limit and examined < budget do
  local batch = math.min(budget - examined, math.max(limit - found, 64))
  local ids = redis.call('ZRANGE', index, bound, '-', 'BYLEX', 'REV', 'LIMIT', 0, batch)
  for _, id in ipairs(ids) do
    examined = examined + 1
    lastExamined = id
    bound = '(' .. id
    local state = redis.call('HGET', jobKey(id), 'state')
    if not state then
      gone[#gone + 1] = id
    elseif wanted == '' or state == wanted then
      out[#out + 1] = id
      out[#out + 1] = state
      found = found + 1
      if found >= limit then break end
    end
  end
  if #ids < batch then
    ended = true
    break
  end
end
for i = 1, #gone, 1000 do redis.call('ZREM', index, unpack(gone, i, math.min(i + 999, #gone))) end
if not ended and found < limit and lastExamined then out[1] = lastExamined end
return out
