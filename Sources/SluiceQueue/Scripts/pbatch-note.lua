--[[
  pbatch-note: records a provider batch record's step, compare-and-set on its state, before the
  step is confirmed to the next one: `creating` (with the uploaded file and the time) before the
  create call is sent, `submitted` (with the provider's batch id) once it answered.

  KEYS[1]  the lane's key prefix
  ARGV[1]  lane name
  ARGV[2]  record id
  ARGV[3]  the state it must be in
  ARGV[4]  the state it moves to
  ARGV[5]  due in, ms (when any process may next work on it)
  ARGV[6…] field, value pairs to set

  Returns  1, or 0 when the record is gone or in another state (another process moved it on).
]]
--!include lane.lua
--!include clock.lua
local prefix, lane, record, from, to, due = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = prefix .. 'pbatch:' .. record
if redis.call('HGET', key, 'state') ~= from then return 0 end
redis.call('HSET', key, 'state', to)
if #ARGV >= 7 then redis.call('HSET', key, unpack(ARGV, 6)) end
redis.call('ZADD', laneKey(prefix, lane, 'pbatches'), fmt(nowMillis() + due), record)
return 1
