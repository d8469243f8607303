--[[
  budget-release: gives back a reservation that made no job (the enqueue failed, or an
  idempotent replay returned the first job, which holds its own reservation).

  KEYS[1..n]  the budgets' period hashes (as in budget-reserve)
  ARGV[1]     the estimate reserved, micro-dollars

  Returns  the number of hashes touched.

  reserved never goes below 0.
]]
local estimate = tonumber(ARGV[1])
for i = 1, #KEYS do
  local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
  if reserved > 0 then
    redis.call('HSET', KEYS[i], 'reserved', math.max(0, reserved - estimate))
  end
end
return #KEYS
