--[[
  budget-reserve: checks a request's estimated cost against every budget it counts against and,
  when all have room, reserves it in each.

  KEYS[1..n]  the budgets' period hashes, "sluice:{budgets}:budget:<name>:<period>" (hash:
              spent, reserved; micro-dollars)
  ARGV[1]     the estimate, micro-dollars (>= 0)
  ARGV[2]     the hashes' TTL, ms (past the period's end)
  ARGV[2+i]   budget i's limit, micro-dollars

  Returns  {0} when reserved in every budget; {i, spent, reserved} for the first budget without
           room (nothing is reserved anywhere then).

  A budget has room when spent + reserved + estimate <= limit and it is not already used up
  (spent + reserved < limit: a job estimated at 0, a model without a price, still stops there).
  The check and the reservation are one step, so concurrent submits cannot all pass on the same
  remainder.
]]
local estimate, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  local spent, reserved = tonumber(f[1] or '0'), tonumber(f[2] or '0')
  local limit = tonumber(ARGV[2 + i])
  if spent + reserved >= limit or spent + reserved + estimate > limit then
    return {i, spent, reserved}
  end
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', estimate)
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return {0}
