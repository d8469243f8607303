--[[
  budget-release: gives back a reservation that made no job (the enqueue failed, or an
  idempotent replay returned the first job, which holds its own reservation).

  KEYS[1..n]  the budgets' period hashes (as in budget-reserve)
  ARGV[1]     the estimate reserved, micro-dollars

  Returns  the number of hashes touched.

  reserved never goes below 0.
]]
-- An amount in a budget's hash: a whole number of micro-dollars, 0 when absent or not one
-- (a value set by hand: not a number, NaN, negative, past 9e15). Written back with '%d': a
-- number given to redis.call as is becomes '%.14g' text, "1.5e+14" past 10^14.
local function amount(value)
  local n = tonumber(value or '0')
  if n == nil or n ~= n or n < 0 or n > 9e15 then return 0 end
  return math.floor(n)
end
local estimate = tonumber(ARGV[1])
for i = 1, #KEYS do
  local reserved = amount(redis.call('HGET', KEYS[i], 'reserved'))
  if reserved > 0 then
    redis.call('HSET', KEYS[i], 'reserved', string.format('%d', math.max(0, reserved - estimate)))
  end
end
return #KEYS
