--[[
  limit-pause: pauses calls to one provider, for every worker, for `ms` from now (a 429's
  retry-after, or the reset of a window the provider says is used up). A pause already running
  longer is kept.

  KEYS[1]  the provider's prefix
  ARGV[1]  ms
  ARGV[2]  the generation the call that saw the 429 started in (limit-acquire's grant; '' if none)
  ARGV[3]  '1': resume gently after this pause (a 429): one probe first, then a slow start
  ARGV[4]  how long the probe and ramp state outlives the pause, ms

  Returns  the pause's end, Unix ms.

  Resuming gently: the first 429 of a run sets 'ramp' to 1 and 'probe'; a 429 from a call that
  started in the current generation (during the probe or the ramp) halves 'ramp' (at least 1)
  and sets 'probe' again. Each such pause starts a new generation, so that successes of calls
  started before it say nothing about whether the provider is back (limit-release ignores them),
  and the 429s of a burst that began before it do not halve the ramp again.
]]
local prefix, ms, gen, gentle, keep = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local current = tonumber(redis.call('GET', prefix .. 'pause') or '0')
local untilMs = now + ms
local extended = current < untilMs
if extended then
  redis.call('SET', prefix .. 'pause', string.format('%.0f', untilMs), 'PX', math.ceil(ms))
end
if gentle then
  local generation = redis.call('GET', prefix .. 'generation') or '0'
  local fresh = gen == generation
  if extended or fresh then
    local ramp = tonumber(redis.call('GET', prefix .. 'ramp') or '')
    if not ramp then ramp = 1 elseif fresh then ramp = math.max(1, math.floor(ramp / 2)) end
    local ttl = math.ceil(math.max(current, untilMs) - now) + keep
    redis.call('SET', prefix .. 'ramp', ramp, 'PX', ttl)
    redis.call('SET', prefix .. 'probe', '1', 'PX', ttl)
    redis.call('INCR', prefix .. 'generation')
  end
end
if current >= untilMs then return math.floor(current) end
return math.floor(untilMs)
