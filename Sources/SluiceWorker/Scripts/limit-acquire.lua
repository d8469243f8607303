--[[
  limit-acquire: permits to call one provider now, under its cluster-wide limits.

  KEYS[1]  the provider's prefix, "sluice:{p:<provider>}:"
  ARGV[1]  requests per minute ('' = no limit)
  ARGV[2]  tokens per minute ('' = no limit)
  ARGV[3]  estimated tokens of one call
  ARGV[4]  most calls in flight ('' = no limit)
  ARGV[5]  permits wanted (a worker asks for as many as it has room for)
  ARGV[6]  slot lease, ms (a crashed worker's slots come back after it)
  ARGV[7]  holder, a prefix for the slot ids (process-unique)
  ARGV[8]  safety margin, a fraction by which the rates are slowed (clock and network jitter)

  Returns  {granted, 0, generation, slot ids…}: granted > 0 with the pause generation the calls
           start in while the provider resumes from a pause (see limit-pause; '' otherwise) and
           their slot ids, or {0, wait ms, reason} with how
           long to wait and why ('paused', 'concurrency', 'ramp', 'rpm', 'tpm').

  Resuming after a 429's pause (keys 'ramp' and 'probe', set by limit-pause): while 'probe'
  exists, one call in flight across the cluster (the probe); once a call of the current
  generation succeeds (limit-release), at most 'ramp' calls in flight, 'ramp' growing by one per
  success (slow start: 1, 2, 4, …) until it reaches the ceiling and the keys go. The window is
  counted with the same leased slots as the concurrency limit, so it holds across processes.

  RPM and TPM are GCRA with no burst tolerance: a theoretical arrival time (TAT) per limit, Redis
  TIME as the clock, and a call allowed only once the TAT has come. So calls are spaced at least
  60 s / rpm apart (times 1 + margin), and no 60 s window ever holds more than rpm of them. With
  a rate limit, one permit is granted per call of this script; without, as many as wanted.
  Everything is checked before anything is taken, so a refusal changes nothing.
]]
local prefix = KEYS[1]
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local concurrency, want, leaseMs, holder = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local margin = 1 + tonumber(ARGV[8])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

local pause = tonumber(redis.call('GET', prefix .. 'pause') or '0')
if pause > now then return {0, math.ceil(pause - now), 'paused'} end

local slots = prefix .. 'slots'
local ramp = tonumber(redis.call('GET', prefix .. 'ramp') or '')
local window
if ramp then
  window = ramp
  if redis.call('EXISTS', prefix .. 'probe') == 1 then window = 1 end
  if not concurrency or window < concurrency then concurrency = window else window = nil end
end
if concurrency then
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  local free = concurrency - redis.call('ZCARD', slots)
  if free <= 0 then
    -- Waiting on a probe or a ramp's window: its calls take a round trip to come back.
    if window then return {0, 20, 'ramp'} end
    return {0, 5, 'concurrency'}
  end
  want = math.min(want, free)
end
local rpmTat, tpmTat
if rpm then
  rpmTat = tonumber(redis.call('GET', prefix .. 'rpm') or '0')
  if rpmTat > now then return {0, math.ceil(rpmTat - now), 'rpm'} end
  want = 1
end
if tpm then
  tpmTat = tonumber(redis.call('GET', prefix .. 'tpm') or '0')
  if tpmTat > now then return {0, math.ceil(tpmTat - now), 'tpm'} end
end

if rpm then
  local tat = math.max(rpmTat, now) + 60000 / rpm * margin
  redis.call('SET', prefix .. 'rpm', string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 60000)
end
if tpm then
  local tat = math.max(tpmTat, now) + tokens * want * 60000 / tpm * margin
  redis.call('SET', prefix .. 'tpm', string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 60000)
end
-- The generation only while resuming: only then do the calls' successes and 429s steer the ramp.
local out = {want, 0, ramp and (redis.call('GET', prefix .. 'generation') or '0') or ''}
if concurrency then
  local first = redis.call('INCRBY', prefix .. 'slot-counter', want) - want
  for i = 1, want do
    local slot = holder .. ':' .. (first + i)
    redis.call('ZADD', slots, now + leaseMs, slot)
    out[#out + 1] = slot
  end
end
return out
