--[[
  run-create: records a new pipeline run and tells the run advancer about it, in one step.

  KEYS[1]  the runs' prefix (`sluice:{runs}:`)
  ARGV[1]  the run's id
  ARGV[2]  its tenant
  ARGV[3]  its idempotency key ('' = none)
  ARGV[4]  the idempotency key's TTL, milliseconds
  ARGV[5…] field, value pairs of the run's hash (key, pipeline, def, input, metadata, callback)

  Returns  {id, 1} for a run created now, or {existing id, 0} when the tenant's idempotency key
           already made a run that still exists.

  Guarantee: the run's hash and its `created` entry in the runs stream are written together, so
  a run that exists always reaches the advancer (which creates its first steps), however the
  submitting process ends. The run is also added to the active runs (`active`), which the
  advancer sweeps for runs that have not moved for a while (an entry trimmed or lost).
]]
--!include keys.lua
--!include clock.lua
local prefix, id, tenant, idem, idemTTL = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if idem ~= '' then
  local idemKey = prefix .. 'idem:' .. tenant .. ':' .. idem
  local existing = redis.call('GET', idemKey)
  if existing and redis.call('EXISTS', prefix .. 'run:' .. existing) == 1 then return {existing, 0} end
  redis.call('SET', idemKey, id, 'PX', idemTTL)
end
local now = nowMillis()
local runKey = prefix .. 'run:' .. id
local fields = {'tenant', tenant, 'status', 'queued', 'created', now, 'v', 1}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', runKey, unpack(fields))
redis.call('ZADD', prefix .. 'index:' .. tenant, now, id)
redis.call('ZADD', prefix .. 'active', now, id)
redis.call('XADD', RUN_EVENTS, 'MAXLEN', '~', RUN_EVENTS_MAX, '*', 'run', id, 'kind', 'created')
return {id, 1}
