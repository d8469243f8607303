--[[
  lane-calls: adds one worker's calls of one lane since its last flush to the lane's measured
  figures (read by the route board and canary checks).

  KEYS[1]  the lane's calls hash, "sluice:{T}:lane:<lane>:calls"
  KEYS[2]  the lane's outcomes list, "sluice:{T}:lane:<lane>:outcomes"
  ARGV[1]  the median latency (ms) of the successful calls of this flush ('' when none)
  ARGV[2]  how many successful calls that median is of
  ARGV[3]  the outcomes of this flush's calls, oldest first: a text of '0' (not an error of the
           target) and '1' (an error); '' when none
  ARGV[4]  alpha: how far one call moves the latency figure towards what it measured (0.05)
  ARGV[5]  half-life (ms): how fast an old figure loses its weight while nothing is measured
  ARGV[6]  how many outcomes the list keeps (1000)
  ARGV[7]  how long both keys live after this flush (ms)

  Returns  {p50 after (text, '' when never measured), the list's length}

  The latency figure: with m the flush's median over k calls, and the figure last updated dt ms
  ago, p50 <- m + (p50 - m) * (1 - alpha)^k * 0.5^(dt / half-life); the first flush sets it to m.
  So each call moves it 5% of the way towards what it measured, and a figure left alone for a
  half-life counts half as much against the next measurement. It is a decayed median of medians,
  not an exact p50. Redis TIME is the clock, so workers' clocks do not matter. A stored figure or
  time that is not a finite number (Lua's tonumber takes 'nan' and 'inf') is ignored, and the
  flush's median starts the figure afresh; a count (n, ok, err) that is not a whole number
  starts again from 0: garbage another writer left never sticks, nor stops a flush half-way.
  Guarantee: one script call, so a flush's figures and outcomes land together or not at all.
]]
local calls, outcomes = KEYS[1], KEYS[2]
local median, count = tonumber(ARGV[1]), tonumber(ARGV[2]) or 0
local text, alpha, halfLife = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local cap, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A finite number, or nil (NaN is the one value not equal to itself).
local function finite(value)
  local number = tonumber(value or '')
  if number and number == number and number > -math.huge and number < math.huge then return number end
  return nil
end

-- A stored count plus `amount`, written back whole: a count that is not a whole number 0..2^53
-- counts as 0 (an HINCRBY on it would fail after the writes before it).
local function add(field, amount)
  local number = finite(redis.call('HGET', calls, field))
  if not number or number < 0 or number > 9007199254740992 or math.floor(number) ~= number then number = 0 end
  redis.call('HSET', calls, field, string.format('%d', number + amount))
end

local p50 = redis.call('HGET', calls, 'p50')
if not finite(p50) then p50 = nil end
if median and median == median and median >= 0 and median < math.huge and count > 0 then
  local old, at = finite(p50), finite(redis.call('HGET', calls, 'at'))
  local figure = median
  if old and old >= 0 and at and halfLife and halfLife > 0 then
    local age = math.max(0, now - at)
    local keep = math.pow(1 - alpha, count) * math.pow(0.5, age / halfLife)
    figure = median + (old - median) * keep
  end
  p50 = string.format('%.3f', figure)
  redis.call('HSET', calls, 'p50', p50, 'at', now)
  add('n', count)
end

local length = redis.call('LLEN', outcomes)
if #text > 0 then
  -- Only the newest `cap` matter; pushed oldest first, so the newest ends at the head.
  local first = math.max(1, #text - cap + 1)
  local batch, errors = {}, 0
  for i = first, #text do
    local c = string.sub(text, i, i)
    batch[#batch + 1] = c
    if c == '1' then errors = errors + 1 end
  end
  redis.call('LPUSH', outcomes, unpack(batch))
  redis.call('LTRIM', outcomes, 0, cap - 1)
  add('ok', #batch - errors)
  add('err', errors)
  length = math.min(length + #batch, cap)
end
redis.call('PEXPIRE', calls, ttl)
if length > 0 then redis.call('PEXPIRE', outcomes, ttl) end
return {p50 or '', length}
