--[[
  divert: moves jobs of a lane that is out (its breaker open, or its provider's limits exhausted
  past their deadlines) to the next lane of their route, the fallback.

  A job can move only if it was submitted through a route (its `route` field, set by enqueue;
  a job enqueued before that field existed has it in its envelope, `meta`) that has a
  lane after this one it has not yet left (its `left` field): a route's targets are tried in the
  order the configuration lists them, each at most once. A moved job keeps its id, attempts,
  priority, deadline and its entry in the listing index of the lane it was submitted to (the
  index sorts ids lexically, which is by time only among ids of one tag); its hash stays at home
  (the id's tag), and its `at` field names the new lane's tag. Its timeline says where it went
  and why.

  KEYS[1]  the lane's key prefix
  ARGV[1]  event stream cap
  ARGV[2]  lane name
  ARGV[3]  why (for the timeline and the event)
  ARGV[4]  mode: 'leased' (ARGV[6…] are ids and the tokens the caller leased them under: the
           ones that cannot move are given back, waiting ARGV[5] ms, their attempt not counted)
           or 'deadline' (ARGV[5] is a wait, ms: queued jobs whose deadline falls before now + that
           wait move, earliest deadline first, at most ARGV[7] of them)
  ARGV[5]  see the mode
  ARGV[6]  result TTL, milliseconds (a leased job whose cancel was asked for ends here)
  ARGV[7]  n: the number of (id, token) pairs in 'leased' mode, or the limit in 'deadline' mode
  then     after the pairs ('leased') or at ARGV[8] ('deadline'): m, then m triples (route, lane,
           lane tag): every route this lane is in, with its targets in order (this lane included)

  Returns  {moved, kept}
]]
--!include common.lua
--!include collect.lua
local prefix, cap, lane, why, mode = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = nowMillis()
local ttl, n = ARGV[6], tonumber(ARGV[7])
local routesAt = mode == 'leased' and 8 + 2 * n or 8
local routes = {}
for i = 0, tonumber(ARGV[routesAt]) - 1 do
  local b = routesAt + 1 + i * 3
  local route = routes[ARGV[b]] or {}
  route[#route + 1] = {lane = ARGV[b + 1], tag = ARGV[b + 2]}
  routes[ARGV[b]] = route
end

-- The route of a job enqueued before the route had a field of its own: read from its envelope.
-- (Only such jobs, still in Redis from an earlier version, take this path.)
local function legacyRoute(meta)
  if not meta or meta == '' or not string.find(meta, '"route"', 1, true) then return nil end
  local ok, decoded = pcall(cjson.decode, meta)
  if not ok or type(decoded) ~= 'table' or type(decoded.route) ~= 'string' then return nil end
  return decoded.route
end

-- The lane a job goes to next: the first target of its route that is neither this lane nor one
-- it has left.
local function nextLane(f)
  local route = f.route
  if not route or route == '' then route = legacyRoute(f.meta) end
  local targets = route and routes[route]
  if not targets then return nil end
  local seen = {}
  for name in string.gmatch(f.left or '', '[^\n]+') do seen[name] = true end
  for _, target in ipairs(targets) do
    if target.lane ~= lane and not seen[target.lane] then return target, route end
  end
  return nil
end

-- Moves one job, already out of this lane's live structures, to `target`.
local function move(id, jobKey, f, target, route, from)
  local to = tagPrefix(target.tag)
  redis.call('HSET', jobKey, 'lane', target.lane, 'at', target.tag, 'state', 'queued',
    'left', (f.left or '') .. lane .. '\n')
  redis.call('HDEL', jobKey, 'token')
  pushReady(to, target.lane, id, f.tenant, f.prio, true)
  if f.deadline then redis.call('ZADD', laneKey(to, target.lane, 'deadlines'), f.deadline, id) end
  redis.call('SADD', LANES, target.lane)
  transition{prefix = to, cap = cap, lane = target.lane, key = jobKey, id = id, from = from, to = 'queued', now = now,
    info = 'moved from ' .. lane .. ' to ' .. target.lane .. ' (route ' .. route .. '): ' .. why}
end

local function fields(jobKey)
  local v = redis.call('HMGET', jobKey, 'state', 'token', 'lane', 'tenant', 'prio', 'deadline', 'meta', 'left', 'attempts', 'cancel',
    'route')
  return {state = v[1], token = v[2], lane = v[3], tenant = v[4], prio = v[5], deadline = v[6], meta = v[7],
    left = v[8], attempts = v[9], cancel = v[10], route = v[11]}
end

local moved, kept = 0, 0
if mode == 'leased' then
  local wait = tonumber(ARGV[5])
  for i = 0, n - 1 do
    local id, token = ARGV[8 + 2 * i], ARGV[9 + 2 * i]
    local jobKey = jobKey(id)
    local f = fields(jobKey)
    if f.state == 'leased' and f.token == token and f.lane == lane then
      release(prefix, lane, id, token)
      -- The lease that found it here does not count as an attempt.
      redis.call('HSET', jobKey, 'attempts', math.max(0, tonumber(f.attempts or '1') - 1))
      local target, route = nextLane(f)
      local change = {prefix = prefix, cap = cap, lane = lane, key = jobKey, id = id, from = 'leased', now = now,
        info = why, ttl = ttl, deadline = f.deadline}
      if f.cancel == '1' then
        change.to = 'cancelled'
        finishJob(change)
      elseif target then
        move(id, jobKey, f, target, route, 'leased')
        moved = moved + 1
      else
        -- It stays: back to wait until the lane may be up again.
        redis.call('HSET', jobKey, 'state', 'retry_wait')
        redis.call('HDEL', jobKey, 'token')
        redis.call('ZADD', laneKey(prefix, lane, 'delayed'), now + wait, id)
        change.to = 'retry_wait'
        transition(change)
        kept = kept + 1
      end
    end
  end
else
  local before = now + tonumber(ARGV[5])
  local deadlines = laneKey(prefix, lane, 'deadlines')
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', before, 'LIMIT', 0, n)) do
    local jobKey = jobKey(id)
    local f = fields(jobKey)
    if f.state == 'queued' and f.lane == lane then
      local target, route = nextLane(f)
      if target then
        unqueue(prefix, lane, id)
        redis.call('ZREM', deadlines, id)
        move(id, jobKey, f, target, route, 'queued')
        moved = moved + 1
      else
        kept = kept + 1
      end
    end
  end
end
return {moved, kept}
