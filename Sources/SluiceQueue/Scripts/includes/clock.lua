-- Redis time and integer formatting, for the job scripts.

-- Now, in ms, from Redis itself (every process shares Redis's clock).
local function nowMillis()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as exact decimal strings (tostring would print large doubles in exponent form).
local function fmt(n) return string.format('%.0f', n) end
