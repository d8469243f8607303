--[[
  route-rollback: sets a route's canary weight to 0, once, when the canary check decided so
  (CanaryPolicy) over the route's state at version ARGV[1].

  KEYS[1]  the route's override hash       KEYS[2]  the route's events (a list, newest first)
  KEYS[3]  the routes' shared version
  ARGV[1]  the route's version the decision was made on (0: no override hash then)
  ARGV[2]  the canary's lane
  ARGV[3]  the canary's configured weight (in force unless the hash overrides it for this lane)
  ARGV[4]  the canary's calls        ARGV[5]  its errors
  ARGV[6]  the main targets' calls   ARGV[7]  their errors
  ARGV[8]  the error rate bound
  ARGV[9]  the event's text
  ARGV[10] the most events kept

  Returns  1 when this call rolled the canary back; 0 when the route changed since the decision
           (another process rolled it back first, or an operator changed it: the next check
           decides again) or the canary's weight is already 0.

  Guarantee: compare-and-set on the route's version, so however many processes run the check,
  one rollback happens per decision, and an operator's change made meanwhile is never undone.
  Stored counts that are not whole numbers (garbage another writer left) read as 0, as
  RouteOverrides reads them, and are overwritten: nothing here can fail half-way.
]]
local route, events, shared = KEYS[1], KEYS[2], KEYS[3]
local lane = ARGV[2]
--!include counts.lua

local state = redis.call('HMGET', route, 'version', 'canary_lane', 'canary', 'rollbacks')
local version = storedCount(state[1])
if version ~= tonumber(ARGV[1]) then return 0 end
-- The weight in force: the stored one for this lane when it is a finite number (else the
-- configured one, as RouteOverrides reads it).
local weight = tonumber(ARGV[3])
local stored = state[2] == lane and tonumber(state[3] or '') or nil
if stored and stored == stored and stored > -math.huge and stored < math.huge then weight = stored end
if not (weight > 0) then return 0 end
local sharedVersion = storedCount(redis.call('GET', shared))

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HSET', route, 'canary_lane', lane, 'canary', '0', 'canary_by', 'rollback', 'rb_at', now, 'rb_lane', lane,
  'rb_canary', ARGV[4] .. ' ' .. ARGV[5], 'rb_main', ARGV[6] .. ' ' .. ARGV[7], 'rb_bound', ARGV[8])
redis.call('HSET', route, 'rollbacks', string.format('%.0f', storedCount(state[4]) + 1), 'version', string.format('%.0f', version + 1))
redis.call('SET', shared, string.format('%.0f', sharedVersion + 1))
redis.call('LPUSH', events, now .. '\trolled_back\t' .. ARGV[9])
redis.call('LTRIM', events, 0, tonumber(ARGV[10]) - 1)
return 1
