--[[
  admit: decides whether an API key may submit n more jobs now, under its limits.

  KEYS[1]  the key's token bucket, "sluice:keys:bucket:<key id>" (hash: tokens, at)
  KEYS[2]  the open-jobs hash, "sluice:keys:open" (field: key id)
  ARGV[1]  key id
  ARGV[2]  n, the jobs in this request
  ARGV[3]  submit rate, jobs per second ('' = no rate limit)
  ARGV[4]  burst, the bucket's size (jobs)
  ARGV[5]  cap on open jobs ('' = no cap)

  Returns  {'ok'}; {'rate_limited', ms until n tokens are there}; {'over_burst', burst} when n
           exceeds the bucket's size and can never pass; {'over_cap', open jobs now}.

  The bucket is debited here, by n, only when the request is admitted. The cap is checked, not
  reserved: the enqueue script counts the jobs it creates, so two requests admitted at the same
  moment may overshoot the cap by at most their own sizes, and nothing is left to drift.
]]
local bucket, open = KEYS[1], KEYS[2]
local id, n = ARGV[1], tonumber(ARGV[2])
local rate, burst, cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if cap then
  local current = tonumber(redis.call('HGET', open, id) or '0')
  if current + n > cap then return {'over_cap', current} end
end
if rate then
  if n > burst then return {'over_burst', burst} end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local f = redis.call('HMGET', bucket, 'tokens', 'at')
  local tokens = tonumber(f[1] or burst)
  local at = tonumber(f[2] or now)
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  if tokens < n then
    return {'rate_limited', math.ceil((n - tokens) * 1000 / rate)}
  end
  redis.call('HSET', bucket, 'tokens', tostring(tokens - n), 'at', string.format('%.0f', now))
  -- Idle long enough to refill, the bucket is full again: no need to keep it.
  redis.call('PEXPIRE', bucket, math.ceil(burst * 1000 / rate) + 1000)
end
return {'ok'}
