--[[
  run-record: records the run advancer's decisions about one run, compare-and-set on its
  version, and ends the run when told to.

  KEYS[1]  the runs' prefix (`sluice:{runs}:`)
  ARGV[1]  the run's id
  ARGV[2]  the version (`v`) the advancer read its decisions from
  ARGV[3]  the run's new status ('' = unchanged); an ending one (succeeded, failed) stamps
           `finished`, sets the result TTL, takes the run out of the active runs, and wakes
           the run's waiters
  ARGV[4]  result TTL, milliseconds (0 keeps the run forever)
  ARGV[5…] field, value pairs to set (step statuses `s:<step>`, job ids `j:<step>`, …)

  Returns  1 when recorded (the version is bumped), 0 when the run changed since it was read (a
           cancel, or another advancer) or is gone: nothing is written, and the advancer reads
           the run again and decides again.

  Guarantee: the advancer's decisions are deterministic from what it read, and each is recorded
  only over the version it was made from, so two advancers of one run (two processes, or an
  entry read again after a crash) never record conflicting steps.
]]
--!include keys.lua
--!include clock.lua
--!include runs.lua
local prefix, id, expected, status, ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local runKey = prefix .. 'run:' .. id
if redis.call('HGET', runKey, 'v') ~= expected then return 0 end
if #ARGV > 4 then redis.call('HSET', runKey, unpack(ARGV, 5, #ARGV)) end
bumpRunVersion(runKey)
if status ~= '' then
  redis.call('HSET', runKey, 'status', status)
  if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
    redis.call('HSET', runKey, 'finished', nowMillis())
    redis.call('ZREM', prefix .. 'active', id)
    if tonumber(ttl) > 0 then redis.call('PEXPIRE', runKey, ttl) end
    redis.call('PUBLISH', prefix .. 'done', id)
  end
end
return 1
