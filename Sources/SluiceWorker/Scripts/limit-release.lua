--[[
  limit-release: hands back what limit-acquire gave: slots when their calls end, and the tokens
  estimated in excess (or charges those used beyond the estimate).

  KEYS[1]  the provider's prefix
  ARGV[1]  tokens per minute ('' = no limit)
  ARGV[2]  tokens used minus tokens estimated (negative: fewer were used)
  ARGV[3]  safety margin (as limit-acquire)
  ARGV[4]  requests per minute ('' = no limit)
  ARGV[5]  permits granted but not used (no job to run): their RPM spacing is given back
  ARGV[6]  '1' if the call succeeded
  ARGV[7]  the generation the call started in (limit-acquire's grant)
  ARGV[8]  the concurrency ceiling: a ramp that reaches it is over
  ARGV[9…] slot ids to free

  Returns  the number of slots freed. The TPM arrival time never moves before now: idle time is
           not banked as a burst.

  A success of a call started in the current generation, while the provider is resuming (see
  limit-pause), ends the probe and widens the ramp by one (slow start); at the ceiling the ramp
  ends. Successes of calls started before the last pause are ignored.
]]
local prefix = KEYS[1]
local tpm, delta, margin = tonumber(ARGV[1]), tonumber(ARGV[2]), 1 + tonumber(ARGV[3])
local rpm, unused = tonumber(ARGV[4]), tonumber(ARGV[5])
local freed = 0
for i = 9, #ARGV do freed = freed + redis.call('ZREM', prefix .. 'slots', ARGV[i]) end
if rpm and unused > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  local tat = tonumber(redis.call('GET', prefix .. 'rpm') or '0')
  tat = math.max(now, tat - unused * 60000 / rpm * margin)
  redis.call('SET', prefix .. 'rpm', string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 60000)
end
if tpm and delta ~= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  local tat = tonumber(redis.call('GET', prefix .. 'tpm') or '0')
  tat = math.max(now, tat + delta * 60000 / tpm * margin)
  redis.call('SET', prefix .. 'tpm', string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 60000)
end
if ARGV[6] == '1' then
  local ramp = tonumber(redis.call('GET', prefix .. 'ramp') or '')
  if ramp and ARGV[7] == (redis.call('GET', prefix .. 'generation') or '0') then
    redis.call('DEL', prefix .. 'probe')
    ramp = ramp + 1
    if ramp >= tonumber(ARGV[8]) then
      redis.call('DEL', prefix .. 'ramp')
    else
      redis.call('SET', prefix .. 'ramp', ramp, 'KEEPTTL')
    end
  end
end
return freed
