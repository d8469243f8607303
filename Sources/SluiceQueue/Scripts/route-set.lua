--[[
  route-set: changes a route's runtime overrides (PATCH /v1/routes/{name}), or removes them all
  (a reset), and records the change in the route's events.

  KEYS[1]  the route's override hash       KEYS[2]  the route's events (a list, newest first)
  KEYS[3]  the routes' shared version (bumped by every change of any route: readers poll it)
  ARGV[1]  'set' or 'reset'
  ARGV[2]  the event's text
  ARGV[3]  the most events kept
  ARGV[4]  the canary's lane ('': the canary is left as it is)
  ARGV[5]  the canary's new weight ('set' with ARGV[4]; '' on a reset)
  ARGV[6]  the canary lane's calls so far (all time; with ARGV[4]): its error window starts after
           them, so outcomes from before a change by hand (a rollback's) are not held against it
  ARGV[7]  n, then n pairs (lane, weight): target weights to set ('set' only)

  Returns  the route's new version.

  Guarantee: the change, the version bump and the event are one atomic step, so a reader that
  sees the new version sees the whole change. A reset keeps the rollback history (`rollbacks`,
  `rb_*`), the canary's window start (`since`, `since_lane`) and the events. A version that is
  not a whole number (garbage another writer left) counts as 0 and is overwritten, read as
  RouteOverrides reads it: nothing here can fail half-way (an HINCRBY on it would, after the
  writes before it).
]]
local route, events, shared = KEYS[1], KEYS[2], KEYS[3]
--!include counts.lua
-- Both versions are read before anything is written.
local version = storedCount(redis.call('HGET', route, 'version')) + 1
local sharedVersion = storedCount(redis.call('GET', shared)) + 1
local mode, text, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

if mode == 'reset' then
  local drop = {}
  for _, field in ipairs(redis.call('HKEYS', route)) do
    if string.sub(field, 1, 2) == 'w:' or field == 'canary' or field == 'canary_lane' or field == 'canary_by' then drop[#drop + 1] = field end
  end
  if #drop > 0 then redis.call('HDEL', route, unpack(drop)) end
else
  if ARGV[4] ~= '' then redis.call('HSET', route, 'canary_lane', ARGV[4], 'canary', ARGV[5], 'canary_by', 'operator') end
  local n = tonumber(ARGV[7])
  for i = 0, n - 1 do
    redis.call('HSET', route, 'w:' .. ARGV[8 + 2 * i], ARGV[9 + 2 * i])
  end
end
if ARGV[4] ~= '' then redis.call('HSET', route, 'since_lane', ARGV[4], 'since', ARGV[6]) end
redis.call('HSET', route, 'version', string.format('%.0f', version))
redis.call('SET', shared, string.format('%.0f', sharedVersion))
redis.call('LPUSH', events, now .. '\t' .. mode .. '\t' .. text)
redis.call('LTRIM', events, 0, keep - 1)
return version
