--[[
  pbatch-settle: ends (or sends back live) the jobs of a provider batch record from its result
  lines, a chunk per call; the last call (`final`) also removes the record (the caller sends the
  record's jobs no result line named as `back` lines, so every job of the record is moved by
  the time the record goes).

  KEYS[1]  the lane's key prefix (the record's lane)
  ARGV[1]  event stream cap
  ARGV[2]  lane name
  ARGV[3]  result TTL, ms
  ARGV[4]  record id
  ARGV[5]  the provider's batch id ('' when none was created), stored on each job as `pbatch`
  ARGV[6]  '1' for the final call, else ''
  ARGV[7]  unused ('')
  ARGV[8]  n, the number of lines
  ARGV[9…] n groups of 5: job id, verdict, body, info for the timeline, usage
           "<input> <output>" ('' = unknown). The verdict (decided as the live path decides on
           a call's outcome) is one of
             ok     succeeded: body is the result, in the client's shape
             fail   a final failure (a 4xx): body is the error
             retry  a failed attempt (429, 5xx): the attempt counts, and the job goes back to
                    its lane's ready queue for a live call (dead when its attempts are used up)
             back   not run (expired, cancelled, missing, the batch failed): the attempt does
                    not count; back to the ready queue for a live call, or expired when its
                    deadline has passed

  Returns  {settled, skipped}: lines that ended or moved their job; lines skipped because their
           job is no longer in this record (cancelled meanwhile, settled by an earlier call, or
           a custom_id that is not one of the record's jobs).

  Guarantee: atomic per call and idempotent: a job moves only while it is `leased` in this
  record (`brec`), so a chunk sent twice, or a line whose job was cancelled, changes nothing. A
  job sent back live loses `mode` (its next try is a live call). Terminal jobs are finished as
  complete.lua finishes them (state, result or error, timeline line, usage, open jobs, the
  pipeline run, the result TTL, one event per state, one PUBLISH), with `pbatch` set.
]]
--!include keys.lua
--!include clock.lua
--!include ready.lua
--!include transition.lua
local prefix, cap, lane, ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local record, pbatch, final = ARGV[4], ARGV[5], ARGV[6] == '1'
local n = tonumber(ARGV[8])
local now = nowMillis()
local nowText = fmt(now)
local moved = {succeeded = {}, failed = {}, dead = {}, cancelled = {}, queued = {}, expired = {}}
local order = {'succeeded', 'failed', 'dead', 'cancelled', 'queued', 'expired'}
local finishedBy, done = {}, {}
local settled, skipped = 0, 0

local function settle(id, verdict, body, info, usage)
  local key = jobKey(id)
  local f = redis.call('HMGET', key, 'state', 'brec', 'cancel', 'deadline', 'log', 'key', 'run', 'tenant', 'prio',
    'attempts', 'max_attempts')
  if f[1] ~= 'leased' or f[2] ~= record then
    skipped = skipped + 1
    return
  end
  settled = settled + 1
  redis.call('HDEL', key, 'brec')
  local attempts = tonumber(f[10] or '1')
  local state
  if f[3] == '1' then
    state = 'cancelled'
  elseif verdict == 'ok' then
    state = 'succeeded'
  elseif verdict == 'fail' then
    state = 'failed'
  elseif verdict == 'retry' then
    state = attempts >= tonumber(f[11] or '1') and 'dead' or 'queued'
  elseif f[4] and tonumber(f[4]) <= now then
    state = 'expired'
    info = 'deadline passed (' .. info .. ')'
  else
    state = 'queued'
  end
  local log = (f[5] or '') .. logLine(nowText, state, info)
  if state == 'queued' then
    -- Back live: ready at the front of its list (it had reached the head once), its deadline
    -- watched again; a line that was not run gives its attempt back.
    redis.call('HSET', key, 'state', 'queued', 'log', log)
    if verdict == 'retry' then
      redis.call('HSET', key, 'error', body)
    else
      redis.call('HSET', key, 'attempts', math.max(0, attempts - 1))
    end
    redis.call('HDEL', key, 'mode')
    pushReady(prefix, lane, id, f[8], f[9], true)
    if f[4] then redis.call('ZADD', laneKey(prefix, lane, 'deadlines'), f[4], id) end
  else
    -- One HSET per job (as complete.lua): state, stamp, timeline, and what the line brought.
    local fields = {'state', state, 'finished', nowText, 'log', log}
    if pbatch ~= '' and state ~= 'cancelled' and state ~= 'expired' then
      fields[#fields + 1] = 'pbatch'; fields[#fields + 1] = pbatch
    end
    if state == 'succeeded' then
      fields[#fields + 1] = 'result'; fields[#fields + 1] = body
      if usage ~= '' then fields[#fields + 1] = 'usage'; fields[#fields + 1] = usage end
    elseif state == 'failed' or state == 'dead' then
      fields[#fields + 1] = 'error'; fields[#fields + 1] = body
    elseif state == 'expired' then
      fields[#fields + 1] = 'error'; fields[#fields + 1] = 'deadline passed'
    end
    redis.call('HSET', key, unpack(fields))
    if f[6] then finishedBy[f[6]] = (finishedBy[f[6]] or 0) + 1 end
    if f[7] then runEnded(f[7], id, state) end
    if tonumber(ttl) > 0 then redis.call('PEXPIRE', key, ttl) end
    done[#done + 1] = id
  end
  local ids = moved[state]
  ids[#ids + 1] = id
end

for i = 0, n - 1 do
  local b = 9 + i * 5
  settle(ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4])
end
local recordKey = prefix .. 'pbatch:' .. record
if final then
  redis.call('DEL', recordKey)
  redis.call('ZREM', laneKey(prefix, lane, 'pbatches'), record)
end
if settled > 0 then redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'batched', -settled) end
for _, state in ipairs(order) do
  local ids = moved[state]
  if #ids > 0 then
    local info = nil
    if pbatch ~= '' then info = 'provider batch ' .. pbatch end
    emit(prefix, cap, table.concat(ids, ','), lane, 'leased', state, now, info)
  end
end
for submitter, count in pairs(finishedBy) do redis.call('HINCRBY', OPEN_JOBS, submitter, -count) end
if #done > 0 then redis.call('PUBLISH', prefix .. 'done', table.concat(done, ',')) end
return {settled, skipped}
