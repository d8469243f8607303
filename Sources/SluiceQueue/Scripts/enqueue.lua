--[[
  enqueue: adds jobs to one lane.

  KEYS[1]  the lane's key prefix, "sluice:{<tag>}:"
  ARGV[1]  event stream cap (approximate MAXLEN)
  ARGV[2]  lane name
  ARGV[3]  idempotency-key TTL, milliseconds
  ARGV[4]  n, the number of jobs
  ARGV[5]  the call's default tenant
  ARGV[6]  the call's default priority
  ARGV[7]  the call's default max_attempts
  ARGV[8]  the id of the API key that submits ('' = none): recorded on each job as `key`, and
           counted in `sluice:keys:open` until the job finishes (per-key caps)
  ARGV[9…] n jobs, each either
             id, payload, ''                      (the defaults; no key, dates or metadata), or
             id, payload, '1', tenant, priority, idempotency key ('' = none),
               not_before ms ('' = none), deadline ms ('' = none), max_attempts, metadata (the
               job's envelope, stored as `meta`), route ('' = none; stored as `route`, the field
               divert.lua reads), why ('' = none; stored as `why`: the note on the job's first
               timeline entry, a route's choice), run ('' = none; stored as `run`: the pipeline
               run and step the job belongs to), mode ('batch': the job goes through the
               provider's batch API: stored as `mode`, and put in the lane's collect set, scored by
               its creation time, instead of its ready list; '' = a live job)

  Returns  a flat array of n pairs: {id, 1} for a job created now, or {existing id, 0} when the
           tenant's idempotency key was already used in this lane.

  Guarantee: the whole call is atomic, so a job is either in every structure (hash, ready or
  delayed set, deadline set, event) or in none, and two concurrent calls with one idempotency key
  create one job. Ready jobs are pushed per (tenant, class) with one RPUSH each, and the events
  are one entry per destination state.
]]
--!include keys.lua
--!include clock.lua
--!include ready.lua
--!include transition.lua
local prefix, cap, lane = KEYS[1], ARGV[1], ARGV[2]
local idemTTL = ARGV[3]
local n = tonumber(ARGV[4])
local defaultTenant, defaultPriority, defaultMax, submitter = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local defaultClass = 100 - tonumber(defaultPriority)
local now = nowMillis()
local nowText = fmt(now)
-- The call's optional fields of a plain job (its key, a priority), appended to its one HSET.
local extra = {}
if submitter ~= '' then extra[#extra + 1] = 'key'; extra[#extra + 1] = submitter end
if defaultPriority ~= '0' then extra[#extra + 1] = 'prio'; extra[#extra + 1] = defaultPriority end
local lists, listOrder = {}, {}
local queuedIds, delayedIds, collectedIds = {}, {}, {}
local byTenant, tenantOrder = {}, {} -- tenant -> the ids created now, for its listing index
local out = {}

local function indexed(id, tenant)
  local ids = byTenant[tenant]
  if not ids then
    ids = {}
    byTenant[tenant] = ids
    tenantOrder[#tenantOrder + 1] = tenant
  end
  ids[#ids + 1] = id
end

local function ready(id, tenant, class)
  local listKey = tenant .. ':' .. class
  local list = lists[listKey]
  if not list then
    list = {tenant = tenant, class = class}
    lists[listKey] = list
    listOrder[#listOrder + 1] = listKey
  end
  list[#list + 1] = id
  queuedIds[#queuedIds + 1] = id
end

local a = 9
local created = 0
for _ = 1, n do
  local id, payload, extended = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  a = a + 3
  if extended == '' then
    -- The common bulk case: one HSET with fixed fields, straight to the ready list.
    -- (The optional fields ride in the same HSET: a second call per job costs ~1 µs.)
    redis.call('HSET', prefix .. 'job:' .. id, 'lane', lane, 'tenant', defaultTenant, 'state', 'queued',
      'payload', payload, 'max_attempts', defaultMax, 'created', nowText, unpack(extra))
    created = created + 1
    ready(id, defaultTenant, defaultClass)
    indexed(id, defaultTenant)
    out[#out + 1] = id
    out[#out + 1] = 1
  else
    local tenant, priority, idem = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    local notBefore, deadline, maxAttempts, meta, route = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
    local why, run, mode = ARGV[a + 8], ARGV[a + 9], ARGV[a + 10]
    a = a + 11
    local existing = false
    if idem ~= '' then
      local idemKey = prefix .. 'idem:' .. tenant .. ':' .. idem
      existing = redis.call('GET', idemKey)
      if not existing then redis.call('SET', idemKey, id, 'PX', idemTTL) end
    end
    if existing then
      out[#out + 1] = existing
      out[#out + 1] = 0
    else
      local delayed = notBefore ~= '' and tonumber(notBefore) > now
      local state = delayed and 'delayed' or 'queued'
      local fields = {'lane', lane, 'tenant', tenant, 'state', state, 'payload', payload,
        'max_attempts', maxAttempts, 'created', nowText}
      if priority ~= '0' then fields[#fields + 1] = 'prio'; fields[#fields + 1] = priority end
      if idem ~= '' then fields[#fields + 1] = 'idem'; fields[#fields + 1] = idem end
      if meta ~= '' then fields[#fields + 1] = 'meta'; fields[#fields + 1] = meta end
      if route ~= '' then fields[#fields + 1] = 'route'; fields[#fields + 1] = route end
      -- A batch job's first timeline entry says so, unless a route's choice has a note.
      if why == '' and mode == 'batch' then why = 'collecting for a provider batch' end
      if why ~= '' then fields[#fields + 1] = 'why'; fields[#fields + 1] = why end
      if run ~= '' then fields[#fields + 1] = 'run'; fields[#fields + 1] = run end
      if mode ~= '' then fields[#fields + 1] = 'mode'; fields[#fields + 1] = mode end
      if submitter ~= '' then fields[#fields + 1] = 'key'; fields[#fields + 1] = submitter end
      created = created + 1
      if notBefore ~= '' then fields[#fields + 1] = 'not_before'; fields[#fields + 1] = notBefore end
      if deadline ~= '' then
        fields[#fields + 1] = 'deadline'; fields[#fields + 1] = deadline
        redis.call('ZADD', laneKey(prefix, lane, 'deadlines'), deadline, id)
      end
      redis.call('HSET', prefix .. 'job:' .. id, unpack(fields))
      indexed(id, tenant)
      if delayed then
        redis.call('ZADD', laneKey(prefix, lane, 'delayed'), notBefore, id)
        delayedIds[#delayedIds + 1] = id
      elseif mode == 'batch' then
        -- Collected for a provider batch (pbatch-take.lua takes it from here); queued to the client.
        redis.call('ZADD', laneKey(prefix, lane, 'collect'), nowText, id)
        redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'collecting', 1)
        collectedIds[#collectedIds + 1] = id
      else
        ready(id, tenant, 100 - tonumber(priority))
      end
      out[#out + 1] = id
      out[#out + 1] = 1
    end
  end
end
for _, listKey in ipairs(listOrder) do
  local list = lists[listKey]
  local key = readyList(prefix, lane, list.tenant, list.class)
  for i = 1, #list, 1000 do redis.call('RPUSH', key, unpack(list, i, math.min(i + 999, #list))) end
  noteReady(prefix, lane, list.tenant, list.class)
end
if submitter ~= '' and created > 0 then redis.call('HINCRBY', OPEN_JOBS, submitter, created) end
-- The listing index: one lexically sorted set per (lane, tenant); ids sort by creation time.
for _, tenant in ipairs(tenantOrder) do
  local ids, members = byTenant[tenant], {}
  local index = laneKey(prefix, lane, 'index:' .. tenant)
  for i = 1, #ids, 500 do
    local last = math.min(i + 499, #ids)
    for j = i, last do
      members[2 * (j - i) + 1] = 0
      members[2 * (j - i) + 2] = ids[j]
    end
    redis.call('ZADD', index, unpack(members, 1, 2 * (last - i + 1)))
  end
  redis.call('SADD', laneKey(prefix, lane, 'tenants'), tenant)
end
if #queuedIds > 0 then
  redis.call('HINCRBY', laneKey(prefix, lane, 'meta'), 'ready', #queuedIds)
  emit(prefix, cap, table.concat(queuedIds, ','), lane, '', 'queued', now)
end
if #delayedIds > 0 then emit(prefix, cap, table.concat(delayedIds, ','), lane, '', 'delayed', now) end
if #collectedIds > 0 then emit(prefix, cap, table.concat(collectedIds, ','), lane, '', 'queued', now, 'collecting for a provider batch') end
return out
