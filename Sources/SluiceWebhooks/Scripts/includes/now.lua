-- The time now, in milliseconds, from Redis itself (every delivery script keeps Redis's clock).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
