--[[
  enqueue-leased: creates one job already leased to its submitter (the web process that serves a
  synchronous facade call itself), as enqueue.lua followed by lease.lua would leave it, without
  ever making it ready: no ready list, no marker, no worker woken.

  KEYS[1]  the lane's key prefix, "sluice:{<tag>}:"
  ARGV[1]  event stream cap (approximate MAXLEN)
  ARGV[2]  lane name
  ARGV[3]  idempotency-key TTL, milliseconds
  ARGV[4]  lease duration, milliseconds
  ARGV[5]  job id
  ARGV[6]  payload
  ARGV[7]  tenant
  ARGV[8]  priority
  ARGV[9]  idempotency key ('' = none)
  ARGV[10] deadline ms ('' = none)
  ARGV[11] max_attempts
  ARGV[12] metadata (the job's envelope, '' = none)
  ARGV[13] route ('' = none)
  ARGV[14] the id of the API key that submits ('' = none)
  ARGV[15] why ('' = none; stored as `why`: the note on the job's first timeline entry, a
           route's choice)

  Returns  {1, lease group, lease_until} for the job created now (its token is "<group>.1",
           attempt 1), or {0, existing id} when the tenant's idempotency key was already used in
           this lane (nothing is created).

  Guarantee: atomic, like enqueue and lease: the job is in every structure a leased job is in
  (hash, lease group, leased set, listing index, open jobs) and both of its events (queued, then
  leased) are written, or none of it. Its lease runs out like any other: if the process that holds
  it dies, the reaper puts it back in its lane and a worker runs it (the attempt counts).
]]
--!include keys.lua
--!include clock.lua
--!include leases.lua
--!include transition.lua
local prefix, cap, lane = KEYS[1], ARGV[1], ARGV[2]
local idemTTL, leaseMs = ARGV[3], tonumber(ARGV[4])
local id, payload, tenant, priority, idem = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local deadline, maxAttempts, meta, route, submitter = ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local why = ARGV[15] or ''
if idem ~= '' then
  local idemKey = prefix .. 'idem:' .. tenant .. ':' .. idem
  local existing = redis.call('GET', idemKey)
  if existing then return {0, existing} end
  redis.call('SET', idemKey, id, 'PX', idemTTL)
end
local now = nowMillis()
local untilMs = now + leaseMs
local nowText = fmt(now)
local metaKey = laneKey(prefix, lane, 'meta')
local group = tostring(redis.call('HINCRBY', metaKey, 'tokens', 1))
local fields = {'lane', lane, 'tenant', tenant, 'state', 'leased', 'payload', payload,
  'max_attempts', maxAttempts, 'created', nowText, 'token', group .. '.1', 'leased_at', nowText,
  'attempts', 1, 'log', logLine(nowText, 'leased', 'attempt 1')}
if priority ~= '0' then fields[#fields + 1] = 'prio'; fields[#fields + 1] = priority end
if idem ~= '' then fields[#fields + 1] = 'idem'; fields[#fields + 1] = idem end
if meta ~= '' then fields[#fields + 1] = 'meta'; fields[#fields + 1] = meta end
if route ~= '' then fields[#fields + 1] = 'route'; fields[#fields + 1] = route end
if why ~= '' then fields[#fields + 1] = 'why'; fields[#fields + 1] = why end
if submitter ~= '' then
  fields[#fields + 1] = 'key'; fields[#fields + 1] = submitter
  redis.call('HINCRBY', OPEN_JOBS, submitter, 1)
end
-- A leased job is not in the deadline set (lease.lua takes it out); a release or the reaper puts
-- it back from this field.
if deadline ~= '' then fields[#fields + 1] = 'deadline'; fields[#fields + 1] = deadline end
redis.call('HSET', jobKey(id), unpack(fields))
redis.call('ZADD', laneKey(prefix, lane, 'index:' .. tenant), 0, id)
redis.call('SADD', laneKey(prefix, lane, 'tenants'), tenant)
redis.call('SADD', groupKey(prefix, lane, group), id)
redis.call('ZADD', laneKey(prefix, lane, 'leased'), fmt(untilMs), group)
redis.call('HINCRBY', metaKey, 'leased', 1)
emit(prefix, cap, id, lane, '', 'queued', now)
emit(prefix, cap, id, lane, 'queued', 'leased', now)
return {1, group, untilMs}
