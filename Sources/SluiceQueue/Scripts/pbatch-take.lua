--[[
  pbatch-take: moves a lane's collected jobs into a new provider batch record, when the batch is
  due: `max requests` are waiting, or the oldest has waited `window`.

  KEYS[1]  the lane's key prefix
  ARGV[1]  event stream cap
  ARGV[2]  lane name
  ARGV[3]  the new record's id (`pb_…`, unique)
  ARGV[4]  the most requests in one batch
  ARGV[5]  the most bytes of requests in one batch (payload bytes plus 200 a line for the line's
           own JSON; at least one job is taken whatever its size)
  ARGV[6]  window, ms
  ARGV[7]  claim, ms: the record is due again (for any process to carry on) this long from now
  ARGV[8]  result TTL, ms (for a job found past its deadline, which expires instead)

  Returns  {n, wait}: n jobs taken into the record (0: nothing due; then wait is the ms until the
           oldest job's window closes, or -1 when none is collected), then the n job ids.

  Guarantee: atomic. Each job taken is `leased` (its attempt counted) under the record (`brec`),
  holds no lease token, no provider slot and no entry in the lane's leased set (no reaper takes
  it back: the record is its owner); the record (`pbatch:<id>`: lane, state uploading, jobs,
  count, created) and its entry in the lane's `pbatches` (scored by when it is next due) are
  written in the same call, so a job is either collected or in exactly one record.
]]
--!include keys.lua
--!include clock.lua
--!include lane.lua
--!include transition.lua
local prefix, cap, lane, record = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local maxRequests, maxBytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local window, claim, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local collect = laneKey(prefix, lane, 'collect')
local meta = laneKey(prefix, lane, 'meta')
local count = redis.call('ZCARD', collect)
if count == 0 then return {0, -1} end
local now = nowMillis()
if count < maxRequests then
  local oldest = redis.call('ZRANGE', collect, 0, 0, 'WITHSCORES')
  local age = now - tonumber(oldest[2])
  if age < window then return {0, window - age} end
end
local nowText = fmt(now)
local info = 'provider batch ' .. record
local ids = redis.call('ZRANGE', collect, 0, maxRequests - 1)
local taken, gone, bytes = {}, {}, 0
for _, id in ipairs(ids) do
  local jobKey = jobKey(id)
  local f = redis.call('HMGET', jobKey, 'state', 'lane', 'deadline', 'attempts', 'log')
  if f[1] ~= 'queued' or f[2] ~= lane then
    gone[#gone + 1] = id -- no longer this lane's queued job (counted out when it left)
  elseif f[3] and tonumber(f[3]) <= now then
    gone[#gone + 1] = id
    redis.call('HINCRBY', meta, 'collecting', -1)
    finishJob{prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = 'queued', to = 'expired',
      now = now, info = 'deadline passed', ttl = ttl, deadline = f[3]}
  else
    local size = redis.call('HSTRLEN', jobKey, 'payload') + 200
    if #taken > 0 and bytes + size > maxBytes then break end
    bytes = bytes + size
    local attempt = tonumber(f[4] or '0') + 1
    redis.call('HSET', jobKey, 'state', 'leased', 'brec', record, 'leased_at', nowText, 'attempts', attempt,
      'log', (f[5] or '') .. logLine(nowText, 'leased', info .. ', attempt ' .. attempt))
    if f[3] then redis.call('ZREM', laneKey(prefix, lane, 'deadlines'), id) end
    taken[#taken + 1] = id
  end
end
for i = 1, #gone, 1000 do redis.call('ZREM', collect, unpack(gone, i, math.min(i + 999, #gone))) end
if #taken == 0 then return {0, -1} end
for i = 1, #taken, 1000 do redis.call('ZREM', collect, unpack(taken, i, math.min(i + 999, #taken))) end
local jobs = table.concat(taken, ',')
redis.call('HINCRBY', meta, 'collecting', -#taken)
redis.call('HINCRBY', meta, 'batched', #taken)
redis.call('HSET', prefix .. 'pbatch:' .. record, 'lane', lane, 'state', 'uploading', 'jobs', jobs,
  'count', #taken, 'created', nowText)
redis.call('ZADD', laneKey(prefix, lane, 'pbatches'), fmt(now + claim), record)
emit(prefix, cap, jobs, lane, 'queued', 'leased', now, info)
local out = {#taken, 0}
for i = 1, #taken do out[#out + 1] = taken[i] end
return out
