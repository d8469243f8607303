--[[
  trim-events: trims a lane's event stream without dropping what a consumer group has not read.

  The scripts append with a hard cap only (`MAXLEN ~ event_stream_max`, a guard against a
  consumer group nobody reads any more). This trim, run by maintenance, keeps the stream near
  `event_stream_cap`: above it, entries are dropped up to the oldest entry some consumer group
  (the archiver, the webhooks) has not read or not acknowledged yet, so that a consumer that was
  down resumes where it stopped and skips nothing. With no consumer group it trims to the cap.

  KEYS[1]  the lane's key prefix
  ARGV[1]  event_stream_cap (entries)

  Returns  the entries dropped.
]]
local stream, cap = KEYS[1] .. 'events', tonumber(ARGV[1])
if redis.call('EXISTS', stream) == 0 or redis.call('XLEN', stream) <= cap then return 0 end
local groups = redis.call('XINFO', 'GROUPS', stream)
if #groups == 0 then return redis.call('XTRIM', stream, 'MAXLEN', '~', cap) end

-- Stream ids "<ms>-<seq>" compared as numbers.
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

local floor = nil
for _, group in ipairs(groups) do
  local fields = {}
  for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
  -- The oldest entry this group still needs: its oldest unacknowledged one, else the next unread.
  local needed = fields['last-delivered-id']
  if tonumber(fields['pending']) > 0 then
    needed = redis.call('XPENDING', stream, fields['name'])[2]
  else
    local ms, seq = string.match(needed, '^(%d+)-(%d+)$')
    needed = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
  end
  if floor == nil or before(needed, floor) then floor = needed end
end
return redis.call('XTRIM', stream, 'MINID', '~', floor)
