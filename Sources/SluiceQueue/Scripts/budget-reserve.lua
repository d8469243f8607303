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
-- An amount in a budget's hash: a whole number of micro-dollars, 0 when absent or not one
-- (a value set by hand: not a number, NaN, negative, past 9e15). Written back with '%d': a
-- number given to redis.call as is becomes '%.14g' text, "1.5e+14" past 10^14.
local function amount(value)
  local n = tonumber(value or '0')
  if n == nil or n ~= n or n < 0 or n > 9e15 then return 0 end
  return math.floor(n)
end
local estimate, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local reserved = {}
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  local spent = amount(f[1])
  reserved[i] = amount(f[2])
  local limit = tonumber(ARGV[2 + i])
  if spent + reserved[i] >= limit or spent + reserved[i] + estimate > limit then
    return {i, spent, reserved[i]}
  end
end
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'reserved', string.format('%d', reserved[i] + estimate))
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return {0}
