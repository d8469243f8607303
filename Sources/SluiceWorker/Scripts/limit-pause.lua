--[[
  limit-pause: pauses calls to one provider, for every worker, for `ms` from now (a 429's
  retry-after). A pause already running longer is kept.

  KEYS[1]  the provider's prefix
  ARGV[1]  ms

  Returns  the pause's end, Unix ms.
]]
local prefix, ms = KEYS[1], tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local current = tonumber(redis.call('GET', prefix .. 'pause') or '0')
local untilMs = now + ms
if current >= untilMs then return math.floor(current) end
redis.call('SET', prefix .. 'pause', string.format('%.0f', untilMs), 'PX', math.ceil(ms))
return math.floor(untilMs)
